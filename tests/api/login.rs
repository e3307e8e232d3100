//! `GET /login` and `GET /callback`: the code flow and every way it must fail.

use crate::fake_op::{FakeOp, IdTokenFault, TestUser};
use crate::helpers::{
    APP_URL, AppOptions, assert_error, browser, location, session_cookie, spawn_app, spawn_app_for,
    spawn_app_with, urlencode,
};

#[tokio::test]
async fn login_redirects_to_the_provider_with_pkce_state_and_nonce() {
    let app = spawn_app().await;
    let authorize_url = app.start_login(&app.client).await;
    let url = url::Url::parse(&authorize_url).unwrap();
    assert!(authorize_url.starts_with(&format!("{}/authorize", app.op.issuer())));
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], "identity");
    assert_eq!(query["redirect_uri"], app.url("/callback"));
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["code_challenge"].len() >= 43);
    assert!(query["state"].len() >= 32);
    assert!(query["nonce"].len() >= 32);
    assert!(query["scope"].split(' ').any(|scope| scope == "openid"));
}

#[tokio::test]
async fn each_login_gets_a_fresh_state_and_nonce() {
    let app = spawn_app().await;
    let first = url::Url::parse(&app.start_login(&app.client).await).unwrap();
    let second = url::Url::parse(&app.start_login(&app.client).await).unwrap();
    let param = |url: &url::Url, name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .unwrap()
            .1
            .into_owned()
    };
    assert_ne!(param(&first, "state"), param(&second, "state"));
    assert_ne!(param(&first, "nonce"), param(&second, "nonce"));
}

#[tokio::test]
async fn prompt_and_login_hint_are_passed_through() {
    let app = spawn_app().await;
    let response = app
        .get(&format!(
            "/login?returnURL={}&prompt=login&login_hint=alice",
            urlencode(APP_URL)
        ))
        .await;
    let url = url::Url::parse(&location(&response)).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["prompt"], "login");
    assert_eq!(query["login_hint"], "alice");
}

#[tokio::test]
async fn a_missing_or_empty_return_url_is_the_exact_spec_error() {
    let app = spawn_app().await;
    for path in ["/login", "/login?returnURL=", "/login?provider=local"] {
        let body = assert_error(app.get(path).await, 400, "MISSING_PARAMETER").await;
        assert_eq!(
            body,
            serde_json::json!({"error": "MISSING_PARAMETER", "errorMessage": "Missing parameter value for 'returnURL'"})
        );
    }
}

#[tokio::test]
async fn a_foreign_return_url_is_refused() {
    let app = spawn_app().await;
    for target in [
        "https://evil.com/",
        "//evil.com",
        "https://localhost:3000@evil.com",
        "javascript:alert(1)",
    ] {
        let response = app
            .get(&format!("/login?returnURL={}", urlencode(target)))
            .await;
        assert_error(response, 400, "REDIRECT_NOT_ALLOWED").await;
    }
}

#[tokio::test]
async fn an_unknown_provider_is_refused() {
    let app = spawn_app().await;
    let response = app
        .get(&format!(
            "/login?returnURL={}&provider=nope",
            urlencode(APP_URL)
        ))
        .await;
    assert_error(response, 400, "UNKNOWN_PROVIDER").await;
}

#[tokio::test]
async fn with_several_providers_and_none_named_an_html_chooser_is_shown() {
    let op = FakeOp::start().await;
    let second = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            tail: format!(
                "[[providers]]\nid = \"partner\"\nname = \"Partner login\"\nissuer = \"{}\"\nclient_id = \"identity\"\nclient_secret = \"identity-secret\"\n",
                second.issuer()
            ),
            ..AppOptions::default()
        },
    )
    .await;
    let response = app
        .get_html(&format!("/login?returnURL={}", urlencode(APP_URL)))
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(
        page.contains("Local login") && page.contains("Partner login"),
        "{page}"
    );
    assert!(page.contains("provider=partner"), "{page}");
    let chosen = app
        .get(&format!(
            "/login?returnURL={}&provider=partner",
            urlencode(APP_URL)
        ))
        .await;
    assert!(location(&chosen).starts_with(&second.issuer()));
}

#[tokio::test]
async fn a_completed_login_sets_a_safe_cookie_and_returns_to_the_app() {
    let app = spawn_app().await;
    let response = app.login_with(&app.client, &TestUser::alice()).await;
    assert_eq!(response.status(), 302);
    assert_eq!(location(&response), APP_URL);
    let cookie = session_cookie(&response).expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(
        !cookie.contains("Secure"),
        "http public_url means no Secure: {cookie}"
    );
    assert_eq!(app.userinfo().await["authenticated"], true);
}

