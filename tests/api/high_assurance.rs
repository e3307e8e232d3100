//! SPEC 12: pushed authorization requests (RFC 9126), DPoP (RFC 9449) and the FAPI 2.0
//! profile, against the real binary (configuration) and the fake provider.

use std::collections::HashMap;
use std::process::Command;

use crate::fake_op::{FakeOp, TestUser, fixture_path};
use crate::helpers::{
    APP_URL, AppOptions, TestApp, assert_error, location, spawn_app_for, temp_file, urlencode,
};

const BINARY: &str = env!("CARGO_BIN_EXE_identity-service");

/// `check-config` on `text`: exit code and stderr.
fn check_config(text: &str) -> (Option<i32>, String) {
    let path = temp_file("toml", text);
    let mut command = Command::new(BINARY);
    command
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("IDENTITY__")) {
        command.env_remove(name);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_fapi2_provider_contradicted_by_its_config_stops_the_start_naming_each_key() {
    let text = r#"
[server]
bind = "127.0.0.1:0"
[[providers]]
id = "bank"
issuer = "http://127.0.0.1:9"
client_id = "identity"
profile = "fapi2"
par = "never"
dpop = false
client_secret = "bank-secret-value"
[[providers]]
id = "bank2"
issuer = "http://127.0.0.1:9"
client_id = "identity"
profile = "fapi2"
auth_method = "private_key_jwt"
private_key_file = "KEY"
private_key_alg = "RS256"
"#
    .replace("KEY", fixture_path("client-rsa.pem").to_str().unwrap());
    let (code, stderr) = check_config(&text);
    assert_eq!(code, Some(2), "{stderr}");
    for (key, fragment) in [
        (
            "providers[0].par",
            "\"never\" contradicts profile \"fapi2\"",
        ),
        ("providers[0].dpop", "false contradicts profile \"fapi2\""),
        (
            "providers[0].client_secret",
            "a client secret contradicts profile \"fapi2\"",
        ),
        (
            "providers[1].private_key_alg",
            "\"RS256\" contradicts profile \"fapi2\"",
        ),
    ] {
        assert!(
            stderr
                .lines()
                .any(|line| line.contains(key) && line.contains(fragment)),
            "{key}: {fragment} missing from:\n{stderr}"
        );
    }
    assert!(!stderr.contains("bank-secret-value"), "{stderr}");
}

#[test]
fn a_consistent_fapi2_provider_loads_with_what_the_profile_implies() {
    let text = r#"
[[providers]]
id = "bank"
issuer = "http://127.0.0.1:9"
client_id = "identity"
profile = "fapi2"
private_key_file = "KEY"
private_key_alg = "PS256"
"#
    .replace("KEY", fixture_path("client-rsa.pem").to_str().unwrap());
    let path = temp_file("toml", &text);
    let output = Command::new(BINARY)
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "profile = \"fapi2\"",
        "par = \"always\"",
        "dpop = true",
        "private_key_alg = \"PS256\"",
    ] {
        assert!(printed.contains(line), "{line} missing from:\n{printed}");
    }
}

/// An app whose provider has `provider_extra` (e.g. `par = "always"`).
async fn app_with(op: &FakeOp, provider_extra: &str) -> TestApp {
    spawn_app_for(
        op,
        AppOptions {
            provider_extra: provider_extra.to_owned(),
            ..AppOptions::default()
        },
    )
    .await
}

