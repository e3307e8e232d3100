//! SPEC 7 (issue 17 point 2): the pending login cannot be read or made by anyone who
//! only knows the `state`, a login is redeemed only by the browser that started it (a
//! callback without that browser's login cookie, or with one made by someone else, sends
//! nothing to the token endpoint), and a pending login lives at most the state lifetime.

use std::time::Duration;

use identity_service::crypto;
use identity_service::observed_store::ObservedStore;
use identity_service::session::{LoginSecret, PendingLogins};
use identity_service::store::{AnyStore, MemoryStore};

use crate::fake_op::TestUser;
use crate::helpers::{
    APP_URL, AppOptions, TestApp, assert_error, browser, location, spawn_app, spawn_two_instances,
    urlencode,
};
use crate::refusal_logs::{LoggedService, one_warning, query_param};

/// The returnURL an attacker would like a victim's login to end at (it passes SPEC 4).
const ATTACKER_RETURN_URL: &str = "https://attacker.example.com/landing";

/// The name of the login cookie of `state` (a hash of the state: the name selects the
/// cookie, it is not a secret).
fn login_cookie_name(state: &str) -> String {
    let hash = crypto::derive_name("login-cookie", state.as_bytes());
    format!("ctIDENTITY_login_{}", &hash[..12])
}

/// A pending login made by someone who knows only `state`, the way the first design
/// allowed: sealed under a key derived from the state, with the attacker's own PKCE
/// verifier, nonce and returnURL, and an expiry ten years away.
fn forged_from_state(state: &str, verifier: &str, nonce: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let plain = serde_json::json!({
        "exp": now + 10 * 365 * 86_400,
        "iat": now,
        "login": {"provider": "local", "pkce_verifier": verifier, "nonce": nonce,
                  "return_url": ATTACKER_RETURN_URL},
    });
    let key = crypto::derive_key("login-seal", state.as_bytes());
    crypto::b64(
        &crypto::seal(&key, b"pending-login", &serde_json::to_vec(&plain).unwrap()).unwrap(),
    )
}

/// A login of the test's own making, sealed as `/login` seals one but started at
/// `issued_at`: the authorize URL of `template` (a real login's) with its own state,
/// challenge and nonce, and the matching `name=value` login cookie. Only the holder of the
/// secret can make such a cookie; it shows what the service believes of its time.
fn own_login(template: &str, issued_at: i64) -> (String, String) {
    let secret = LoginSecret::new(crypto::random_bytes().unwrap());
    let state = secret.state();
    let (verifier, challenge) = attacker_pkce();
    let nonce = "own-nonce-0123456789abcdef";
    let authorize = with_params(
        template,
        &[
            ("state", &state),
            ("code_challenge", &challenge),
            ("nonce", nonce),
        ],
    );
    let counter = prometheus::IntCounter::new("unused", "unused").unwrap();
    let logins = PendingLogins::new(
        ObservedStore::new(AnyStore::Memory(MemoryStore::new()), counter),
        "unused:",
        Duration::from_secs(600),
    );
    let login = serde_json::json!({"provider": "local", "pkce_verifier": verifier,
        "nonce": nonce, "return_url": APP_URL});
    let value = logins
        .seal(&secret, crypto::random_bytes().unwrap(), &login, issued_at)
        .unwrap();
    (authorize, format!("{}={value}", login_cookie_name(&state)))
}

/// `url` with the query parameters `changes` replaced.
fn with_params(url: &str, changes: &[(&str, &str)]) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(name, value)| {
            let value = changes
                .iter()
                .find(|(changed, _)| *changed == name)
                .map_or(value.into_owned(), |(_, new)| (*new).to_owned());
            (name.into_owned(), value)
        })
        .collect();
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.to_string()
}

/// The attacker's PKCE verifier and its S256 challenge.
fn attacker_pkce() -> (String, String) {
    let verifier = "attacker-chosen-verifier-0123456789-abcdefghijklmnop".to_owned();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, crypto::b64(digest.as_ref()))
}

/// A client without a cookie jar: the attacker sets the `Cookie` header by hand.
fn attacker() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// The login cookie (`name=value`) a `/login` response sets.
fn login_cookie_of(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("ctIDENTITY_login_"))
        .map(|value| value.split(';').next().unwrap().to_owned())
        .expect("a login cookie")
}

