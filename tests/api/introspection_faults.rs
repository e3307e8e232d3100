//! Issue 17 point 5 (SPEC 7): introspection failures stay per provider. One introspecting
//! provider down or hanging neither refuses nor delays another's opaque tokens; a flood
//! of unknown tokens never makes a valid one look refused; a token no provider could
//! judge in time is 502 `PROVIDER_UNAVAILABLE` (not 401) and is not a refused credential
//! for `[limits]`.

use std::time::{Duration, Instant};

use crate::fake_op::{FakeOp, SigningKeyChoice, TestUser};
use crate::helpers::{AppOptions, TestApp, assert_error, spawn_app_for};

/// Provider "local" (`app.op`, first in order) and provider "other" (`other`), both
/// introspecting opaque tokens; `tail` is extra TOML.
async fn two_providers(tail: &str) -> (TestApp, FakeOp) {
    let local = FakeOp::start().await;
    let other = FakeOp::start().await;
    let app = spawn_app_for(
        &local,
        AppOptions {
            provider_extra: "accept_bearer = true\nintrospection = true\n".to_owned(),
            tail: format!(
                "[[providers]]\nid = \"other\"\nissuer = \"{}\"\nclient_id = \"identity\"\nclient_secret = \"identity-secret\"\naccept_bearer = true\nintrospection = true\n{tail}",
                other.issuer()
            ),
            ..AppOptions::default()
        },
    )
    .await;
    (app, other)
}

/// `op`'s introspection endpoint answers 503 from now on.
async fn introspection_fails(op: &FakeOp) {
    wiremock::Mock::given(wiremock::matchers::path("/introspect"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .with_priority(1)
        .mount(op.server())
        .await;
}

/// Counts introspection requests as they arrive and answers each after a minute.
struct Hanging(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl wiremock::Respond for Hanging {
    fn respond(&self, _request: &wiremock::Request) -> wiremock::ResponseTemplate {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        wiremock::ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"active": false}))
            .set_delay(Duration::from_secs(60))
    }
}

/// `op`'s introspection endpoint takes a minute to answer from now on; `arrived` counts
/// the calls.
async fn introspection_hangs(op: &FakeOp, arrived: std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    wiremock::Mock::given(wiremock::matchers::path("/introspect"))
        .respond_with(Hanging(arrived))
        .with_priority(1)
        .mount(op.server())
        .await;
}

async fn userinfo_with(app: &TestApp, client: &reqwest::Client, token: &str) -> reqwest::Response {
    client
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn assert_others_token_is_accepted(app: &TestApp, other: &FakeOp) {
    let token = other.opaque_token_for(&TestUser::alice(), "identity", 300);
    assert_accepted(app, &token).await;
}

/// `token` (the other provider's) is accepted, without waiting for the first provider.
async fn assert_accepted(app: &TestApp, token: &str) {
    let started = Instant::now();
    let response = userinfo_with(app, &client(), token).await;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["provider"], "other", "{body}");
    assert_eq!(body["subject"], TestUser::alice().sub, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?} for the provider that is down",
        started.elapsed()
    );
}

#[tokio::test]
async fn one_providers_introspection_down_does_not_refuse_anothers_tokens() {
    let (app, other) = two_providers("").await;
    introspection_fails(&app.op).await;
    assert_others_token_is_accepted(&app, &other).await;
    // A token neither provider accepts, while one of them cannot answer: not refused.
    assert_error(
        userinfo_with(&app, &client(), "unknown-opaque-token").await,
        502,
        "PROVIDER_UNAVAILABLE",
    )
    .await;
}

#[tokio::test]
async fn one_providers_introspection_hanging_does_not_delay_anothers_tokens() {
    let (app, other) = two_providers("").await;
    let arrived = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    introspection_hangs(&app.op, arrived.clone()).await;
    let token = other.opaque_token_for(&TestUser::alice(), "identity", 300);
    assert_accepted(&app, &token).await;
    // Accepted once, the token is not asked about again, at either provider.
    for _ in 0..3 {
        assert_accepted(&app, &token).await;
    }
    assert_eq!(other.introspection_calls(), 1);
    assert_eq!(arrived.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_flood_of_unknown_tokens_never_makes_a_valid_token_look_refused() {
    let (app, other) = two_providers("").await;
    let arrived = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    introspection_hangs(&app.op, arrived.clone()).await;
    let flood_client = client();
    let flood = futures_util::future::join_all((0..200).map(|index| {
        let (app, flood_client) = (&app, &flood_client);
        async move { userinfo_with(app, flood_client, &format!("junk-token-{index}")).await }
    }));
    let valid = async {
        // Once the flood fills the hanging provider's slots.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_others_token_is_accepted(&app, &other).await;
        arrived.load(std::sync::atomic::Ordering::SeqCst)
    };
    let (flood, arrived_meanwhile) = tokio::join!(flood, valid);
    // The hanging provider never had more than its bound of calls at once.
    assert!(
        arrived_meanwhile <= identity_service::oidc::bearer::MAX_CONCURRENT_INTROSPECTIONS,
        "{arrived_meanwhile} calls at once"
    );
    for response in flood {
        // The hanging provider might have known them: unanswered, never "refused".
        assert_error(response, 502, "PROVIDER_UNAVAILABLE").await;
    }
}

#[tokio::test]
async fn the_only_provider_down_is_502_and_not_a_refused_credential() {
    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            provider_extra: "accept_bearer = true\nintrospection = true\n".to_owned(),
            tail: "[limits]\nfailed_auth_per_minute = 1\n".to_owned(),
            ..AppOptions::default()
        },
    )
    .await;
    introspection_fails(&app.op).await;
    let client = client();
    for index in 0..4 {
        let token = format!("opaque-token-{index}");
        assert_error(
            userinfo_with(&app, &client, &token).await,
            502,
            "PROVIDER_UNAVAILABLE",
        )
        .await;
    }
    // The failed-auth bucket is still full: the first refused credential empties it.
    let forged = app.op.sign(
        serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity",
            "exp": chrono::Utc::now().timestamp() + 300}),
        SigningKeyChoice::Attacker,
        serde_json::Value::Null,
    );
    assert_error(
        userinfo_with(&app, &client, &forged).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(
        userinfo_with(&app, &client, &forged).await,
        429,
        "TOO_MANY_REQUESTS",
    )
    .await;
}
