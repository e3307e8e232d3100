//! SPEC 5: an expired session access token is refreshed exactly once, however many
//! requests arrive together on however many instances.

use std::time::Duration;

use futures_util::future::join_all;

use crate::fake_op::{FakeOp, SigningKeyChoice, TestUser};
use crate::helpers::{AppOptions, TestApp, assert_error, spawn_app_for, spawn_two_instances};
use crate::targets::post_token;

const ACCESS_TOKEN_TARGET: &str =
    "[[targets]]\nurl = \"https://api.example.com/\"\nstrategy = \"access_token\"\n";

async fn app_with_short_tokens(op: &FakeOp) -> TestApp {
    op.set_access_token_ttl(1);
    spawn_app_for(
        op,
        AppOptions {
            tail: ACCESS_TOKEN_TARGET.to_owned(),
            ..AppOptions::default()
        },
    )
    .await
}

async fn token(app: &TestApp) -> reqwest::Response {
    post_token(app, "https://api.example.com/").await
}

#[tokio::test]
async fn an_expired_access_token_is_refreshed_once_for_a_burst() {
    let op = FakeOp::start().await;
    let app = app_with_short_tokens(&op).await;
    app.login(&TestUser::alice()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    op.set_access_token_ttl(60);
    op.set_token_delay(200);
    let responses = join_all((0..20).map(|_| token(&app))).await;
    assert!(responses.iter().all(|response| response.status() == 200));
    assert_eq!(op.token_calls("refresh_token"), 1);
}

#[tokio::test]
async fn rotating_refresh_tokens_survive_repeated_refreshes() {
    let op = FakeOp::start().await;
    op.set_rotate_refresh_tokens(true);
    let app = app_with_short_tokens(&op).await;
    app.login(&TestUser::alice()).await;
    // Expiry is kept in whole seconds (floored issue time), so a 1-second token can be
    // expired a few milliseconds after the refresh that got it; a waiter of the burst
    // reading it then rightly refreshes a second time. Refreshed tokens here live 3 s
    // (more than 2 s real), so the burst's waiters always find the new one usable.
    op.set_access_token_ttl(3);
    for round in 1..=3 {
        tokio::time::sleep(Duration::from_millis(if round == 1 { 1200 } else { 3100 })).await;
        let responses = join_all((0..10).map(|_| token(&app))).await;
        assert!(
            responses.iter().all(|response| response.status() == 200),
            "round {round}"
        );
        assert_eq!(op.token_calls("refresh_token"), round);
    }
    assert_eq!(app.userinfo().await["authenticated"], true);
}

#[tokio::test]
async fn non_rotating_providers_keep_the_old_refresh_token() {
    let op = FakeOp::start().await;
    op.set_rotate_refresh_tokens(false);
    let app = app_with_short_tokens(&op).await;
    app.login(&TestUser::alice()).await;
    for round in 1..=2 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(token(&app).await.status(), 200);
        assert_eq!(op.token_calls("refresh_token"), round);
    }
}

