//! Redis down: 503 SESSION_STORE_UNAVAILABLE within 2 s, and recovery without a restart.

use std::time::{Duration, Instant};

use crate::fake_op::TestUser;
use crate::helpers::{APP_URL, AppOptions, assert_error, spawn_app_with, urlencode};
use crate::private_redis::PrivateRedis;

#[tokio::test]
async fn redis_down_answers_503_quickly_and_the_service_recovers_by_itself() {
    let Some(mut redis) = PrivateRedis::start_free() else {
        return;
    };
    let app = spawn_app_with(AppOptions {
        redis_url: redis.url(),
        ..AppOptions::default()
    })
    .await;
    app.login(&TestUser::alice()).await;
    assert_eq!(app.userinfo().await["authenticated"], true);

    redis.stop();
    // A login stores nothing until its callback (SPEC 7), so it starts without Redis.
    let started = Instant::now();
    let login = app
        .get(&format!("/login?returnURL={}", urlencode(APP_URL)))
        .await;
    assert_eq!(login.status(), 302);
    assert!(started.elapsed() < Duration::from_secs(2));
    for path in ["/userinfo".to_owned(), "/logout".to_owned()] {
        let started = Instant::now();
        let response = app.get(&path).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{path} took {:?}",
            started.elapsed()
        );
        assert_error(response, 503, "SESSION_STORE_UNAVAILABLE").await;
    }
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.get("/userinfo").await;
        if response.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let errors = metrics
        .lines()
        .find_map(|line| line.strip_prefix("identity_session_store_errors_total "))
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or_default();
    assert!(errors >= 3.0, "store errors are counted: {errors}");
    // Redis kept nothing, so the user logs in again, and that works.
    app.login(&TestUser::alice()).await;
    assert_eq!(app.userinfo().await["authenticated"], true);
}