/// `GET /login` with `client`: the response (its login cookie) and the authorize URL.
async fn start(app: &TestApp, client: &reqwest::Client) -> (reqwest::Response, String) {
    let response = client
        .get(app.url(&format!(
            "/login?returnURL={}&provider=local",
            urlencode(APP_URL)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let authorize = location(&response);
    (response, authorize)
}

#[tokio::test]
async fn a_login_cookie_forged_from_the_state_alone_is_refused_before_the_token_endpoint() {
    let app = spawn_app().await;
    // The victim starts a login; its state is public (the provider's logs, history).
    let victim = browser();
    let authorize = app.start_login(&victim).await;
    let state = query_param(&authorize, "state");
    // The attacker takes the state to the provider with their own challenge and nonce…
    let (verifier, challenge) = attacker_pkce();
    let nonce = "attacker-chosen-nonce-0123456789";
    let callback = app.op.authorize(
        &with_params(
            &authorize,
            &[("code_challenge", &challenge), ("nonce", nonce)],
        ),
        &TestUser::bob(),
    );
    // …and brings back a login cookie of their own making, valid for ten years.
    let cookie = format!(
        "{}={}",
        login_cookie_name(&state),
        forged_from_state(&state, &verifier, nonce)
    );
    let response = attacker()
        .get(&callback)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let target = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned());
    assert_eq!(
        (status.as_u16(), target.as_deref()),
        (400, None),
        "a forged pending login must not complete"
    );
    assert_error(response, 400, "LOGIN_FAILED").await;
    assert_eq!(
        app.op.token_calls("authorization_code"),
        0,
        "nothing may reach the token endpoint"
    );
}

#[tokio::test]
async fn a_leaked_state_and_code_are_not_redeemed_by_another_browser() {
    let app = spawn_app().await;
    let victim = browser();
    let authorize = app.start_login(&victim).await;
    let state = query_param(&authorize, "state");
    // The callback URL leaks (Referer, history, a proxy's log) before the victim uses it.
    let leaked = app.op.authorize(&authorize, &TestUser::alice());
    let name = login_cookie_name(&state);
    // The attacker's own genuine login cookie, from a login of their own.
    let (own_login, _) = start(&app, &attacker()).await;
    let own_value = login_cookie_of(&own_login)
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let (verifier, _) = attacker_pkce();
    for (case, cookie) in [
        ("no cookie", None),
        (
            "the attacker's own login cookie",
            Some(format!("{name}={own_value}")),
        ),
        (
            "a cookie forged from the state",
            Some(format!(
                "{name}={}",
                forged_from_state(&state, &verifier, "n0nce-0123456789")
            )),
        ),
    ] {
        let mut request = attacker().get(&leaked);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 400, "{case}");
        assert_error(response, 400, "LOGIN_FAILED").await;
        assert_eq!(
            app.op.token_calls("authorization_code"),
            0,
            "{case}: the victim's code was sent to the token endpoint"
        );
    }
    // The victim's code was never spent: the victim's own browser finishes the login.
    let response = victim.get(&leaked).send().await.unwrap();
    assert_eq!(response.status(), 302, "{:?}", response.text().await);
    assert_eq!(location(&response), APP_URL);
    assert_eq!(app.op.token_calls("authorization_code"), 1);
    assert_eq!(
        app.userinfo_with(&victim).await["subject"],
        TestUser::alice().sub
    );
}

#[tokio::test]
async fn several_tabs_finish_in_parallel_on_any_instance() {
    let op = crate::fake_op::FakeOp::start().await;
    let (a, b) = spawn_two_instances(&op, "").await;
    let tabs = browser();
    let mut callbacks = Vec::new();
    for _ in 0..4 {
        let authorize = a.start_login(&tabs).await;
        callbacks.push(op.authorize(&authorize, &TestUser::alice()));
    }
    // Half of the tabs come back through the other instance, all at once.
    let requests = callbacks.iter().enumerate().map(|(index, callback)| {
        let url = if index % 2 == 0 {
            callback.clone()
        } else {
            callback.replace(&a.address, &b.address)
        };
        let tabs = tabs.clone();
        async move { tabs.get(url).send().await.unwrap() }
    });
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.status(), 302, "{:?}", response.text().await);
        assert_eq!(location(&response), APP_URL);
    }
    assert_eq!(op.token_calls("authorization_code"), 4);
    // Each state is still single-use.
    for callback in &callbacks {
        assert_eq!(tabs.get(callback).send().await.unwrap().status(), 400);
    }
}

#[tokio::test]
async fn the_single_use_marker_lives_no_longer_than_the_state() {
    let app = spawn_app().await;
    let authorize = app.start_login(&app.client).await;
    let state = query_param(&authorize, "state");
    let callback = app.op.authorize(&authorize, &TestUser::alice());
    assert_eq!(
        app.client.get(&callback).send().await.unwrap().status(),
        302
    );
    let key = format!(
        "{}login-used:{}",
        app.prefix,
        crypto::derive_name("login-used", state.as_bytes())
    );
    let ttl = marker_ttl(&key).await;
    assert!((1..=600).contains(&ttl), "marker TTL {ttl}");
}

