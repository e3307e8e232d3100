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

/// A `fapi2` provider entry whose client key is the fixture `key`, plus `extra` lines.
fn fapi2_provider(key: &str, extra: &str) -> String {
    format!(
        "[[providers]]\nid = \"bank\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"identity\"\n\
         profile = \"fapi2\"\nprivate_key_file = \"{}\"\n{extra}",
        fixture_path(key).to_str().unwrap()
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
id_token_signed_response_alg = "RS256"
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
        (
            "providers[1].id_token_signed_response_alg",
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
fn a_fapi2_provider_needs_an_https_redirect_uri_except_on_a_loopback_address() {
    let provider = fapi2_provider("client-rsa.pem", "");
    let with_public_url =
        |url: &str| format!("[server]\nbind = \"127.0.0.1:0\"\npublic_url = \"{url}\"\n{provider}");
    let (code, stderr) = check_config(&with_public_url("http://identity.example.com"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.lines().any(|line| line.contains("server.public_url")
            && line.contains("must be an https URL")
            && line.contains("\"bank\" has profile \"fapi2\"")),
        "{stderr}"
    );
    for allowed in [
        "https://identity.example.com",
        "http://127.0.0.1:8080",
        "http://localhost:8080",
    ] {
        let (code, stderr) = check_config(&with_public_url(allowed));
        assert_eq!(code, Some(0), "{allowed}: {stderr}");
    }
    // Without fapi2, an http public_url stays a choice of the operator's.
    let (code, stderr) = check_config(
        &with_public_url("http://identity.example.com").replace("profile = \"fapi2\"", ""),
    );
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn an_rsa_client_key_under_2048_bits_stops_the_start_naming_the_file() {
    let text = format!(
        "[server]\nbind = \"127.0.0.1:0\"\n{}",
        fapi2_provider("client-rsa-1024.pem", "")
    );
    let path = temp_file("toml", &text);
    let output = Command::new(BINARY)
        .args(["--config", path.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("client-rsa-1024.pem") && stderr.contains("outside 2048 to 8192 bits"),
        "{stderr}"
    );
}

#[test]
fn a_consistent_fapi2_provider_loads_with_what_the_profile_implies() {
    let text = fapi2_provider("client-rsa.pem", "private_key_alg = \"PS256\"\n");
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

const DPOP_TARGETS: &str = r#"
[[targets]]
url = "https://api.example.com/own/"
strategy = "access_token"
[[targets]]
url = "https://api.example.com/exchanged/"
strategy = "exchange"
audience = "api"
[[targets]]
url = "https://api.example.com/signed/"
strategy = "jwt"
"#;

async fn dpop_app(op: &FakeOp) -> TestApp {
    spawn_app_for(
        op,
        AppOptions {
            provider_extra: "dpop = true".to_owned(),
            tail: DPOP_TARGETS.to_owned(),
            ..AppOptions::default()
        },
    )
    .await
}

fn sha256_b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        text.as_bytes(),
    ))
}

#[tokio::test]
async fn a_dpop_login_carries_a_fresh_proof_on_the_code_exchange_and_the_userinfo_call() {
    let op = FakeOp::start().await;
    let app = dpop_app(&op).await;
    let before = chrono::Utc::now().timestamp();
    app.login(&TestUser::alice()).await;
    assert_eq!(app.userinfo().await["subject"], TestUser::alice().sub);
    let proofs = op.dpop_proofs();
    assert_eq!(proofs.len(), 2, "{proofs:#?}");
    let (token, userinfo) = (&proofs[0], &proofs[1]);
    assert_eq!(token.path, "/token");
    assert_eq!(userinfo.path, "/userinfo");
    for proof in [token, userinfo] {
        assert_eq!(proof.header["typ"], "dpop+jwt");
        assert_eq!(proof.header["alg"], "ES256");
        let jwk = proof.header["jwk"].as_object().unwrap();
        let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(
            members,
            ["crv", "kty", "x", "y"],
            "public key only: {jwk:?}"
        );
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        let iat = proof.claims["iat"].as_i64().unwrap();
        assert!((before - 1..=before + 30).contains(&iat), "{iat}");
        assert!(proof.claims["jti"].as_str().unwrap().len() >= 16);
        assert!(proof.claims.get("nonce").is_none());
    }
    assert_eq!(
        token.header["jwk"], userinfo.header["jwk"],
        "one key per session"
    );
    assert_ne!(token.claims["jti"], userinfo.claims["jti"]);
    assert_eq!(token.claims["htm"], "POST");
    assert_eq!(token.claims["htu"], format!("{}/token", op.issuer()));
    assert!(token.claims.get("ath").is_none(), "no token presented");
    assert_eq!(userinfo.claims["htm"], "GET");
    assert_eq!(userinfo.claims["htu"], format!("{}/userinfo", op.issuer()));
    // `ath` is the hash of the access token bound to this proof's key.
    let bound = op.dpop_bound_tokens();
    assert_eq!(bound.len(), 1);
    let (access_token, _) = bound.iter().next().unwrap();
    assert_eq!(userinfo.claims["ath"], sha256_b64(access_token));
    // A second session gets a key of its own.
    let other = crate::helpers::browser();
    let response = app.login_with(&other, &TestUser::bob()).await;
    assert_eq!(response.status(), 302);
    let proofs = op.dpop_proofs();
    assert_ne!(proofs[2].header["jwk"], token.header["jwk"]);
}

#[tokio::test]
async fn a_demanded_dpop_nonce_is_sent_on_one_retry_and_remembered_until_it_changes() {
    let op = FakeOp::start().await;
    op.demand_dpop_nonce(Some("nonce-1"));
    let app = dpop_app(&op).await;
    app.login(&TestUser::alice()).await;
    let nonces = |from: usize| -> Vec<(String, serde_json::Value)> {
        op.dpop_proofs()[from..]
            .iter()
            .map(|proof| (proof.path.clone(), proof.claims["nonce"].clone()))
            .collect()
    };
    assert_eq!(
        nonces(0),
        [
            ("/token".to_owned(), serde_json::Value::Null),
            ("/token".to_owned(), serde_json::json!("nonce-1")),
            ("/userinfo".to_owned(), serde_json::json!("nonce-1")),
        ]
    );
    // Remembered: the next login sends it at once.
    let second = crate::helpers::browser();
    assert_eq!(
        app.login_with(&second, &TestUser::bob()).await.status(),
        302
    );
    assert_eq!(
        nonces(3),
        [
            ("/token".to_owned(), serde_json::json!("nonce-1")),
            ("/userinfo".to_owned(), serde_json::json!("nonce-1")),
        ]
    );
    // Changed: one refusal, one retry with the new one, no more.
    op.demand_dpop_nonce(Some("nonce-2"));
    let third = crate::helpers::browser();
    assert_eq!(app.login_with(&third, &TestUser::bob()).await.status(), 302);
    assert_eq!(
        nonces(5),
        [
            ("/token".to_owned(), serde_json::json!("nonce-1")),
            ("/token".to_owned(), serde_json::json!("nonce-2")),
            ("/userinfo".to_owned(), serde_json::json!("nonce-2")),
        ]
    );
}

#[tokio::test]
async fn a_token_answer_not_typed_dpop_is_refused() {
    let op = FakeOp::start().await;
    op.set_dpop_wrong_token_type(true);
    let app = dpop_app(&op).await;
    let response = app.login_with(&app.client, &TestUser::alice()).await;
    let body = assert_error(response, 400, "LOGIN_FAILED").await;
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not DPoP-bound"),
        "{body}"
    );
    assert_eq!(app.userinfo().await["authenticated"], false);
}

#[tokio::test]
async fn a_dpop_bound_token_never_goes_to_the_browser() {
    let op = FakeOp::start().await;
    let app = dpop_app(&op).await;
    app.login(&TestUser::alice()).await;
    for target in [
        "https://api.example.com/own/x",
        "https://api.example.com/exchanged/x",
    ] {
        let body = assert_error(
            crate::targets::post_token(&app, target).await,
            403,
            "TARGET_NOT_ALLOWED",
        )
        .await;
        assert_eq!(
            body["errorMessage"],
            "The target's token is sender-constrained (DPoP); use the API proxy"
        );
    }
    // A token we sign ourselves is not bound to anything.
    let signed = crate::targets::post_token(&app, "https://api.example.com/signed/x").await;
    assert_eq!(signed.status(), 200);
}

#[tokio::test]
async fn a_provider_offering_only_other_dpop_algorithms_is_not_ready() {
    let op = FakeOp::start().await;
    op.set_dpop_algorithms(&["PS256"]);
    let app = dpop_app(&op).await;
    assert_eq!(app.get("/health/ready").await.status(), 503);
    assert_error(app.get(&login_path()).await, 502, "PROVIDER_UNAVAILABLE").await;
}

/// A resource server that checks DPoP (RFC 9449 section 7): it demands its nonce, refuses
/// a replayed `jti`, and records what it got.
#[derive(Clone, Default)]
struct DpopResource {
    seen: std::sync::Arc<std::sync::Mutex<Vec<SeenRequest>>>,
    jtis: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

/// One request the resource got: its headers and body.
type SeenRequest = (HashMap<String, String>, String);

const RS_NONCE: &str = "rs-nonce-1";

impl wiremock::Respond for DpopResource {
    fn respond(&self, request: &wiremock::Request) -> wiremock::ResponseTemplate {
        let headers: HashMap<String, String> = request
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    value.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = String::from_utf8_lossy(&request.body).into_owned();
        self.seen.lock().unwrap().push((headers.clone(), body));
        let proof = headers.get("dpop").cloned().unwrap_or_default();
        let claims: serde_json::Value =
            jsonwebtoken::dangerous::insecure_decode_claims(&proof).unwrap_or_default();
        let refuse = |error: &str| {
            wiremock::ResponseTemplate::new(401)
                .insert_header("www-authenticate", format!("DPoP error=\"{error}\""))
                .insert_header("dpop-nonce", RS_NONCE)
        };
        if claims["nonce"] != RS_NONCE {
            return refuse("use_dpop_nonce");
        }
        let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
        if !self.jtis.lock().unwrap().insert(jti) {
            return refuse("invalid_dpop_proof");
        }
        wiremock::ResponseTemplate::new(200).set_body_string("checked")
    }
}

#[tokio::test]
async fn the_proxy_sends_a_dpop_bound_token_with_a_proof_and_retries_a_demanded_nonce_once() {
    let resource = DpopResource::default();
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(resource.clone())
        .mount(&server)
        .await;
    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            provider_extra: "dpop = true".to_owned(),
            tail: format!(
                "[[targets]]\nurl = \"{up}/rs/\"\nstrategy = \"access_token\"\ntransport = [\"DPOP\"]\nproxy_path = \"/api/rs\"\n\
                 [[targets]]\nurl = \"{up}/plain/\"\nstrategy = \"access_token\"\nproxy_path = \"/api/plain\"\n",
                up = server.uri()
            ),
            ..AppOptions::default()
        },
    )
    .await;
    app.login(&TestUser::alice()).await;
    let call = || {
        app.client
            .post(app.url("/api/rs/things?q=1"))
            .header("X-Requested-With", "XMLHttpRequest")
            .body("hello")
            .send()
    };
    let response = call().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "checked");
    let seen = resource.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one refusal, one retry");
    let bound = op.dpop_bound_tokens();
    let (token, jkt) = bound.iter().next().unwrap();
    let mut jtis = Vec::new();
    for (index, (headers, body)) in seen.iter().enumerate() {
        assert_eq!(headers["authorization"], format!("DPoP {token}"));
        assert_eq!(body, "hello", "the body is sent again on the retry");
        let proof = &headers["dpop"];
        let header = jsonwebtoken::decode_header(proof).unwrap();
        assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
        let jwk = header.jwk.unwrap();
        assert_eq!(
            &jwk.thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
                .unwrap(),
            jkt,
            "signed by the key the token is bound to"
        );
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            proof,
            &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], format!("{}/rs/things", server.uri()));
        assert_eq!(claims["ath"], sha256_b64(token));
        let expected_nonce = if index == 0 {
            serde_json::Value::Null
        } else {
            serde_json::json!(RS_NONCE)
        };
        assert_eq!(claims["nonce"], expected_nonce);
        jtis.push(claims["jti"].clone());
    }
    assert_ne!(jtis[0], jtis[1]);
    // The target's nonce is remembered: the next call needs no retry.
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(resource.seen.lock().unwrap().len(), 3);
    // The same DPoP-bound token is not sent as a Bearer token.
    let plain = app
        .client
        .get(app.url("/api/plain/x"))
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_error(plain, 403, "TARGET_NOT_ALLOWED").await;
    assert_eq!(resource.seen.lock().unwrap().len(), 3);
}