fn query(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn login_path() -> String {
    format!("/login?returnURL={}&prompt=login", urlencode(APP_URL))
}

#[tokio::test]
async fn par_always_pushes_the_request_and_the_browser_gets_only_client_id_and_request_uri() {
    let op = FakeOp::start().await;
    let app = app_with(&op, "par = \"always\"").await;
    let response = app.get(&login_path()).await;
    assert_eq!(response.status(), 302);
    let authorize_url = location(&response);
    assert!(authorize_url.starts_with(&format!("{}/authorize?", op.issuer())));
    let pairs = query(&authorize_url);
    let names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["client_id", "request_uri"], "{authorize_url}");
    assert_eq!(pairs[0].1, "identity");
    assert!(pairs[1].1.starts_with("urn:ietf:params:oauth:request_uri:"));
    // What was pushed: every authorization parameter, with client authentication (Basic).
    let pushed = op.pushed_requests();
    assert_eq!(pushed.len(), 1);
    let pushed: HashMap<&str, &str> = pushed[0]
        .0
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    assert_eq!(pushed["response_type"], "code");
    assert_eq!(pushed["client_id"], "identity");
    assert_eq!(pushed["redirect_uri"], app.url("/callback"));
    assert_eq!(pushed["scope"], "openid profile email");
    assert_eq!(pushed["code_challenge_method"], "S256");
    assert_eq!(pushed["code_challenge"].len(), 43);
    assert_eq!(pushed["prompt"], "login");
    assert!(pushed["state"].len() >= 43 && pushed["nonce"].len() >= 43);
    assert!(
        !pushed.contains_key("client_secret"),
        "Basic, not in the body"
    );
    // The login completes through the pushed request.
    let callback = op.authorize(&authorize_url, &TestUser::alice());
    let finished = app.client.get(callback).send().await.unwrap();
    assert_eq!(finished.status(), 302, "{:?}", finished.text().await);
    assert_eq!(location(&finished), APP_URL);
    assert_eq!(app.userinfo().await["subject"], TestUser::alice().sub);
}

#[tokio::test]
async fn par_auto_pushes_only_when_discovery_requires_it() {
    let op = FakeOp::start().await;
    let app = app_with(&op, "").await;
    // Offered, not required: today's authorization URL.
    let direct = location(&app.get(&login_path()).await);
    assert!(
        query(&direct)
            .iter()
            .any(|(name, _)| name == "code_challenge")
    );
    assert!(op.pushed_requests().is_empty());
    // Required (a provider switched on RFC 9126 section 5): pushed.
    let op = FakeOp::start().await;
    op.set_par_required(true);
    let app = app_with(&op, "").await;
    let pushed = location(&app.get(&login_path()).await);
    let names: Vec<String> = query(&pushed).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["client_id", "request_uri"]);
    assert_eq!(op.pushed_requests().len(), 1);
    app.login(&TestUser::bob()).await;
}

#[tokio::test]
async fn par_never_keeps_the_direct_request_even_when_offered() {
    let op = FakeOp::start().await;
    let app = app_with(&op, "par = \"never\"").await;
    let direct = location(&app.get(&login_path()).await);
    assert!(query(&direct).iter().any(|(name, _)| name == "state"));
    assert!(op.pushed_requests().is_empty());
}

#[tokio::test]
async fn a_par_endpoint_that_refuses_fails_the_login_and_one_that_is_down_is_unavailable() {
    let op = FakeOp::start().await;
    let app = app_with(&op, "par = \"always\"").await;
    op.fail_par_endpoint(Some((400, "invalid_request")));
    let body = assert_error(app.get(&login_path()).await, 400, "LOGIN_FAILED").await;
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("refused the authorization request (invalid_request)"),
        "{body}"
    );
    op.fail_par_endpoint(Some((401, "invalid_client")));
    assert_error(app.get(&login_path()).await, 400, "LOGIN_FAILED").await;
    op.fail_par_endpoint(Some((503, "temporarily_unavailable")));
    assert_error(app.get(&login_path()).await, 502, "PROVIDER_UNAVAILABLE").await;
    op.fail_par_endpoint(None);
    assert_eq!(app.get(&login_path()).await.status(), 302);
}

#[tokio::test]
async fn par_always_without_an_advertised_endpoint_makes_the_provider_not_ready() {
    let op = FakeOp::start().await;
    op.hide_par_endpoint(true);
    let app = app_with(&op, "par = \"always\"").await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    // The public listener hides the detail; the log names it (refusal_logs.rs).
    assert_eq!(body["checks"]["providers"]["local"], "discovery failed");
    assert_error(app.get(&login_path()).await, 502, "PROVIDER_UNAVAILABLE").await;
}
