//! `GET /userinfo`.

use crate::fake_op::TestUser;
use crate::helpers::spawn_app;

#[tokio::test]
async fn without_a_session_userinfo_says_not_authenticated() {
    let app = spawn_app().await;
    let response = app.get("/userinfo").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"authenticated": false}));
}

#[tokio::test]
async fn a_garbage_cookie_is_no_session() {
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    for cookie in ["ctIDENTITY=garbage", "ctIDENTITY=a.b", "ctIDENTITY=%00%ff"] {
        let response = client
            .get(app.url("/userinfo"))
            .header("Cookie", cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["authenticated"],
            false
        );
    }
}

#[tokio::test]
async fn userinfo_maps_the_configured_claims() {
    let app = spawn_app().await;
    let alice = TestUser::alice();
    app.login(&alice).await;
    let body = app.userinfo().await;
    assert_eq!(body["authenticated"], true);
    assert_eq!(body["name"], alice.preferred_username);
    assert_eq!(body["subject"], alice.sub);
    assert_eq!(body["provider"], "local");
    assert_eq!(body["roles"], serde_json::json!(alice.roles));
    assert_eq!(body["groups"], serde_json::json!(alice.groups));
    assert_eq!(
        body["attributes"],
        serde_json::json!({"email": alice.email})
    );
    let expires_at = body["expiresAt"].as_str().unwrap();
    assert!(expires_at.ends_with('Z'), "{expires_at}");
    let expires_at = chrono::DateTime::parse_from_rfc3339(expires_at).unwrap();
    let idle_end = chrono::Utc::now() + chrono::Duration::minutes(30);
    assert!(
        (expires_at.timestamp() - idle_end.timestamp()).abs() <= 5,
        "{expires_at}"
    );
}