#[tokio::test]
async fn two_instances_refresh_once() {
    let op = FakeOp::start().await;
    op.set_rotate_refresh_tokens(true);
    op.set_access_token_ttl(1);
    let (a, b) = spawn_two_instances(&op, ACCESS_TOKEN_TARGET).await;
    let client = crate::helpers::browser();
    a.login_with(&client, &TestUser::alice()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    op.set_access_token_ttl(60);
    op.set_token_delay(200);
    let call = |app: &TestApp| {
        client
            .post(app.url("/token"))
            .header("X-Requested-With", "x")
            .form(&[("target", "https://api.example.com/")])
            .send()
    };
    let responses = join_all((0..20).map(|index| call(if index % 2 == 0 { &a } else { &b }))).await;
    assert!(
        responses
            .into_iter()
            .all(|response| response.unwrap().status() == 200)
    );
    assert_eq!(op.token_calls("refresh_token"), 1);
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session() {
    let op = FakeOp::start().await;
    let app = app_with_short_tokens(&op).await;
    app.login(&TestUser::alice()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    op.revoke_refresh_tokens();
    assert_error(token(&app).await, 401, "UNAUTHORIZED").await;
    assert_eq!(app.userinfo().await["authenticated"], false);
    assert_eq!(op.token_calls("refresh_token"), 1);
}

/// Makes the provider's refresh grant answer `body` (a forged or hostile refresh response).
async fn refresh_answers(op: &FakeOp, body: serde_json::Value) {
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path("/token"))
        .and(wiremock::matchers::body_string_contains(
            "grant_type=refresh_token",
        ))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(body))
        .with_priority(1)
        .mount(op.server())
        .await;
}

/// An ID token as a refresh would return it, with `changes` applied to alice's claims.
fn refreshed_id_token(op: &FakeOp, changes: serde_json::Value, key: SigningKeyChoice) -> String {
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::json!({"iss": op.issuer(), "sub": TestUser::alice().sub,
        "aud": "identity", "iat": now, "exp": now + 300});
    for (name, value) in changes.as_object().unwrap() {
        claims[name] = value.clone();
    }
    op.sign(claims, key, serde_json::Value::Null)
}

/// Alice logged in with a 1 s access token that has expired.
async fn alice_with_expired_access_token(op: &FakeOp) -> TestApp {
    let app = app_with_short_tokens(op).await;
    app.login(&TestUser::alice()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app
}

async fn assert_refresh_refused(changes: serde_json::Value, key: SigningKeyChoice) {
    let op = FakeOp::start().await;
    // The provider's P-256 key is published (and ES256 listed), as a provider with both
    // key kinds would; tokens it signs are still not this client's algorithm (RS256).
    op.publish_ec_key();
    let app = alice_with_expired_access_token(&op).await;
    let forged = refreshed_id_token(&op, changes, key);
    let fresh_access_token = op.access_token_for(&TestUser::alice(), "identity", 300);
    refresh_answers(
        &op,
        serde_json::json!({"access_token": fresh_access_token, "token_type": "Bearer",
            "expires_in": 300, "id_token": forged}),
    )
    .await;
    assert_error(token(&app).await, 502, "TOKEN_UNAVAILABLE").await;
    // Nothing of the answer was kept: the ID token for logout is still the login's.
    let logout = app
        .client
        .get(app.url(&format!(
            "/logout?returnURL={}",
            crate::helpers::urlencode(crate::helpers::APP_URL)
        )))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(&crate::helpers::location(&logout)).unwrap();
    let hint = location
        .query_pairs()
        .find(|(name, _)| name == "id_token_hint")
        .map(|(_, value)| value.into_owned())
        .unwrap();
    assert_ne!(hint, forged);
}

#[tokio::test]
async fn a_refreshed_id_token_from_another_issuer_hands_out_nothing() {
    assert_refresh_refused(
        serde_json::json!({"iss": "https://evil.example.com"}),
        SigningKeyChoice::Current,
    )
    .await;
}

#[tokio::test]
async fn a_refreshed_id_token_for_another_subject_hands_out_nothing() {
    assert_refresh_refused(
        serde_json::json!({"sub": "someone-else"}),
        SigningKeyChoice::Current,
    )
    .await;
}

#[tokio::test]
async fn a_refreshed_id_token_for_another_audience_hands_out_nothing() {
    assert_refresh_refused(
        serde_json::json!({"aud": ["identity", "another-client"], "azp": "identity"}),
        SigningKeyChoice::Current,
    )
    .await;
}

#[tokio::test]
async fn an_expired_or_badly_signed_refreshed_id_token_hands_out_nothing() {
    let past = chrono::Utc::now().timestamp() - 10;
    assert_refresh_refused(serde_json::json!({"exp": past}), SigningKeyChoice::Current).await;
    assert_refresh_refused(serde_json::json!({}), SigningKeyChoice::Attacker).await;
}

#[tokio::test]
async fn a_refreshed_id_token_in_another_algorithm_the_provider_lists_hands_out_nothing() {
    // SPEC 3 `id_token_signed_response_alg`: RS256 here, although ES256 is listed too.
    assert_refresh_refused(serde_json::json!({}), SigningKeyChoice::Ec).await;
}

#[tokio::test]
async fn hostile_expires_in_values_neither_wrap_nor_panic() {
    for expires_in in [
        serde_json::json!(i64::MAX),
        serde_json::json!(-5),
        serde_json::json!(1e300),
    ] {
        let op = FakeOp::start().await;
        let app = alice_with_expired_access_token(&op).await;
        let fresh_access_token = op.access_token_for(&TestUser::alice(), "identity", 300);
        refresh_answers(
            &op,
            serde_json::json!({"access_token": fresh_access_token, "token_type": "Bearer",
                "expires_in": expires_in}),
        )
        .await;
        let response = token(&app).await;
        assert_eq!(response.status(), 200, "expires_in {expires_in}");
        let body: serde_json::Value = response.json().await.unwrap();
        let expires =
            chrono::DateTime::parse_from_rfc3339(body["token"]["expires"].as_str().unwrap())
                .unwrap()
                .timestamp();
        let now = chrono::Utc::now().timestamp();
        assert!(
            expires > now && expires < now + 400 * 24 * 3600,
            "expires_in {expires_in}: {body}"
        );
    }
}

#[tokio::test]
async fn waiters_share_a_failed_refresh_instead_of_repeating_it() {
    let op = FakeOp::start().await;
    let app = app_with_short_tokens(&op).await;
    app.login(&TestUser::alice()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // The delay keeps the whole burst waiting on the first refresh, which then fails.
    op.set_token_delay(1000);
    op.fail_token_endpoint(Some((503, "temporarily_unavailable")));
    let responses = join_all((0..10).map(|_| token(&app))).await;
    for response in responses {
        assert_error(response, 502, "TOKEN_UNAVAILABLE").await;
    }
    assert_eq!(op.token_calls("refresh_token"), 1);
}
