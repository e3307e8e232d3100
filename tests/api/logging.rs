//! Logs (issue 9 point 20, SPEC 7): the real binary's stdout over a whole session
//! (login, POST /token, a refused bearer token, back-channel logout, logout) holds no
//! cookie, code, state, nonce, token or secret, in both formats; JSON lines parse and
//! carry the access fields; every response names its request id.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::fake_op::{FakeOp, LogoutTokenSpec, TestUser};
use crate::helpers::{
    AppOptions, TestApp, browser, config_text, session_cookie, spawn_app, temp_file,
};

const BINARY: &str = env!("CARGO_BIN_EXE_identity-service");

/// The value of query parameter `name` in `url`.
pub(crate) fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

/// The binary in front of `op`, with `IDENTITY__LOG__FORMAT=format`; stdout is read on a
/// thread (so a full pipe never stalls the writer) and returned by [`stop`].
pub(crate) struct Running {
    child: Child,
    stdout: std::thread::JoinHandle<String>,
}

fn run_binary(op: &FakeOp, format: &str) -> (Running, TestApp) {
    run_binary_with(op, format, &[])
}

pub(crate) fn run_binary_with(
    op: &FakeOp,
    format: &str,
    env: &[(&str, &str)],
) -> (Running, TestApp) {
    run_binary_with_tail(op, format, env, "")
}

/// [`run_binary_with`] with `tail` appended to the configuration (more targets…).
pub(crate) fn run_binary_with_tail(
    op: &FakeOp,
    format: &str,
    env: &[(&str, &str)],
    tail: &str,
) -> (Running, TestApp) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = AppOptions {
        store: "memory",
        provider_extra: "accept_bearer = true".to_owned(),
        tail: format!(
            "[[targets]]\nurl = \"https://api.example.com/maps/\"\nstrategy = \"access_token\"\n{tail}"
        ),
        ..AppOptions::default()
    };
    let path = temp_file("toml", &config_text(op, port, &options));
    let mut command = Command::new(BINARY);
    command
        .args(["--config", path.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env("IDENTITY__LOG__FORMAT", format)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("IDENTITY__")) {
        if name != "IDENTITY__LOG__FORMAT" && !env.iter().any(|(own, _)| *own == name) {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().unwrap();
    let mut pipe = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        op: op.clone(),
        client: browser(),
        prefix: options.prefix,
    };
    (Running { child, stdout }, app)
}

impl Running {
    /// SIGTERM, wait for the exit, and the whole stdout.
    pub(crate) fn stop(mut self) -> String {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0));
        self.stdout.join().unwrap()
    }
}

