//! Hostile input at the edge (issue 9 points 1, 3, 4 and 9): cross-site token requests,
//! oversized bodies judged before authentication, targets that parse differently in
//! different clients, and what an unauthenticated `/login` may cost the store.

use redis::AsyncCommands;

use crate::fake_op::TestUser;
use crate::helpers::{
    APP_URL, AppOptions, TestApp, assert_error, browser, location, redis_url, spawn_app,
    spawn_app_with, urlencode,
};

const TARGETS: &str = r#"
[[targets]]
url = "https://api.example.com/maps/"
strategy = "jwt"
"#;

async fn app_with_a_target() -> TestApp {
    spawn_app_with(AppOptions {
        tail: TARGETS.to_owned(),
        ..AppOptions::default()
    })
    .await
}

/// `POST /token` for `target` with the app's browser and the given extra headers.
async fn post_token(app: &TestApp, target: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.post(app.url("/token"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.form(&[("target", target)]).send().await.unwrap()
}

#[tokio::test]
async fn a_foreign_origin_is_forbidden_even_with_x_requested_with() {
    let app = app_with_a_target().await;
    app.login(&TestUser::alice()).await;
    let target = "https://api.example.com/maps/x";
    for origin in [
        "https://evil.example",
        "null",
        "http://localhost:3000.evil.example",
    ] {
        let response = post_token(
            &app,
            target,
            &[("X-Requested-With", "XMLHttpRequest"), ("Origin", origin)],
        )
        .await;
        assert_error(response, 403, "FORBIDDEN").await;
    }
    let own = app.address.clone();
    for headers in [
        vec![("X-Requested-With", "XMLHttpRequest")],
        vec![("Origin", "http://localhost:3000")],
        vec![("Origin", own.as_str())],
        vec![
            ("Origin", "http://localhost:3000"),
            ("X-Requested-With", "x"),
        ],
    ] {
        let response = post_token(&app, target, &headers).await;
        assert_eq!(response.status(), 200, "{headers:?}");
    }
    assert_error(post_token(&app, target, &[]).await, 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn a_body_declared_over_64_kib_is_refused_before_authentication() {
    let app = app_with_a_target().await;
    let anonymous = browser();
    let body = format!("target={}", "a".repeat(70 * 1024));
    for path in ["/token", "/backchannel-logout"] {
        let response = anonymous
            .post(app.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Requested-With", "x")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_error(response, 413, "PAYLOAD_TOO_LARGE").await;
    }
    // Just under the limit, the same anonymous request is judged on authentication.
    let small = format!("target={}", "a".repeat(1024));
    let response = anonymous
        .post(app.url("/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Requested-With", "x")
        .body(small)
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn targets_that_clients_read_differently_are_not_allowed() {
    let app = app_with_a_target().await;
    app.login(&TestUser::alice()).await;
    let xrw = [("X-Requested-With", "XMLHttpRequest")];
    for target in [
        "https://api.example.com@evil.com/maps/",
        "https://api.example.com\\@evil.com/x",
        "https://api.example.com\\@evil.com/maps/x",
        "https://user:pw@api.example.com/maps/",
        "https://api.example.com/maps/\tx",
        "https://api.example.com/maps/%09x",
        "https://api.example.com/maps/%5C..%5Cadmin",
        "https://api.example.com/maps/%2F..%2F..%2Fadmin",
    ] {
        let response = post_token(&app, target, &xrw).await;
        assert_error(response, 403, "TARGET_NOT_ALLOWED").await;
    }
    assert_eq!(
        post_token(&app, "https://api.example.com/maps/x", &xrw)
            .await
            .status(),
        200
    );
}

/// The login cookies (`ctIDENTITY_login_…`) a response sets.
fn login_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter(|value| value.starts_with("ctIDENTITY_login_"))
        .map(str::to_owned)
        .collect()
}

async fn redis_keys(prefix: &str) -> Vec<String> {
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    redis.keys(format!("{prefix}*")).await.unwrap()
}

/// A returnURL of about `len` bytes on an allowed origin.
fn long_return_url(len: usize) -> String {
    format!("{APP_URL}?pad={}", "a".repeat(len - APP_URL.len() - 5))
}

#[tokio::test]
async fn a_login_stores_nothing_and_travels_in_a_cookie_for_its_callback_only() {
    let app = spawn_app().await;
    let return_url = long_return_url(2048);
    for _ in 0..20 {
        let response = browser()
            .get(app.url(&format!("/login?returnURL={}", urlencode(&return_url))))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302);
        let cookies = login_cookies(&response);
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        let cookie = &cookies[0];
        assert!(cookie.contains("Path=/callback"), "{cookie}");
        assert!(cookie.contains("Max-Age=600"), "{cookie}");
        assert!(cookie.contains("HttpOnly"), "{cookie}");
        assert!(cookie.len() < 4000, "{} bytes", cookie.len());
        assert!(!cookie.contains("pad="), "the cookie is sealed: {cookie}");
    }
    assert_eq!(redis_keys(&app.prefix).await, Vec::<String>::new());
    // The login still completes, on the long returnURL.
    let authorize_url = app
        .client
        .get(app.url(&format!("/login?returnURL={}", urlencode(&return_url))))
        .send()
        .await
        .unwrap();
    let callback = app
        .op
        .authorize(&location(&authorize_url), &TestUser::alice());
    let done = app.client.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 302);
    assert_eq!(location(&done), return_url);
    let removed = login_cookies(&done);
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert!(removed[0].contains("Max-Age=0"), "{removed:?}");
    assert_eq!(app.userinfo().await["authenticated"], true);
}

#[tokio::test]
async fn a_return_url_too_long_for_the_login_cookie_is_refused() {
    let app = spawn_app().await;
    let response = app
        .get(&format!(
            "/login?returnURL={}",
            urlencode(&long_return_url(4096))
        ))
        .await;
    assert_error(response, 400, "REDIRECT_NOT_ALLOWED").await;
    assert_eq!(redis_keys(&app.prefix).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_tampered_or_foreign_login_cookie_fails_the_callback() {
    let app = spawn_app().await;
    let authorize_url = app.start_login(&app.client).await;
    let callback = app.op.authorize(&authorize_url, &TestUser::alice());
    // Another browser holding a cookie of the right name but a value sealed for another state.
    let other = browser();
    let other_login = other
        .get(app.url(&format!("/login?returnURL={}", urlencode(APP_URL))))
        .send()
        .await
        .unwrap();
    let foreign_value = login_cookies(&other_login)[0]
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let state = url::Url::parse(&authorize_url)
        .unwrap()
        .query_pairs()
        .find(|(name, _)| name == "state")
        .unwrap()
        .1
        .into_owned();
    // The name the callback looks for: a hash of its state.
    let name = format!(
        "ctIDENTITY_login_{}",
        &identity_service::crypto::derive_name("login-cookie", state.as_bytes())[..12]
    );
    let forged = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = forged
        .get(&callback)
        .header("Cookie", format!("{name}={foreign_value}"))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "LOGIN_FAILED").await;
    // The real browser still finishes, once.
    assert_eq!(
        app.client.get(&callback).send().await.unwrap().status(),
        302
    );
    assert_error(
        app.client.get(&callback).send().await.unwrap(),
        400,
        "LOGIN_FAILED",
    )
    .await;
}

#[tokio::test]
async fn a_callback_clears_abandoned_login_cookies_beyond_the_cap() {
    let app = spawn_app().await;
    let mut last = String::new();
    for _ in 0..12 {
        last = app.start_login(&app.client).await;
    }
    let callback = app.op.authorize(&last, &TestUser::alice());
    let done = app.client.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 302);
    let removals = login_cookies(&done)
        .into_iter()
        .filter(|cookie| cookie.contains("Max-Age=0"))
        .count();
    assert_eq!(removals, 12);
}

/// Issue 9 point 9's measurement: `cargo test --test api ten_thousand_logins -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement (10,000 logins); run by hand"]
async fn ten_thousand_logins_cost_the_store_nothing() {
    let app = spawn_app().await;
    let return_url = long_return_url(2048);
    let path = format!("/login?returnURL={}", urlencode(&return_url));
    let client = browser();
    let started = std::time::Instant::now();
    for _ in 0..10_000 {
        let response = client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(response.status(), 302);
    }
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys = redis_keys(&app.prefix).await;
    let mut bytes = 0u64;
    for key in &keys {
        let usage: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
        bytes += usage.unwrap_or(0);
    }
    eprintln!(
        "10,000 logins with 2 KiB returnURLs in {:?}: {} keys, {bytes} bytes in Redis under the prefix",
        started.elapsed(),
        keys.len()
    );
    assert_eq!(bytes, 0);
}