#[tokio::test]
async fn cookies_are_secure_when_configured() {
    let app = spawn_app_with(AppOptions {
        session_extra: "cookie_secure = true\ncookie_same_site = \"strict\"".to_owned(),
        ..AppOptions::default()
    })
    .await;
    let response = app.login_with(&app.client, &TestUser::alice()).await;
    let cookie = session_cookie(&response).expect("session cookie");
    assert!(
        cookie.contains("Secure") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

#[tokio::test]
async fn several_tabs_can_log_in_at_the_same_time() {
    let app = spawn_app().await;
    let first = app.start_login(&app.client).await;
    let second = app.start_login(&app.client).await;
    let second_done = app
        .client
        .get(app.op.authorize(&second, &TestUser::alice()))
        .send()
        .await
        .unwrap();
    let first_done = app
        .client
        .get(app.op.authorize(&first, &TestUser::alice()))
        .send()
        .await
        .unwrap();
    assert_eq!(second_done.status(), 302);
    assert_eq!(first_done.status(), 302);
    assert_eq!(app.userinfo().await["authenticated"], true);
}

#[tokio::test]
async fn a_replayed_state_fails_and_creates_no_session() {
    let app = spawn_app().await;
    let authorize_url = app.start_login(&app.client).await;
    let callback = app.op.authorize(&authorize_url, &TestUser::alice());
    assert_eq!(
        app.client.get(&callback).send().await.unwrap().status(),
        302
    );
    let attacker = browser();
    let replay = attacker.get(&callback).send().await.unwrap();
    assert_error(replay, 400, "LOGIN_FAILED").await;
    let replay_same_browser = app.client.get(&callback).send().await.unwrap();
    assert_error(replay_same_browser, 400, "LOGIN_FAILED").await;
    assert_eq!(app.userinfo_with(&attacker).await["authenticated"], false);
}

#[tokio::test]
async fn a_callback_in_another_browser_fails() {
    let app = spawn_app().await;
    let authorize_url = app.start_login(&app.client).await;
    let callback = app.op.authorize(&authorize_url, &TestUser::alice());
    let victim = browser();
    assert_error(
        victim.get(&callback).send().await.unwrap(),
        400,
        "LOGIN_FAILED",
    )
    .await;
    assert_eq!(app.userinfo_with(&victim).await["authenticated"], false);
}

#[tokio::test]
async fn an_unknown_or_missing_state_fails() {
    let app = spawn_app().await;
    assert_error(
        app.get("/callback?code=x&state=made-up").await,
        400,
        "LOGIN_FAILED",
    )
    .await;
    assert_error(app.get("/callback?code=x").await, 400, "LOGIN_FAILED").await;
    assert_error(app.get("/callback").await, 400, "LOGIN_FAILED").await;
}

#[tokio::test]
async fn a_provider_error_ends_in_login_failed() {
    let app = spawn_app().await;
    let authorize_url = app.start_login(&app.client).await;
    let callback = app.op.authorize_error(&authorize_url, "access_denied");
    let body = assert_error(
        app.client.get(&callback).send().await.unwrap(),
        400,
        "LOGIN_FAILED",
    )
    .await;
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("access_denied")
    );
    assert_eq!(app.userinfo().await["authenticated"], false);
}

#[tokio::test]
async fn a_mixed_up_issuer_parameter_fails() {
    let app = spawn_app().await;
    let authorize_url = app.start_login(&app.client).await;
    let callback = app.op.authorize(&authorize_url, &TestUser::alice());
    let forged = callback.replace(
        &urlencode(&app.op.issuer()),
        &urlencode("https://evil.example"),
    );
    assert_ne!(forged, callback);
    assert_error(
        app.client.get(&forged).send().await.unwrap(),
        400,
        "LOGIN_FAILED",
    )
    .await;
    assert_eq!(app.userinfo().await["authenticated"], false);
}

async fn login_with_fault(fault: IdTokenFault) {
    let app = spawn_app().await;
    app.op.set_id_token_fault(Some(fault));
    let response = app.login_with(&app.client, &TestUser::alice()).await;
    assert!(session_cookie(&response).is_none_or(|cookie| cookie.starts_with("ctIDENTITY=;")));
    assert_error(response, 400, "LOGIN_FAILED").await;
    assert_eq!(app.userinfo().await["authenticated"], false);
}

#[tokio::test]
async fn a_wrong_nonce_fails() {
    login_with_fault(IdTokenFault::WrongNonce).await;
}

#[tokio::test]
async fn a_wrong_audience_fails() {
    login_with_fault(IdTokenFault::WrongAudience).await;
}

#[tokio::test]
async fn a_wrong_issuer_in_the_id_token_fails() {
    login_with_fault(IdTokenFault::WrongIssuer).await;
}

#[tokio::test]
async fn an_expired_id_token_fails() {
    login_with_fault(IdTokenFault::Expired).await;
}

#[tokio::test]
async fn an_id_token_issued_in_the_future_fails() {
    login_with_fault(IdTokenFault::IssuedInFuture).await;
}

#[tokio::test]
async fn a_badly_signed_id_token_fails() {
    login_with_fault(IdTokenFault::BadSignature).await;
}

#[tokio::test]
async fn an_id_token_with_an_unknown_key_fails() {
    login_with_fault(IdTokenFault::UnknownKid).await;
}

#[tokio::test]
async fn an_unsigned_id_token_fails() {
    login_with_fault(IdTokenFault::AlgNone).await;
}

#[tokio::test]
async fn several_audiences_without_azp_fail() {
    login_with_fault(IdTokenFault::MultipleAudNoAzp).await;
}

#[tokio::test]
async fn a_foreign_azp_fails() {
    login_with_fault(IdTokenFault::WrongAzp).await;
}

#[tokio::test]
async fn browsers_get_the_html_error_page() {
    let app = spawn_app().await;
    let response = app.get_html("/login").await;
    assert_eq!(response.status(), 400);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    assert!(page.contains("MISSING_PARAMETER"), "{page}");
    let response = app.get_html("/callback?state=nope&code=x").await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("LOGIN_FAILED"));
}

