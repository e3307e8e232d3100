//! Providers that misbehave or go quiet (issue 9 points 12, 17, 19): a silent provider
//! answers PROVIDER_UNAVAILABLE quickly and without queueing, a healthy one is not asked
//! twice per login, hostile token lifetimes do not wrap, and `private_key_jwt` sends
//! `client_id` once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::fake_op::{CLIENT_RSA_PUBLIC_PEM, FakeOp, SigningKeyChoice, TestUser, fixture_path};
use crate::helpers::{
    APP_URL, AppOptions, assert_error, location, spawn_app, spawn_app_for, urlencode,
};
use crate::targets::post_token;

/// A TCP listener that accepts every connection, counts it and never answers.
async fn silent_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn a_silent_provider_fails_logins_fast_without_queueing_them() {
    let (port, accepted) = silent_listener().await;
    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            tail: format!(
                "[[providers]]\nid = \"silent\"\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"identity\"\nclient_secret = \"s\"\n"
            ),
            ..AppOptions::default()
        },
    )
    .await;
    let login = || {
        app.client
            .get(app.url(&format!(
                "/login?returnURL={}&provider=silent",
                urlencode(APP_URL)
            )))
            .send()
    };
    let before = accepted.load(Ordering::SeqCst);
    let started = Instant::now();
    let responses = join_all((0..20).map(|_| login())).await;
    let burst = started.elapsed();
    for response in responses {
        assert_error(response.unwrap(), 502, "PROVIDER_UNAVAILABLE").await;
    }
    eprintln!("silent provider: 20 concurrent logins answered 502 in {burst:?}");
    assert!(burst < Duration::from_secs(3), "20 logins took {burst:?}");
    let attempts = accepted.load(Ordering::SeqCst) - before;
    assert!(
        attempts <= 2,
        "{attempts} upstream connections for one burst"
    );
    // The other provider is unaffected.
    let response = app
        .get(&format!(
            "/login?returnURL={}&provider=local",
            urlencode(APP_URL)
        ))
        .await;
    assert_eq!(response.status(), 302);
}

#[tokio::test]
async fn a_provider_that_goes_silent_fails_the_next_logins_within_three_seconds() {
    let app = spawn_app().await;
    app.login(&TestUser::alice()).await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(wiremock::ResponseTemplate::new(200).set_delay(Duration::from_secs(60)))
        .with_priority(1)
        .mount(app.op.server())
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = Instant::now();
    let responses = join_all((0..20).map(|_| {
        app.client
            .get(app.url(&format!("/login?returnURL={}", urlencode(APP_URL))))
            .send()
    }))
    .await;
    let burst = started.elapsed();
    for response in responses {
        assert_error(response.unwrap(), 502, "PROVIDER_UNAVAILABLE").await;
    }
    eprintln!("provider gone silent: 20 concurrent logins answered 502 in {burst:?}");
    assert!(burst < Duration::from_secs(3), "20 logins took {burst:?}");
    // Existing sessions keep working.
    assert_eq!(app.userinfo().await["authenticated"], true);
}

#[tokio::test]
async fn a_login_to_a_healthy_provider_does_not_refetch_its_keys() {
    let app = spawn_app().await;
    app.login(&TestUser::alice()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let jwks = app.op.jwks_calls();
    let discovery = app.op.calls("/.well-known/openid-configuration");
    app.login(&TestUser::alice()).await;
    assert_eq!(app.op.jwks_calls(), jwks, "no JWKS fetch per login");
    assert!(app.op.calls("/.well-known/openid-configuration") <= discovery + 1);
}

#[tokio::test]
async fn private_key_jwt_sends_client_id_once_in_the_code_exchange() {
    let op = FakeOp::start().await;
    op.register_client_key("identity-k", CLIENT_RSA_PUBLIC_PEM);
    let app = spawn_app_for(
        &op,
        AppOptions {
            tail: format!(
                "[[providers]]\nid = \"keyed\"\nissuer = \"{}\"\nclient_id = \"identity-k\"\nauth_method = \"private_key_jwt\"\nprivate_key_file = \"{}\"\n",
                op.issuer(),
                fixture_path("client-rsa.pem").display()
            ),
            ..AppOptions::default()
        },
    )
    .await;
    let response = app
        .get(&format!(
            "/login?returnURL={}&provider=keyed",
            urlencode(APP_URL)
        ))
        .await;
    let callback = op.authorize(&location(&response), &TestUser::alice());
    let response = app.client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let form = op.last_token_request("authorization_code").unwrap();
    assert_eq!(form.all("client_id"), vec!["identity-k"]);
    assert!(form.get("client_assertion").is_some());
}

#[tokio::test]
async fn a_login_whose_token_answer_has_a_hostile_expires_in_does_not_wrap() {
    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            tail: "[[targets]]\nurl = \"https://api.example.com/\"\nstrategy = \"access_token\"\n"
                .to_owned(),
            ..AppOptions::default()
        },
    )
    .await;
    let authorize_url = app.start_login(&app.client).await;
    let nonce = url::Url::parse(&authorize_url)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "nonce")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    let callback = op.authorize(&authorize_url, &TestUser::alice());
    let now = chrono::Utc::now().timestamp();
    let alice = TestUser::alice();
    let id_token = op.sign(
        serde_json::json!({"iss": op.issuer(), "sub": alice.sub, "aud": "identity", "iat": now,
            "exp": now + 300, "nonce": nonce}),
        SigningKeyChoice::Current,
        serde_json::Value::Null,
    );
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/token"))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": op.access_token_for(&alice, "identity", 300),
            "token_type": "Bearer", "expires_in": u64::MAX, "id_token": id_token})),
        )
        .with_priority(1)
        .mount(op.server())
        .await;
    let response = app.client.get(callback).send().await.unwrap();
    assert_eq!(response.status(), 302);
    let response = post_token(&app, "https://api.example.com/").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    let expires = chrono::DateTime::parse_from_rfc3339(body["token"]["expires"].as_str().unwrap())
        .unwrap()
        .timestamp();
    assert!(expires > now && expires < now + 400 * 24 * 3600, "{body}");
}
