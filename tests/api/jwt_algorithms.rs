//! SPEC 3 `id_token_signed_response_alg` (issue 17 point 7): one algorithm per provider
//! for the ID tokens at login, refreshed ID tokens (`session_refresh.rs`) and back-channel
//! logout tokens — another algorithm the provider also lists is refused (the OpenID
//! Foundation's back-channel "wrong-alg" module); the configured one works end to end.

use crate::fake_op::{FakeOp, LogoutTokenSpec, SigningKeyChoice, TestUser};
use crate::helpers::{AppOptions, TestApp, assert_error, browser, spawn_app_for, temp_file};
use crate::refusal_logs::{LoggedService, one_warning};

async fn post_logout_token(address: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{address}/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap()
}

/// A provider listing RS256 and ES256 for ID tokens and publishing a key of each kind.
async fn provider_with_rsa_and_ec_keys() -> FakeOp {
    let op = FakeOp::start().await;
    op.publish_ec_key();
    op
}

async fn app_expecting(op: &FakeOp, alg: Option<&str>) -> TestApp {
    spawn_app_for(
        op,
        AppOptions {
            provider_extra: alg
                .map(|alg| format!("id_token_signed_response_alg = \"{alg}\""))
                .unwrap_or_default(),
            ..AppOptions::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_logout_token_in_another_algorithm_the_provider_lists_is_refused() {
    let op = provider_with_rsa_and_ec_keys().await;
    let app = app_expecting(&op, None).await;
    let alice = browser();
    assert_eq!(
        app.login_with(&alice, &TestUser::alice()).await.status(),
        302
    );
    let sid = op.sid_of_last_login().unwrap();
    let es256 = op.logout_token(LogoutTokenSpec::for_sid(&sid).signed_with(SigningKeyChoice::Ec));
    let response = post_logout_token(&app.address, &es256).await;
    assert_error(response, 400, "INVALID_LOGOUT_TOKEN").await;
    assert_eq!(app.userinfo_with(&alice).await["authenticated"], true);
    // The expected algorithm (RS256, the default) still ends the session.
    let rs256 = op.logout_token(LogoutTokenSpec::for_sid(&sid));
    assert_eq!(post_logout_token(&app.address, &rs256).await.status(), 200);
    assert_eq!(app.userinfo_with(&alice).await["authenticated"], false);
}

#[tokio::test]
async fn an_id_token_in_another_algorithm_the_provider_lists_fails_the_login() {
    let op = provider_with_rsa_and_ec_keys().await;
    let app = app_expecting(&op, None).await;
    op.sign_id_tokens_with(SigningKeyChoice::Ec);
    let client = browser();
    let response = app.login_with(&client, &TestUser::alice()).await;
    assert_error(response, 400, "LOGIN_FAILED").await;
    assert_eq!(app.userinfo_with(&client).await["authenticated"], false);
}

#[tokio::test]
async fn a_configured_es256_works_end_to_end_and_refuses_rs256() {
    let op = provider_with_rsa_and_ec_keys().await;
    op.sign_id_tokens_with(SigningKeyChoice::Ec);
    let app = app_expecting(&op, Some("ES256")).await;
    let alice = browser();
    let response = app.login_with(&alice, &TestUser::alice()).await;
    assert_eq!(response.status(), 302, "{:?}", response.text().await);
    assert_eq!(app.userinfo_with(&alice).await["authenticated"], true);
    let sid = op.sid_of_last_login().unwrap();
    // RS256, the provider's other listed algorithm, is now the wrong one.
    let rs256 = op.logout_token(LogoutTokenSpec::for_sid(&sid));
    assert_error(
        post_logout_token(&app.address, &rs256).await,
        400,
        "INVALID_LOGOUT_TOKEN",
    )
    .await;
    let es256 = op.logout_token(LogoutTokenSpec::for_sid(&sid).signed_with(SigningKeyChoice::Ec));
    assert_eq!(post_logout_token(&app.address, &es256).await.status(), 200);
    assert_eq!(app.userinfo_with(&alice).await["authenticated"], false);
    // And an RS256 ID token at login fails.
    op.sign_id_tokens_with(SigningKeyChoice::Current);
    let bob = browser();
    let response = app.login_with(&bob, &TestUser::bob()).await;
    assert_error(response, 400, "LOGIN_FAILED").await;
}

#[tokio::test]
async fn a_refused_logout_token_logs_the_provider_and_the_algorithm_check() {
    let op = provider_with_rsa_and_ec_keys().await;
    let mut service = LoggedService::start(
        &op,
        AppOptions {
            store: "memory",
            ..AppOptions::default()
        },
    )
    .await;
    service.new_warnings().await;
    let es256 =
        op.logout_token(LogoutTokenSpec::for_sub("alice").signed_with(SigningKeyChoice::Ec));
    let address = service.url("");
    let response = post_logout_token(&address, &es256).await;
    assert_error(response, 400, "INVALID_LOGOUT_TOKEN").await;
    one_warning(
        &mut service,
        "wrong alg",
        &[
            "logout token refused",
            "provider=\"local\"",
            "id_token_signed_response_alg",
        ],
    )
    .await;
    // A bad signature still names the provider, from the unverified `iss`.
    let forged =
        op.logout_token(LogoutTokenSpec::for_sub("alice").signed_with(SigningKeyChoice::Attacker));
    let response = post_logout_token(&address, &forged).await;
    assert_error(response, 400, "INVALID_LOGOUT_TOKEN").await;
    one_warning(
        &mut service,
        "bad signature",
        &["logout token refused", "provider=\"local\"", "signature"],
    )
    .await;
    assert!(!service.all().contains(&es256));
}

fn check_config(provider_extra: &str) -> std::process::Output {
    let path = temp_file(
        "toml",
        &format!(
            "[[providers]]\nid = \"local\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"identity\"\nclient_secret = \"s3cret-value\"\n{provider_extra}\n"
        ),
    );
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_identity-service"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("IDENTITY__")) {
        command.env_remove(name);
    }
    let output = command
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    let _ = std::fs::remove_file(path);
    output
}

#[test]
fn id_token_signed_response_alg_accepts_asymmetric_algorithms_only() {
    for alg in ["", "RS256", "PS256", "ES256", "ES384", "EdDSA"] {
        let output = check_config(&format!("id_token_signed_response_alg = \"{alg}\""));
        assert_eq!(
            output.status.code(),
            Some(0),
            "{alg}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for alg in ["none", "HS256", "HS512", "ES512", "RS128", "rs256"] {
        let output = check_config(&format!("id_token_signed_response_alg = \"{alg}\""));
        assert_eq!(output.status.code(), Some(2), "{alg}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(
            message.contains("id_token_signed_response_alg"),
            "{alg}: {message}"
        );
        assert!(!message.contains("s3cret-value"));
    }
}

#[tokio::test]
async fn a_provider_listing_only_hmac_or_none_needs_the_algorithm_set() {
    for listed in [serde_json::json!(["HS256"]), serde_json::json!(["none"])] {
        let op = FakeOp::start().await;
        let discovery_url = format!("{}/.well-known/openid-configuration", op.issuer());
        let mut discovery: serde_json::Value = reqwest::get(&discovery_url)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        discovery["id_token_signing_alg_values_supported"] = listed.clone();
        wiremock::Mock::given(wiremock::matchers::path(
            "/.well-known/openid-configuration",
        ))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(discovery))
        .with_priority(1)
        .mount(op.server())
        .await;
        // Not set: the provider is not ready and its logins fail as unavailable.
        let app = app_expecting(&op, None).await;
        let ready = app.get("/health/ready").await;
        assert_eq!(ready.status(), 503, "{listed}");
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_ne!(body["checks"]["providers"]["local"], "ok", "{listed}");
        let login = app
            .get(&format!(
                "/login?returnURL={}",
                crate::helpers::urlencode(crate::helpers::APP_URL)
            ))
            .await;
        assert_error(login, 502, "PROVIDER_UNAVAILABLE").await;
        // Set: RS256, which the provider signs with, works.
        let app = app_expecting(&op, Some("RS256")).await;
        assert_eq!(app.get("/health/ready").await.status(), 200, "{listed}");
        app.login(&TestUser::alice()).await;
    }
}
