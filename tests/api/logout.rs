//! `GET /logout` and `GET /logout/callback`.

use crate::fake_op::TestUser;
use crate::helpers::{
    APP_URL, AppOptions, assert_error, location, spawn_app, spawn_app_with, urlencode,
};

fn cookie_of(client_jar_response: &reqwest::Response) -> Option<String> {
    crate::helpers::session_cookie(client_jar_response)
}

#[tokio::test]
async fn logout_without_return_url_answers_success_and_kills_the_cookie() {
    let app = spawn_app().await;
    let login = app.login_with(&app.client, &TestUser::alice()).await;
    let cookie = cookie_of(&login).unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let response = app.get("/logout").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let removal = cookie_of(&response).expect("a removal cookie");
    assert!(
        removal.contains("Max-Age=0") || removal.contains("expires="),
        "{removal}"
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["success"], true);
    let end_session_url = body["endSessionURL"]
        .as_str()
        .expect("the provider has an end_session_endpoint");
    assert!(end_session_url.starts_with(&format!("{}/logout", app.op.issuer())));
    assert!(end_session_url.contains("id_token_hint="));
    // The replayed old cookie is dead.
    let replay = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.json::<serde_json::Value>().await.unwrap()["authenticated"],
        false
    );
}

#[tokio::test]
async fn logout_with_return_url_goes_through_the_provider_and_back() {
    let app = spawn_app().await;
    app.login(&TestUser::alice()).await;
    let response = app
        .get(&format!("/logout?returnURL={}", urlencode(APP_URL)))
        .await;
    assert_eq!(response.status(), 302);
    let end_session = url::Url::parse(&location(&response)).unwrap();
    assert!(
        end_session
            .as_str()
            .starts_with(&format!("{}/logout", app.op.issuer()))
    );
    let query: std::collections::HashMap<_, _> = end_session.query_pairs().into_owned().collect();
    assert!(!query["id_token_hint"].is_empty());
    assert_eq!(query["client_id"], "identity");
    assert_eq!(
        query["post_logout_redirect_uri"],
        app.url("/logout/callback")
    );
    let state = &query["state"];
    assert_eq!(app.userinfo().await["authenticated"], false);
    let back = app
        .get(&format!("/logout/callback?state={}", urlencode(state)))
        .await;
    assert_eq!(back.status(), 302);
    assert_eq!(location(&back), APP_URL);
    // The state is single use.
    let again = app
        .get(&format!("/logout/callback?state={}", urlencode(state)))
        .await;
    assert_ne!(again.status(), 302);
}

#[tokio::test]
async fn without_rp_initiated_logout_the_browser_goes_straight_back() {
    let app = spawn_app_with(AppOptions {
        provider_extra: "logout.rp_initiated = false".to_owned(),
        ..AppOptions::default()
    })
    .await;
    app.login(&TestUser::alice()).await;
    let response = app
        .get(&format!("/logout?returnURL={}", urlencode(APP_URL)))
        .await;
    assert_eq!(response.status(), 302);
    assert_eq!(location(&response), APP_URL);
    assert_eq!(app.userinfo().await["authenticated"], false);
}

#[tokio::test]
async fn logging_out_without_a_session_is_not_an_error() {
    let app = spawn_app().await;
    let response = app.get("/logout").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"success": true})
    );
    let response = app
        .get(&format!("/logout?returnURL={}", urlencode(APP_URL)))
        .await;
    assert_eq!(response.status(), 302);
    assert_eq!(location(&response), APP_URL);
}

#[tokio::test]
async fn logout_refuses_a_foreign_return_url_and_keeps_the_session() {
    let app = spawn_app().await;
    app.login(&TestUser::alice()).await;
    let response = app
        .get(&format!(
            "/logout?returnURL={}",
            urlencode("https://evil.com/")
        ))
        .await;
    assert_error(response, 400, "REDIRECT_NOT_ALLOWED").await;
    assert_eq!(app.userinfo().await["authenticated"], true);
}

#[tokio::test]
async fn an_unknown_logout_state_shows_the_signed_out_page_to_browsers() {
    let app = spawn_app().await;
    let response = app.get_html("/logout/callback?state=unknown").await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("signed out"));
}