#[test]
fn a_dpop_transport_without_proxy_path_stops_the_start() {
    let (code, stderr) = check_config(
        "[[providers]]\nid = \"bank\"\nissuer = \"http://127.0.0.1:9\"\nclient_id = \"c\"\nclient_secret = \"s\"\ndpop = true\n\
         [[targets]]\nurl = \"https://api.example.com/\"\nstrategy = \"access_token\"\ntransport = [\"DPOP\"]\n",
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("targets[0].transport") && stderr.contains("\"DPOP\" needs proxy_path"),
        "{stderr}"
    );
}

/// A `fapi2` provider "bank" (private_key_jwt with the test client key, nothing else
/// configured) beside the default provider, both at `op`.
async fn fapi2_app(op: &FakeOp) -> TestApp {
    op.add_client("bank-client", None);
    op.register_client_key("bank-client", crate::fake_op::CLIENT_RSA_PUBLIC_PEM);
    op.require_issuer_audience(true);
    spawn_app_for(
        op,
        AppOptions {
            tail: format!(
                "[[providers]]\nid = \"bank\"\nissuer = \"{}\"\nclient_id = \"bank-client\"\nprofile = \"fapi2\"\nprivate_key_file = \"{}\"\n",
                op.issuer(),
                fixture_path("client-rsa.pem").display()
            ),
            ..AppOptions::default()
        },
    )
    .await
}