/// Waits for the binary to answer ready (at most ~20 s: it may still be starting).
pub(crate) async fn wait_ready(app: &TestApp) {
    for _ in 0..400 {
        if let Ok(response) = app.client.get(app.url("/health/ready")).send().await
            && response.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the binary did not become ready");
}

/// Runs a whole session against the binary; returns every secret value it saw and the
/// request ids the responses named.
pub(crate) async fn a_whole_session(app: &TestApp) -> (Vec<String>, Vec<String>) {
    let mut secrets = vec!["identity-secret".to_owned()];
    let mut request_ids = Vec::new();
    let mut note_id = |response: &reqwest::Response| {
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        request_ids.push(id);
    };

    let alice = browser();
    let authorize_url = app.start_login(&alice).await;
    secrets.push(query_param(&authorize_url, "state"));
    secrets.push(query_param(&authorize_url, "nonce"));
    secrets.push(query_param(&authorize_url, "code_challenge"));
    let callback_url = app.op.authorize(&authorize_url, &TestUser::alice());
    secrets.push(query_param(&callback_url, "code"));
    let response = alice.get(&callback_url).send().await.unwrap();
    assert_eq!(response.status(), 302);
    note_id(&response);
    let cookie = session_cookie(&response).unwrap();
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("ctIDENTITY=");
    secrets.push(value.to_owned());

    let response = alice
        .post(app.url("/token"))
        .header("X-Requested-With", "XMLHttpRequest")
        .form(&[("target", "https://api.example.com/maps/tiles")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    note_id(&response);
    let body: serde_json::Value = response.json().await.unwrap();
    let access_token = body["token"]["value"].as_str().unwrap().to_owned();
    secrets.push(access_token.clone());

    let guessed = "guessed-bearer-token-value-0123456789".to_owned();
    let response = browser()
        .get(app.url("/userinfo"))
        .bearer_auth(&guessed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    note_id(&response);
    secrets.push(guessed);

    let bob = browser();
    assert_eq!(app.login_with(&bob, &TestUser::bob()).await.status(), 302);
    let sid = app.op.sid_of_last_login().unwrap();
    let logout_token = app
        .op
        .logout_token(LogoutTokenSpec::for_session("bob", &sid));
    let response = browser()
        .post(app.url("/backchannel-logout"))
        .form(&[("logout_token", logout_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    note_id(&response);
    secrets.push(logout_token);

    let response = alice.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    note_id(&response);
    let body: serde_json::Value = response.json().await.unwrap();
    if let Some(url) = body["endSessionURL"].as_str()
        && let Ok(parsed) = url::Url::parse(url)
        && let Some((_, hint)) = parsed.query_pairs().find(|(key, _)| key == "id_token_hint")
    {
        secrets.push(hint.into_owned());
    }
    (secrets, request_ids)
}

pub(crate) fn assert_no_secret(log: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(secret.len() >= 8, "too short to search for: {secret}");
        assert!(
            !log.contains(secret.as_str()),
            "the log holds {secret}:\n{log}"
        );
    }
}

#[tokio::test]
async fn text_logs_of_a_whole_session_hold_no_secret() {
    let op = FakeOp::start().await;
    let (running, app) = run_binary(&op, "text");
    wait_ready(&app).await;
    let (secrets, request_ids) = a_whole_session(&app).await;
    let log = running.stop();
    assert_no_secret(&log, &secrets);
    for id in &request_ids {
        let line = log
            .lines()
            .find(|line| line.contains(id.as_str()) && line.contains("served"))
            .unwrap_or_else(|| panic!("no access line for request {id}:\n{log}"));
        assert!(line.contains("status="), "{line}");
        assert!(line.contains("duration_ms="), "{line}");
        assert!(!line.contains('?'), "a query string in {line}");
    }
}

#[tokio::test]
async fn json_logs_of_a_whole_session_are_one_object_per_line_and_hold_no_secret() {
    let op = FakeOp::start().await;
    let (running, app) = run_binary(&op, "json");
    wait_ready(&app).await;
    let (secrets, request_ids) = a_whole_session(&app).await;
    let log = running.stop();
    assert_no_secret(&log, &secrets);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    assert!(lines.len() > request_ids.len(), "{log}");
    eprintln!(
        "{} JSON log lines checked for {} secrets",
        lines.len(),
        secrets.len()
    );
    for line in &lines {
        assert!(line["timestamp"].is_string(), "{line}");
        assert!(line["level"].is_string(), "{line}");
        assert!(line["message"].is_string(), "{line}");
    }
    for id in &request_ids {
        let access = lines
            .iter()
            .find(|line| line["span"]["request_id"] == id.as_str() && line["message"] == "served")
            .unwrap_or_else(|| panic!("no access line for request {id}:\n{log}"));
        assert!(access["route"].is_string(), "{access}");
        assert!(access["status"].is_u64(), "{access}");
        assert!(access["duration_ms"].is_f64(), "{access}");
        assert!(access["span"]["method"].is_string(), "{access}");
        let path = access["span"]["path"].as_str().unwrap();
        assert!(!path.contains('?'), "{access}");
    }
    let token = lines
        .iter()
        .find(|line| line["span"]["path"] == "/token" && line["message"] == "served")
        .unwrap();
    assert_eq!(token["status"], 200);
    assert_eq!(token["route"], "/token");
}

#[tokio::test]
async fn every_response_names_its_request_id() {
    let app = spawn_app().await;
    let mut seen = Vec::new();
    for path in ["/userinfo", "/nowhere", "/login"] {
        let response = app.get(path).await;
        let id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!id.is_empty());
        assert!(!seen.contains(&id), "request ids repeat: {id}");
        seen.push(id);
    }
}

#[tokio::test]
async fn access_false_leaves_the_access_lines_out() {
    let op = FakeOp::start().await;
    let (running, app) = run_binary_with(&op, "json", &[("IDENTITY__LOG__ACCESS", "false")]);
    wait_ready(&app).await;
    let response = app.get("/userinfo").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-request-id"));
    let log = running.stop();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|line| line["message"] == "identity-service listening"),
        "{log}"
    );
    assert!(
        !lines.iter().any(|line| line["message"] == "served"),
        "{log}"
    );
}
