//! Sessions: the ticket cookie, encryption at rest, fresh ids, idle and absolute expiry,
//! and the memory store behaving like Redis.

use std::time::Duration;

use redis::AsyncCommands;

use crate::fake_op::TestUser;
use crate::helpers::{AppOptions, redis_url, session_cookie, spawn_app, spawn_app_with};

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("ctIDENTITY=")
        .to_owned()
}

#[tokio::test]
async fn the_cookie_is_an_opaque_ticket_with_enough_randomness() {
    let app = spawn_app().await;
    let response = app.login_with(&app.client, &TestUser::alice()).await;
    let value = cookie_value(&session_cookie(&response).unwrap());
    let (id, secret) = value.split_once('.').expect("<id>.<secret>");
    let decode = |text: &str| identity_service::crypto::b64_decode(text).unwrap();
    assert!(decode(id).len() >= 16);
    assert!(decode(secret).len() >= 16);
}

#[tokio::test]
async fn a_copy_of_redis_holds_no_cookie_no_token_and_no_plain_claims() {
    let app = spawn_app().await;
    let alice = TestUser::alice();
    let response = app.login_with(&app.client, &alice).await;
    let cookie = cookie_value(&session_cookie(&response).unwrap());
    let (id, _) = cookie.split_once('.').unwrap();
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis.keys(format!("{}*", app.prefix)).await.unwrap();
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(!key.contains(id), "a key contains the cookie id: {key}");
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
        if kind != "string" {
            continue;
        }
        let value: Vec<u8> = redis.get(key).await.unwrap();
        let text = String::from_utf8_lossy(&value);
        for secret in [
            cookie.as_str(),
            id,
            alice.email.as_str(),
            alice.preferred_username.as_str(),
            "eyJ",
        ] {
            assert!(!text.contains(secret), "{key} holds {secret} in clear");
        }
    }
}

#[tokio::test]
async fn every_login_gets_a_new_session_id_and_the_old_one_dies() {
    let app = spawn_app().await;
    let first = cookie_value(
        &session_cookie(&app.login_with(&app.client, &TestUser::alice()).await).unwrap(),
    );
    let second = cookie_value(
        &session_cookie(&app.login_with(&app.client, &TestUser::alice()).await).unwrap(),
    );
    assert_ne!(first, second);
    let old = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .header("Cookie", format!("ctIDENTITY={first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        old.json::<serde_json::Value>().await.unwrap()["authenticated"],
        false
    );
    assert_eq!(app.userinfo().await["authenticated"], true);
}

#[tokio::test]
async fn a_tampered_secret_opens_nothing() {
    let app = spawn_app().await;
    let cookie = cookie_value(
        &session_cookie(&app.login_with(&app.client, &TestUser::alice()).await).unwrap(),
    );
    let (id, _) = cookie.split_once('.').unwrap();
    let forged = format!(
        "{id}.{}",
        identity_service::crypto::random_token::<32>().unwrap()
    );
    let response = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .header("Cookie", format!("ctIDENTITY={forged}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["authenticated"],
        false
    );
}

#[tokio::test]
async fn an_idle_session_expires() {
    let app = spawn_app_with(AppOptions {
        session_extra: "idle_timeout = \"2s\"\nmax_lifetime = \"1h\"".to_owned(),
        ..AppOptions::default()
    })
    .await;
    app.login(&TestUser::alice()).await;
    assert_eq!(app.userinfo().await["authenticated"], true);
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(app.userinfo().await["authenticated"], false);
}

#[tokio::test]
async fn use_keeps_a_session_alive_until_its_maximum_lifetime() {
    let app = spawn_app_with(AppOptions {
        session_extra: "idle_timeout = \"2s\"\nmax_lifetime = \"5s\"".to_owned(),
        ..AppOptions::default()
    })
    .await;
    app.login(&TestUser::alice()).await;
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(app.userinfo().await["authenticated"], true);
    }
    // Times are whole seconds: 5.8 s after login is past a 5 s lifetime whatever the rounding.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(app.userinfo().await["authenticated"], false);
}

#[tokio::test]
async fn the_memory_store_runs_the_same_flow() {
    let app = spawn_app_with(AppOptions {
        store: "memory",
        ..AppOptions::default()
    })
    .await;
    app.login(&TestUser::alice()).await;
    assert_eq!(app.userinfo().await["authenticated"], true);
    let response = app.get("/logout").await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.userinfo().await["authenticated"], false);
}

#[tokio::test]
async fn the_memory_store_expires_idle_sessions() {
    let app = spawn_app_with(AppOptions {
        store: "memory",
        session_extra: "idle_timeout = \"1s\"\nmax_lifetime = \"1h\"".to_owned(),
        ..AppOptions::default()
    })
    .await;
    app.login(&TestUser::alice()).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(app.userinfo().await["authenticated"], false);
}