fn bank_login() -> String {
    format!("/login?returnURL={}&provider=bank", urlencode(APP_URL))
}

#[tokio::test]
async fn a_fapi2_login_pushes_with_a_ps256_assertion_for_the_issuer_binds_tokens_and_needs_iss() {
    let op = FakeOp::start().await;
    op.use_ec_signing_key();
    // A nonce demanded: the retried code exchange needs a fresh client assertion too.
    op.demand_dpop_nonce(Some("bank-nonce"));
    let app = fapi2_app(&op).await;
    let metadata: serde_json::Value = app.get("/metadata").await.json().await.unwrap();
    let providers = metadata["providers"].as_array().unwrap();
    assert!(providers[0].get("profile").is_none(), "{metadata}");
    assert_eq!(providers[1]["id"], "bank");
    assert_eq!(providers[1]["profile"], "fapi2");

    let response = app.get(&bank_login()).await;
    assert_eq!(response.status(), 302);
    let authorize_url = location(&response);
    let names: Vec<String> = query(&authorize_url).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["client_id", "request_uri"], "PAR always");
    let pushed = op.pushed_requests().pop().unwrap();
    assert_eq!(pushed.get("code_challenge_method"), Some("S256"));
    let assertion = pushed.get("client_assertion").unwrap();
    let header = jsonwebtoken::decode_header(assertion).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::PS256);
    let claims: serde_json::Value =
        jsonwebtoken::dangerous::insecure_decode_claims(assertion).unwrap();
    assert_eq!(
        claims["aud"],
        op.issuer(),
        "FAPI 2.0: the issuer is the audience"
    );
    let callback = op.authorize(&authorize_url, &TestUser::alice());
    let finished = app.client.get(&callback).send().await.unwrap();
    assert_eq!(finished.status(), 302, "{:?}", finished.text().await);
    assert_eq!(app.userinfo().await["provider"], "bank");
    // The token endpoint got the same audience (the fake provider accepts nothing else
    // now), and the tokens are DPoP-bound.
    assert!(
        op.assertion_audiences()
            .iter()
            .all(|aud| aud == &serde_json::json!(op.issuer()))
    );
    assert_eq!(op.dpop_bound_tokens().len(), 1);
    assert_eq!(op.dpop_proofs()[0].path, "/token");

    // An authorization response without `iss` (RFC 9207) is refused under FAPI 2.0.
    let other = crate::helpers::browser();
    let response = other.get(app.url(&bank_login())).send().await.unwrap();
    let callback = op.authorize(&location(&response), &TestUser::bob());
    let mut without_iss = url::Url::parse(&callback).unwrap();
    let kept: Vec<(String, String)> = without_iss
        .query_pairs()
        .into_owned()
        .filter(|(name, _)| name != "iss")
        .collect();
    without_iss.query_pairs_mut().clear().extend_pairs(kept);
    let refused = other.get(without_iss.as_str()).send().await.unwrap();
    let body = assert_error(refused, 400, "LOGIN_FAILED").await;
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("names no issuer"),
        "{body}"
    );
}

