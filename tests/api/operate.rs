//! Operating the service (issue 9 points 5, 15, 16, 21): independent session limits,
//! extra TLS roots for outbound HTTPS, the metrics listener and per-client limits.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use identity_service::startup::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fake_op::{FakeOp, TestUser};
use crate::helpers::{
    APP_URL, AppOptions, TestApp, assert_error, browser, config_text, load_config_text,
    spawn_app_with, temp_file, urlencode,
};

/// An app (memory store) from TOML text; returns its address and metrics port.
async fn start(text: &str, listener: TcpListener) -> (String, Option<u16>) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let port = listener.local_addr().unwrap().port();
    let config = load_config_text(text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let application = Application::build_with_listener(config, listener)
        .await
        .unwrap();
    let metrics_port = application.metrics_port();
    tokio::spawn(application.run_until_stopped());
    (format!("http://127.0.0.1:{port}"), metrics_port)
}

fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").unwrap()
}

/// Polls `url` (a readiness endpoint) until `provider`'s check is `want` (at most ~5 s);
/// returns the last body.
async fn provider_check(url: &str, provider: &str, want: &str) -> serde_json::Value {
    let client = browser();
    let mut body = serde_json::Value::Null;
    for _ in 0..100 {
        body = client.get(url).send().await.unwrap().json().await.unwrap();
        if body["checks"]["providers"][provider] == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    body
}

// ---- 9.5: idle_timeout and max_lifetime are independent --------------------------------

#[test]
fn the_binary_starts_with_a_max_lifetime_shorter_than_the_idle_timeout() {
    let path = temp_file("toml", "[session]\nmax_lifetime = \"3s\"\n");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_identity-service"));
    command
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("IDENTITY__")) {
        command.env_remove(name);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("max_lifetime = \"3s\""), "{printed}");
    assert!(printed.contains("idle_timeout = \"30m\""), "{printed}");
}

#[tokio::test]
async fn a_session_ends_at_a_max_lifetime_shorter_than_the_idle_timeout() {
    let app = spawn_app_with(AppOptions {
        session_extra: "max_lifetime = \"3s\"".to_owned(),
        ..AppOptions::default()
    })
    .await;
    app.login(&TestUser::alice()).await;
    let userinfo = app.userinfo().await;
    assert_eq!(userinfo["authenticated"], true);
    let expires = chrono::DateTime::parse_from_rfc3339(userinfo["expiresAt"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert!(
        expires <= chrono::Utc::now() + chrono::Duration::seconds(4),
        "expiresAt follows max_lifetime, not the 30 minutes idle_timeout: {expires}"
    );
    // Used all along (never idle), the session still ends at max_lifetime.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let _ = app.userinfo().await;
    }
    assert_eq!(app.userinfo().await["authenticated"], false);
}

// ---- 9.15: [tls] ca_file ----------------------------------------------------------------

/// A private CA and an HTTPS server (its certificate from that CA, for 127.0.0.1) that
/// serves a minimal discovery document and an empty JWKS.
pub(crate) struct PrivateCaProvider {
    /// `https://127.0.0.1:<port>`.
    pub(crate) issuer: String,
    /// The CA's certificate.
    pub(crate) ca_pem: String,
}

pub(crate) async fn start_private_ca_provider() -> PrivateCaProvider {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "identity-service test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let discovery = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    })
    .to_string();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let discovery = discovery.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return; // a client that does not trust our CA hangs up here
                };
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let body = if head.starts_with("GET /.well-known/openid-configuration ") {
                    discovery.as_str()
                } else {
                    r#"{"keys":[]}"#
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    PrivateCaProvider {
        issuer,
        ca_pem: ca.pem(),
    }
}

fn private_ca_config(port: u16, issuer: &str, tls: &str) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
metrics_bind = "127.0.0.1:0"
[session]
store = "memory"
{tls}
[[providers]]
id = "internal"
issuer = "{issuer}"
client_id = "identity"
client_secret = "identity-secret"
"#
    )
}

