//! SPEC 5: an expired session access token is refreshed exactly once, however many
//! requests arrive together on however many instances.

use std::time::Duration;

use futures_util::future::join_all;

use crate::fake_op::{FakeOp, TestUser};
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
    for round in 1..=3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
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