#[tokio::test]
async fn a_fapi2_provider_refuses_rs256_id_tokens() {
    let op = FakeOp::start().await;
    // Discovery lists RS256 and ES256; the provider signs RS256: not good enough.
    let app = fapi2_app(&op).await;
    let response = app.get(&bank_login()).await;
    let callback = op.authorize(&location(&response), &TestUser::alice());
    let refused = app.client.get(&callback).send().await.unwrap();
    let body = assert_error(refused, 400, "LOGIN_FAILED").await;
    assert!(
        body["errorMessage"].as_str().unwrap().contains("ID token"),
        "{body}"
    );
}

#[tokio::test]
async fn a_dpop_session_refreshes_with_a_proof_when_the_proxy_needs_a_new_token() {
    let resource = DpopResource::default();
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::any())
        .respond_with(resource.clone())
        .mount(&server)
        .await;
    let op = FakeOp::start().await;
    op.set_access_token_ttl(1);
    let app = spawn_app_for(
        &op,
        AppOptions {
            provider_extra: "dpop = true".to_owned(),
            tail: format!(
                "[[targets]]\nurl = \"{}/rs/\"\nstrategy = \"access_token\"\ntransport = [\"DPOP\"]\nproxy_path = \"/api/rs\"\n",
                server.uri()
            ),
            ..AppOptions::default()
        },
    )
    .await;
    app.login(&TestUser::alice()).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let response = app
        .client
        .get(app.url("/api/rs/x"))
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(op.token_calls("refresh_token"), 1);
    let proofs = op.dpop_proofs();
    let refresh = proofs.iter().rfind(|proof| proof.path == "/token").unwrap();
    assert_eq!(
        refresh.header["jwk"], proofs[0].header["jwk"],
        "the session's key"
    );
    assert_eq!(refresh.claims["htm"], "POST");
    assert_ne!(refresh.claims["jti"], proofs[0].claims["jti"]);
    // The refreshed token is bound too, and it is the one the resource got.
    let seen = resource.seen.lock().unwrap().clone();
    let (headers, _) = seen.last().unwrap();
    let token = headers["authorization"].strip_prefix("DPoP ").unwrap();
    assert!(op.dpop_bound_tokens().contains_key(token));
    assert_eq!(op.dpop_bound_tokens().len(), 2);
}