#[tokio::test]
async fn a_provider_on_a_private_ca_is_reached_only_when_ca_file_names_that_ca() {
    let provider = start_private_ca_provider().await;

    let listener = free_listener();
    let port = listener.local_addr().unwrap().port();
    let (address, metrics_port) =
        start(&private_ca_config(port, &provider.issuer, ""), listener).await;
    let body = provider_check(
        &format!("{address}/health/ready"),
        "internal",
        "discovery failed",
    )
    .await;
    assert_eq!(
        body["checks"]["providers"]["internal"], "discovery failed",
        "{body}"
    );
    // The metrics listener shows the raw problem.
    let detail: serde_json::Value = browser()
        .get(format!(
            "http://127.0.0.1:{}/health/ready",
            metrics_port.unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let problem = detail["checks"]["providers"]["internal"].as_str().unwrap();
    assert!(
        problem.contains("/.well-known/openid-configuration"),
        "{problem}"
    );

    let ca_file = temp_file("pem", &provider.ca_pem);
    let listener = free_listener();
    let port = listener.local_addr().unwrap().port();
    let tls = format!("[tls]\nca_file = \"{}\"", ca_file.display());
    let (address, _) = start(&private_ca_config(port, &provider.issuer, &tls), listener).await;
    let body = provider_check(&format!("{address}/health/ready"), "internal", "ok").await;
    assert_eq!(body["checks"]["providers"]["internal"], "ok", "{body}");
    assert_eq!(body["ready"], true, "{body}");
}

// ---- 9.16: server.metrics_bind ------------------------------------------------------------

#[tokio::test]
async fn with_metrics_bind_metrics_are_served_only_on_their_own_listener() {
    let op = FakeOp::start().await;
    let listener = free_listener();
    let port = listener.local_addr().unwrap().port();
    let text = config_text(
        &op,
        port,
        &AppOptions {
            store: "memory",
            ..AppOptions::default()
        },
    )
    .replace("[server]\n", "[server]\nmetrics_bind = \"127.0.0.1:0\"\n");
    let (address, metrics_port) = start(&text, listener).await;
    let metrics = format!("http://127.0.0.1:{}", metrics_port.unwrap());
    let client = browser();
    provider_check(&format!("{address}/health/ready"), "local", "ok").await;

    let on_main = client
        .get(format!("{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_error(on_main, 404, "NOT_FOUND").await;
    let on_metrics = client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(on_metrics.status(), 200);
    assert!(on_metrics.text().await.unwrap().contains("identity_"));
    // The metrics listener serves nothing else but health.
    let userinfo = client
        .get(format!("{metrics}/userinfo"))
        .send()
        .await
        .unwrap();
    assert_error(userinfo, 404, "NOT_FOUND").await;
    assert_eq!(
        client
            .get(format!("{metrics}/health/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        client
            .get(format!("{address}/userinfo"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn without_metrics_bind_metrics_stay_on_the_main_listener() {
    let app = spawn_app_with(AppOptions::default()).await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("identity_"));
}

#[tokio::test]
async fn readiness_names_what_is_down_without_internals_except_on_the_metrics_listener() {
    let closed_port = free_listener().local_addr().unwrap().port();
    let listener = free_listener();
    let port = listener.local_addr().unwrap().port();
    let text = format!(
        r#"
[server]
bind = "127.0.0.1:{port}"
metrics_bind = "127.0.0.1:0"
[session]
store = "memory"
[[providers]]
id = "down"
issuer = "http://127.0.0.1:{closed_port}/realms/internal"
client_id = "c"
client_secret = "s"
"#
    );
    let (address, metrics_port) = start(&text, listener).await;
    let body = provider_check(
        &format!("{address}/health/ready"),
        "down",
        "discovery failed",
    )
    .await;
    assert_eq!(
        body,
        serde_json::json!({"ready": false, "checks": {"store": "ok", "providers": {"down": "discovery failed"}}})
    );
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1") && !text.contains("realms"),
        "{text}"
    );

    let detail_url = format!("http://127.0.0.1:{}/health/ready", metrics_port.unwrap());
    let response = browser().get(&detail_url).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let detail: serde_json::Value = response.json().await.unwrap();
    let problem = detail["checks"]["providers"]["down"].as_str().unwrap();
    assert!(
        problem.contains(&format!("127.0.0.1:{closed_port}/realms/internal")),
        "{problem}"
    );
}

// ---- 9.21: [limits] -----------------------------------------------------------------------

async fn app_with_limits(limits: &str, server_extra: &str) -> TestApp {
    let app = spawn_app_with(AppOptions {
        tail: format!("[limits]\n{limits}\n"),
        ..AppOptions::default()
    })
    .await;
    if server_extra.is_empty() {
        return app;
    }
    // Re-spawn with extra [server] keys in front of the same provider.
    let listener = free_listener();
    let port = listener.local_addr().unwrap().port();
    let options = AppOptions {
        tail: format!("[limits]\n{limits}\n"),
        ..AppOptions::default()
    };
    let text = config_text(&app.op, port, &options)
        .replace("[server]\n", &format!("[server]\n{server_extra}\n"));
    let (address, _) = start(&text, listener).await;
    let app = TestApp {
        address,
        op: app.op.clone(),
        client: browser(),
        prefix: options.prefix,
    };
    app.wait_until_ready().await;
    app
}

fn login_path() -> String {
    format!("/login?returnURL={}&provider=local", urlencode(APP_URL))
}

/// Asserts a 429 `TOO_MANY_REQUESTS` with a `Retry-After` of 1..=`max` seconds.
async fn assert_too_many(response: reqwest::Response, max: u64) {
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=max).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    assert_error(response, 429, "TOO_MANY_REQUESTS").await;
}

#[tokio::test]
async fn logins_over_login_per_minute_are_429_with_retry_after() {
    let app = app_with_limits("login_per_minute = 2", "").await;
    for _ in 0..2 {
        assert_eq!(app.get(&login_path()).await.status(), 302);
    }
    assert_too_many(app.get(&login_path()).await, 30).await;
    // The callback draws on the same bucket.
    assert_too_many(app.get("/callback?code=c&state=s").await, 30).await;
    // Other routes are not limited.
    assert_eq!(app.get("/userinfo").await.status(), 200);
}

#[tokio::test]
async fn the_callback_counts_as_a_login() {
    let app = app_with_limits("login_per_minute = 1", "").await;
    assert_error(
        app.get("/callback?code=c&state=s").await,
        400,
        "LOGIN_FAILED",
    )
    .await;
    assert_too_many(app.get(&login_path()).await, 60).await;
}

#[tokio::test]
async fn limits_are_off_by_default() {
    let app = spawn_app_with(AppOptions::default()).await;
    for _ in 0..30 {
        assert_eq!(app.get(&login_path()).await.status(), 302);
    }
}

async fn get_from(app: &TestApp, path: &str, forwarded_for: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .header("X-Forwarded-For", forwarded_for)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_address_is_limited() {
    let app = app_with_limits(
        "login_per_minute = 1",
        "trusted_proxies = [\"127.0.0.1/32\"]",
    )
    .await;
    let path = login_path();
    assert_eq!(get_from(&app, &path, "198.51.100.1").await.status(), 302);
    assert_eq!(get_from(&app, &path, "198.51.100.2").await.status(), 302);
    // A client cannot escape by prepending addresses: the rightmost untrusted one counts.
    assert_too_many(get_from(&app, &path, "203.0.113.5, 198.51.100.1").await, 60).await;
}

#[tokio::test]
async fn an_untrusted_peer_cannot_choose_its_address_with_x_forwarded_for() {
    let app = app_with_limits("login_per_minute = 1", "").await;
    let path = login_path();
    assert_eq!(get_from(&app, &path, "198.51.100.1").await.status(), 302);
    assert_too_many(get_from(&app, &path, "198.51.100.2").await, 60).await;
}

async fn bearer(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn refused_bearer_tokens_over_failed_auth_per_minute_are_429() {
    let app = app_with_limits("failed_auth_per_minute = 2", "").await;
    for _ in 0..2 {
        assert_error(bearer(&app, "not-a-token").await, 401, "UNAUTHORIZED").await;
    }
    assert_too_many(bearer(&app, "another-guess").await, 30).await;
    // Requests without credentials are not refused.
    assert_eq!(app.userinfo().await["authenticated"], false);
}

#[tokio::test]
async fn refused_logout_tokens_over_failed_auth_per_minute_are_429() {
    let app = app_with_limits("failed_auth_per_minute = 1", "").await;
    let post = |token: &'static str| {
        app.client
            .post(app.url("/backchannel-logout"))
            .form(&[("logout_token", token)])
            .send()
    };
    assert_error(post("forged").await.unwrap(), 400, "INVALID_LOGOUT_TOKEN").await;
    assert_too_many(post("forged-again").await.unwrap(), 60).await;
    // Logins are a different bucket.
    assert_eq!(app.get(&login_path()).await.status(), 302);
}