#[tokio::test]
async fn a_login_older_than_the_state_lifetime_is_refused_whatever_its_cookie_says() {
    let app = spawn_app().await;
    let template = app.start_login(&browser()).await;
    let now = chrono::Utc::now().timestamp();
    // Started eleven minutes ago: refused, and the provider's token endpoint is not asked.
    let (authorize, cookie) = own_login(&template, now - 11 * 60);
    let callback = app.op.authorize(&authorize, &TestUser::alice());
    let response = attacker()
        .get(&callback)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "LOGIN_FAILED").await;
    assert_eq!(app.op.token_calls("authorization_code"), 0);
    // Started in the future (beyond clock skew): refused too.
    let (authorize, cookie) = own_login(&template, now + 3600);
    let callback = app.op.authorize(&authorize, &TestUser::alice());
    let response = attacker()
        .get(&callback)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "LOGIN_FAILED").await;
    assert_eq!(app.op.token_calls("authorization_code"), 0);
    // Started nine minutes ago: it completes, and its single-use marker lives only for
    // the minute the login had left.
    let (authorize, cookie) = own_login(&template, now - 9 * 60);
    let state = query_param(&authorize, "state");
    let callback = app.op.authorize(&authorize, &TestUser::alice());
    let response = attacker()
        .get(&callback)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let key = format!(
        "{}login-used:{}",
        app.prefix,
        crypto::derive_name("login-used", state.as_bytes())
    );
    let ttl = marker_ttl(&key).await;
    assert!((1..=61).contains(&ttl), "marker TTL {ttl}");
}

#[tokio::test]
async fn a_cookie_of_another_secret_under_the_states_name_is_refused() {
    let app = spawn_app().await;
    let victim = browser();
    let authorize = app.start_login(&victim).await;
    let state = query_param(&authorize, "state");
    let leaked = app.op.authorize(&authorize, &TestUser::alice());
    // A well-made cookie of the attacker's own secret, renamed to the victim's state.
    let now = chrono::Utc::now().timestamp();
    let (_, own_cookie) = own_login(&authorize, now);
    let (_, value) = own_cookie.split_once('=').unwrap();
    let response = attacker()
        .get(&leaked)
        .header("cookie", format!("{}={value}", login_cookie_name(&state)))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "LOGIN_FAILED").await;
    assert_eq!(app.op.token_calls("authorization_code"), 0);
    // The victim's own secret with a seal from another login: refused as well.
    let own = victim
        .get(app.url(&format!(
            "/login?returnURL={}&provider=local",
            urlencode(APP_URL)
        )))
        .send()
        .await
        .unwrap();
    let (_, genuine) = login_cookie_of(&own)
        .split_once('=')
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .unwrap();
    let (_, other_seal) = value.split_once('.').unwrap();
    let (genuine_secret, _) = genuine.split_once('.').unwrap();
    let own_state = query_param(&location(&own), "state");
    let own_callback = app.op.authorize(&location(&own), &TestUser::alice());
    let response = attacker()
        .get(&own_callback)
        .header(
            "cookie",
            format!(
                "{}={genuine_secret}.{other_seal}",
                login_cookie_name(&own_state)
            ),
        )
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "LOGIN_FAILED").await;
    assert_eq!(app.op.token_calls("authorization_code"), 0);
}

/// The TTL (seconds) of `key` in the test Redis.
async fn marker_ttl(key: &str) -> i64 {
    let client = redis::Client::open(crate::helpers::redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("TTL")
        .arg(key)
        .query_async(&mut connection)
        .await
        .unwrap()
}

#[tokio::test]
async fn refused_pending_logins_log_one_warn_line_naming_the_login_cookie() {
    let op = crate::fake_op::FakeOp::start().await;
    let mut service = LoggedService::start(
        &op,
        AppOptions {
            store: "memory",
            ..AppOptions::default()
        },
    )
    .await;
    service.new_warnings().await;
    let login = service.url(&format!("/login?returnURL={}", urlencode(APP_URL)));
    let victim = browser();
    let response = victim.get(&login).send().await.unwrap();
    let authorize = location(&response);
    let state = query_param(&authorize, "state");
    let (verifier, challenge) = attacker_pkce();
    let callback = op.authorize(
        &with_params(&authorize, &[("code_challenge", &challenge)]),
        &TestUser::bob(),
    );
    let cookie = format!(
        "{}={}",
        login_cookie_name(&state),
        forged_from_state(&state, &verifier, "n0nce-0123456789")
    );
    let response = attacker()
        .get(&callback)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    one_warning(
        &mut service,
        "forged login cookie",
        &["login refused", "check=\"login cookie\""],
    )
    .await;
    let response = attacker().get(&callback).send().await.unwrap();
    assert_eq!(response.status(), 400);
    one_warning(
        &mut service,
        "no login cookie",
        &["login refused", "check=\"login cookie\""],
    )
    .await;
    // A login older than the state lifetime names that check.
    let now = chrono::Utc::now().timestamp();
    let (authorize, cookie) = own_login(&authorize, now - 11 * 60);
    let callback = op.authorize(&authorize, &TestUser::alice());
    let response = attacker()
        .get(&callback)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    one_warning(
        &mut service,
        "expired login",
        &["login refused", "check=\"state lifetime\""],
    )
    .await;
    assert_eq!(op.token_calls("authorization_code"), 0);
    let log = service.all();
    for secret in [state.as_str(), verifier.as_str()] {
        assert!(!log.contains(secret), "{secret} logged:\n{log}");
    }
}