#[tokio::test]
async fn an_unreachable_provider_makes_login_answer_provider_unavailable() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            tail: format!(
                "[[providers]]\nid = \"down\"\nissuer = \"http://127.0.0.1:{closed_port}\"\nclient_id = \"identity\"\nclient_secret = \"s\"\n"
            ),
            ..AppOptions::default()
        },
    )
    .await;
    let response = app
        .get(&format!(
            "/login?returnURL={}&provider=down",
            urlencode(APP_URL)
        ))
        .await;
    assert_error(response, 502, "PROVIDER_UNAVAILABLE").await;
    // The other provider still works.
    let response = app
        .get(&format!(
            "/login?returnURL={}&provider=local",
            urlencode(APP_URL)
        ))
        .await;
    let callback = app.op.authorize(&location(&response), &TestUser::alice());
    assert_eq!(app.client.get(callback).send().await.unwrap().status(), 302);
    assert_eq!(app.userinfo().await["authenticated"], true);
}

#[tokio::test]
async fn an_id_token_signed_with_hmac_over_the_public_key_fails() {
    login_with_fault(IdTokenFault::HmacKeyConfusion).await;
}

#[tokio::test]
async fn an_id_token_without_nonce_fails() {
    login_with_fault(IdTokenFault::NoNonce).await;
}

#[tokio::test]
async fn an_id_token_with_azp_naming_us_and_several_audiences_is_accepted() {
    let app = spawn_app().await;
    app.op.set_id_token_azp(true);
    app.login(&TestUser::alice()).await;
    assert_eq!(app.userinfo().await["authenticated"], true);
}

#[tokio::test]
async fn templates_dir_overrides_the_built_in_pages() {
    let dir = std::env::temp_dir().join(format!(
        "identity-templates-{}",
        identity_service::crypto::random_token::<6>().unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("error.html"),
        "<p>Custom page: {{ code }} / {{ message }}</p>",
    )
    .unwrap();
    let op = FakeOp::start().await;
    let text = crate::helpers::config_text(&op, 0, &AppOptions::default()).replace(
        "[server]\n",
        &format!("[server]\ntemplates_dir = \"{}\"\n", dir.display()),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let text = text.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let config = crate::helpers::load_config_text(&text).unwrap();
    let application = identity_service::startup::Application::build_with_listener(config, listener)
        .await
        .unwrap();
    tokio::spawn(application.run_until_stopped());
    let response = browser()
        .get(format!("http://127.0.0.1:{port}/login"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let page = response.text().await.unwrap();
    assert!(page.contains("Custom page: MISSING_PARAMETER"), "{page}");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_provider_that_goes_down_after_discovery_makes_login_answer_provider_unavailable() {
    let app = spawn_app().await;
    app.login(&TestUser::alice()).await;
    app.op.set_unavailable(true);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let response = app
        .get(&format!("/login?returnURL={}", urlencode(APP_URL)))
        .await;
    assert_error(response, 502, "PROVIDER_UNAVAILABLE").await;
    // Existing sessions keep working.
    assert_eq!(app.userinfo().await["authenticated"], true);
    app.op.set_unavailable(false);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        app.get(&format!("/login?returnURL={}", urlencode(APP_URL)))
            .await
            .status(),
        302
    );
}
