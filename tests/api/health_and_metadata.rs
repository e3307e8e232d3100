//! `/metadata`, `/health/*`, `/metrics`, unknown routes.

use crate::fake_op::{FakeOp, TestUser};
use crate::helpers::{AppOptions, assert_error, spawn_app, spawn_app_for};

#[tokio::test]
async fn metadata_names_the_providers_and_no_secret() {
    let app = spawn_app().await;
    let response = app.get("/metadata").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let text = response.text().await.unwrap();
    assert!(!text.contains("identity-secret"));
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["name"], "identity-service");
    assert!(body["version"].is_string());
    assert_eq!(
        body["providers"],
        serde_json::json!([{"id": "local", "name": "Local login", "url": app.op.issuer()}])
    );
}

#[tokio::test]
async fn ready_and_live_report_their_checks() {
    let app = spawn_app().await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"ready": true, "checks": {"store": "ok", "providers": {"local": "ok"}}})
    );
    assert_eq!(app.get("/health/live").await.status(), 200);
}

#[tokio::test]
async fn ready_is_503_while_a_provider_is_not_discovered() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            tail: format!("[[providers]]\nid = \"down\"\nissuer = \"http://127.0.0.1:{closed_port}\"\nclient_id = \"c\"\nclient_secret = \"s\"\n"),
            ..AppOptions::default()
        },
    )
    .await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["ready"], false);
    assert_eq!(body["checks"]["providers"]["local"], "ok");
    assert_ne!(body["checks"]["providers"]["down"], "ok");
    assert_eq!(app.get("/health/live").await.status(), 200);
}

#[tokio::test]
async fn metrics_count_requests_and_logins() {
    let app = spawn_app().await;
    app.login(&TestUser::alice()).await;
    let _ = app.get("/userinfo").await;
    let text = app.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("identity_http_requests_total"), "{text}");
    assert!(
        text.contains("identity_logins_total{outcome=\"success\",provider=\"local\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let app = spawn_app().await;
    assert_error(app.get("/nope").await, 404, "NOT_FOUND").await;
    let response = app.client.post(app.url("/userinfo")).send().await.unwrap();
    assert_error(response, 405, "METHOD_NOT_ALLOWED").await;
}

#[tokio::test]
async fn openapi_documents_every_endpoint() {
    let app = spawn_app().await;
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    let document: serde_json::Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(document["servers"][0]["url"], app.address.as_str());
    let paths = document["paths"].as_object().unwrap();
    for path in [
        "/login",
        "/callback",
        "/logout",
        "/logout/callback",
        "/userinfo",
        "/token-targets",
        "/token",
        "/backchannel-logout",
        "/metadata",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/.well-known/jwks.json",
        "/openapi.json",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} is missing from /openapi.json"
        );
    }
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    assert!(document["paths"]["/token"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"].is_object());
}
