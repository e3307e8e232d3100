//! Bearer callers (SPEC 5): JWT access tokens and introspected opaque tokens.

use std::time::Duration;

use crate::fake_op::{SigningKeyChoice, TestUser};
use crate::helpers::{AppOptions, TestApp, assert_error, spawn_app, spawn_app_with};

async fn bearer_app(extra: &str) -> TestApp {
    spawn_app_with(AppOptions {
        provider_extra: format!("accept_bearer = true\nbearer_audience = \"identity\"\n{extra}"),
        ..AppOptions::default()
    })
    .await
}

async fn userinfo_with_token(app: &TestApp, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_valid_jwt_access_token_identifies_the_caller() {
    let app = bearer_app("").await;
    let alice = TestUser::alice();
    let token = app.op.access_token_for(&alice, "identity", 300);
    let response = userinfo_with_token(&app, &token).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["authenticated"], true);
    assert_eq!(body["subject"], alice.sub);
    assert_eq!(body["provider"], "local");
    assert_eq!(body["roles"], serde_json::json!(alice.roles));
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    assert!((expires_at.timestamp() - (chrono::Utc::now().timestamp() + 300)).abs() <= 5);
}

#[tokio::test]
async fn bad_bearer_tokens_are_401() {
    let app = bearer_app("").await;
    let alice = TestUser::alice();
    let now = chrono::Utc::now().timestamp();
    let bad = [
        "garbage".to_owned(),
        app.op.access_token_for(&alice, "identity", -60),
        app.op.access_token_for(&alice, "someone-else", 300),
        app.op.sign(
            serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300}),
            SigningKeyChoice::Attacker,
            serde_json::Value::Null,
        ),
        app.op.sign(
            serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300}),
            SigningKeyChoice::Current,
            serde_json::json!({"alg": "none"}),
        ),
        app.op.sign(
            serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300}),
            SigningKeyChoice::Current,
            serde_json::json!({"alg": "HS256"}),
        ),
        app.op.sign(
            serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300, "nbf": now + 200}),
            SigningKeyChoice::Current,
            serde_json::Value::Null,
        ),
        app.op.sign(
            serde_json::json!({"iss": "https://evil.example", "sub": "x", "aud": "identity", "exp": now + 300}),
            SigningKeyChoice::Attacker,
            serde_json::Value::Null,
        ),
    ];
    for token in bad {
        assert_error(userinfo_with_token(&app, &token).await, 401, "UNAUTHORIZED").await;
    }
}

#[tokio::test]
async fn a_bad_bearer_token_is_401_even_with_a_valid_cookie() {
    let app = bearer_app("").await;
    app.login(&TestUser::alice()).await;
    let response = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "UNAUTHORIZED").await;
    let other_scheme = app
        .client
        .get(app.url("/userinfo"))
        .header("Authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other_scheme.json::<serde_json::Value>().await.unwrap()["authenticated"],
        true
    );
}

#[tokio::test]
async fn without_a_provider_accepting_bearer_tokens_a_bearer_header_is_401() {
    let app = spawn_app().await;
    let token = app.op.access_token_for(&TestUser::alice(), "identity", 300);
    assert_error(userinfo_with_token(&app, &token).await, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_cached_within_their_lifetime() {
    let app = bearer_app("introspection = true").await;
    let alice = TestUser::alice();
    let token = app.op.opaque_token_for(&alice, "identity", 300);
    for _ in 0..5 {
        let response = userinfo_with_token(&app, &token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["subject"],
            alice.sub
        );
    }
    assert_eq!(app.op.introspection_calls(), 1, "answers are cached");
}

#[tokio::test]
async fn the_introspection_cache_never_outlives_the_token() {
    let app = bearer_app("introspection = true").await;
    let token = app.op.opaque_token_for(&TestUser::alice(), "identity", 2);
    assert_eq!(userinfo_with_token(&app, &token).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_error(userinfo_with_token(&app, &token).await, 401, "UNAUTHORIZED").await;
    assert_eq!(app.op.introspection_calls(), 2);
}

#[tokio::test]
async fn inactive_or_foreign_audience_introspection_answers_are_401() {
    let app = bearer_app("introspection = true").await;
    let token = app.op.opaque_token_for(&TestUser::alice(), "identity", 300);
    app.op.revoke_access_token(&token);
    assert_error(userinfo_with_token(&app, &token).await, 401, "UNAUTHORIZED").await;
    let foreign = app
        .op
        .opaque_token_for(&TestUser::alice(), "someone-else", 300);
    assert_error(
        userinfo_with_token(&app, &foreign).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(
        userinfo_with_token(&app, "opaque-garbage").await,
        401,
        "UNAUTHORIZED",
    )
    .await;
}

#[tokio::test]
async fn an_id_token_is_not_accepted_as_a_bearer_token() {
    let app = bearer_app("").await;
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300, "iat": now, "nonce": "n"});
    let id_token = app
        .op
        .sign(claims, SigningKeyChoice::Current, serde_json::Value::Null);
    assert_error(
        userinfo_with_token(&app, &id_token).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let keycloak_style = app.op.sign(
        serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300, "typ": "ID"}),
        SigningKeyChoice::Current,
        serde_json::Value::Null,
    );
    assert_error(
        userinfo_with_token(&app, &keycloak_style).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let logout_typed = app.op.sign(
        serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300}),
        SigningKeyChoice::Current,
        serde_json::json!({"typ": "logout+jwt"}),
    );
    assert_error(
        userinfo_with_token(&app, &logout_typed).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let access_typed = app.op.sign(
        serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300}),
        SigningKeyChoice::Current,
        serde_json::json!({"typ": "at+jwt"}),
    );
    assert_eq!(userinfo_with_token(&app, &access_typed).await.status(), 200);
}
