//! `GET /token-targets`, target matching, permissions, transports and browser safety.

use crate::fake_op::TestUser;
use crate::helpers::{AppOptions, TestApp, assert_error};

const TARGETS: &str = r#"
[[targets]]
url = "https://api.example.com/api/"
strategy = "jwt"
transport = ["BEARER", "TOKEN_PARAMETER"]

[[targets]]
url = "https://api.example.com/api/admin/"
strategy = "jwt"
roles = ["admin"]

[[targets]]
url = "https://maps.example.com/"
strategy = "jwt"
transport = ["ACCESS_TOKEN_PARAMETER"]
roles = ["nobody-has-this"]

[[targets]]
url = "https://other.example.com/"
strategy = "jwt"
providers = ["partner"]
"#;

/// Targets, plus a second provider ("partner") so provider limits can be tested.
async fn app_with_targets() -> TestApp {
    let op = crate::fake_op::FakeOp::start().await;
    let partner = crate::fake_op::FakeOp::start().await;
    let tail = format!(
        "[[providers]]\nid = \"partner\"\nissuer = \"{}\"\nclient_id = \"identity\"\nclient_secret = \"identity-secret\"\n{TARGETS}",
        partner.issuer()
    );
    let app = crate::helpers::spawn_app_for(
        &op,
        AppOptions {
            tail,
            ..AppOptions::default()
        },
    )
    .await;
    std::mem::forget(partner);
    app
}

pub async fn post_token(app: &TestApp, target: &str) -> reqwest::Response {
    app.client
        .post(app.url("/token"))
        .header("X-Requested-With", "XMLHttpRequest")
        .form(&[("target", target)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn token_targets_lists_what_the_caller_may_use() {
    let app = app_with_targets().await;
    app.login(&TestUser::alice()).await;
    let response = app.get("/token-targets").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"targets": ["https://api.example.com/api/", "https://api.example.com/api/admin/"]})
    );
    let bob = crate::helpers::browser();
    app.login_with(&bob, &TestUser::bob()).await;
    let body: serde_json::Value = bob
        .get(app.url("/token-targets"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body,
        serde_json::json!({"targets": ["https://api.example.com/api/"]})
    );
}

#[tokio::test]
async fn token_targets_without_a_session_is_401_or_200_with_check() {
    let app = app_with_targets().await;
    assert_error(app.get("/token-targets").await, 401, "UNAUTHORIZED").await;
    for check in ["true", "1"] {
        let response = app.get(&format!("/token-targets?check={check}")).await;
        assert_eq!(response.status(), 200);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "UNAUTHORIZED");
    }
}

#[tokio::test]
async fn the_longest_match_wins_and_carries_its_transport() {
    let app = app_with_targets().await;
    app.login(&TestUser::alice()).await;
    let response = post_token(&app, "https://api.example.com/api/maps/layer?x=1").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        body["acceptedBy"],
        serde_json::json!([{"transportAs": ["BEARER", "TOKEN_PARAMETER"]}])
    );
    let expires = body["token"]["expires"].as_str().unwrap();
    assert!(expires.ends_with('Z'));
    let admin: serde_json::Value = post_token(&app, "https://api.example.com/api/admin/users")
        .await
        .json()
        .await
        .unwrap();
    let claims = crate::token_strategies::claims_of(admin["token"]["value"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://api.example.com/api/admin/");
}

#[tokio::test]
async fn look_alike_and_unlisted_targets_are_refused() {
    let app = app_with_targets().await;
    app.login(&TestUser::alice()).await;
    for target in [
        "https://api.example.com.evil.com/api/",
        "https://api.example.comx/api/",
        "https://api.example.com/apix",
        "http://api.example.com/api/",
        "https://api.example.com:8443/api/",
        "https://api.example.com/api/../private",
        "https://unknown.example.com/",
    ] {
        assert_error(post_token(&app, target).await, 403, "TARGET_NOT_ALLOWED").await;
    }
}

#[tokio::test]
async fn roles_and_providers_limit_targets() {
    let app = app_with_targets().await;
    app.login(&TestUser::bob()).await;
    assert_error(
        post_token(&app, "https://api.example.com/api/admin/x").await,
        403,
        "TARGET_NOT_ALLOWED",
    )
    .await;
    assert_error(
        post_token(&app, "https://maps.example.com/x").await,
        403,
        "TARGET_NOT_ALLOWED",
    )
    .await;
    assert_error(
        post_token(&app, "https://other.example.com/x").await,
        403,
        "TARGET_NOT_ALLOWED",
    )
    .await;
    assert_eq!(
        post_token(&app, "https://api.example.com/api/x")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn bad_token_requests_get_exact_errors() {
    let app = app_with_targets().await;
    let anonymous = app
        .client
        .post(app.url("/token"))
        .header("X-Requested-With", "x")
        .form(&[("target", "https://api.example.com/api/")])
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 401, "UNAUTHORIZED").await;
    app.login(&TestUser::alice()).await;
    let missing = app
        .client
        .post(app.url("/token"))
        .header("X-Requested-With", "x")
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();
    assert_error(missing, 400, "MISSING_PARAMETER").await;
    assert_error(
        post_token(&app, "not a url").await,
        400,
        "INVALID_PARAMETER",
    )
    .await;
    let huge = "a".repeat(70 * 1024);
    assert_error(post_token(&app, &huge).await, 413, "PAYLOAD_TOO_LARGE").await;
}

#[tokio::test]
async fn cookie_token_requests_must_not_be_cross_site() {
    let app = app_with_targets().await;
    app.login(&TestUser::alice()).await;
    let form = [("target", "https://api.example.com/api/")];
    let plain = app
        .client
        .post(app.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_error(plain, 403, "FORBIDDEN").await;
    let evil = app
        .client
        .post(app.url("/token"))
        .header("Origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_error(evil, 403, "FORBIDDEN").await;
    let allowed = app
        .client
        .post(app.url("/token"))
        .header("Origin", "http://localhost:3000")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    let own = app
        .client
        .post(app.url("/token"))
        .header("Origin", app.address.as_str())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
}

#[tokio::test]
async fn cors_answers_listed_origins_with_credentials_and_nothing_else() {
    let app = app_with_targets().await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/token"))
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "x-requested-with")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-credentials"],
        "true"
    );
    let simple = app
        .client
        .get(app.url("/userinfo"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(
        simple.headers()["access-control-allow-origin"],
        "http://localhost:3000"
    );
    let foreign = app
        .client
        .get(app.url("/userinfo"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert!(
        foreign
            .headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
}
