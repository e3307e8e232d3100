//! Issue 9 point 6 / SPEC 7: every refusal an operator may need to understand logs one
//! WARN line naming the check (and the provider or target), and no log line holds a
//! code, a state, a cookie or a token. The real binary runs with its log in a file.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::fake_op::{FakeOp, IdTokenFault, TestUser};
use crate::helpers::{APP_URL, AppOptions, browser, config_text, location, temp_file, urlencode};

/// The binary serving a test configuration, its log going to a file; killed on drop.
pub(crate) struct LoggedService {
    child: Child,
    log: std::path::PathBuf,
    address: String,
    read: usize,
}

impl LoggedService {
    pub(crate) async fn start(op: &FakeOp, options: AppOptions) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = temp_file("toml", &config_text(op, port, &options));
        let log = temp_file("log", "");
        let file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_identity-service"));
        for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("IDENTITY__")) {
            command.env_remove(name);
        }
        let child = command
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        let service = Self {
            child,
            log,
            address: format!("http://127.0.0.1:{port}"),
            read: 0,
        };
        for _ in 0..200 {
            if let Ok(response) = reqwest::get(service.url("/health/ready")).await
                && response.status() == 200
            {
                return service;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the service did not become ready: {}", service.all());
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub(crate) fn all(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The WARN lines logged since the last call (after the request's access line).
    pub(crate) async fn new_warnings(&mut self) -> Vec<String> {
        // The access line ("served") is written when the response is; give it a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let all = self.all();
        let fresh = all.get(self.read..).unwrap_or_default().to_owned();
        self.read = all.len();
        fresh
            .lines()
            .filter(|line| line.contains(" WARN "))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for LoggedService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Asserts exactly one WARN line since the last look, containing every one of `words`.
pub(crate) async fn one_warning(service: &mut LoggedService, case: &str, words: &[&str]) {
    let warnings = service.new_warnings().await;
    assert_eq!(warnings.len(), 1, "{case}: {warnings:#?}");
    for word in words {
        assert!(
            warnings[0].contains(word),
            "{case}: {word:?} not in {}",
            warnings[0]
        );
    }
}

pub(crate) fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn every_refusal_logs_one_warn_line_naming_its_check_and_no_secret() {
    let op = FakeOp::start().await;
    let mut service = LoggedService::start(
        &op,
        AppOptions {
            store: "memory",
            tail: "[[targets]]\nurl = \"https://api.example.com/maps/\"\nstrategy = \"jwt\"\n"
                .to_owned(),
            ..AppOptions::default()
        },
    )
    .await;
    service.new_warnings().await;
    let mut secrets: Vec<String> = vec!["identity-secret".to_owned()];
    let login_path = format!("/login?returnURL={}", urlencode(APP_URL));

    // A browser starts a login; returns the authorize URL (and remembers its state).
    async fn start(
        service: &LoggedService,
        client: &reqwest::Client,
        path: &str,
        secrets: &mut Vec<String>,
    ) -> String {
        let response = client.get(service.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 302);
        for cookie in response.headers().get_all("set-cookie") {
            let cookie = cookie.to_str().unwrap();
            let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
            secrets.push(value.to_owned());
        }
        let authorize = location(&response);
        secrets.push(query_param(&authorize, "state"));
        secrets.push(query_param(&authorize, "nonce"));
        authorize
    }

    // Unknown state.
    let stranger = browser();
    let response = stranger
        .get(service.url("/callback?code=c0de-XYZ-123&state=st4te-XYZ-123"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    secrets.extend(["c0de-XYZ-123".to_owned(), "st4te-XYZ-123".to_owned()]);
    one_warning(
        &mut service,
        "unknown state",
        &["login refused", "login cookie"],
    )
    .await;

    // Another browser.
    let alice = browser();
    let authorize = start(&service, &alice, &login_path, &mut secrets).await;
    let callback = op.authorize(&authorize, &TestUser::alice());
    secrets.push(query_param(&callback, "code"));
    assert_eq!(stranger.get(&callback).send().await.unwrap().status(), 400);
    one_warning(
        &mut service,
        "other browser",
        &["login refused", "login cookie"],
    )
    .await;

    // The provider's error.
    let authorize = start(&service, &alice, &login_path, &mut secrets).await;
    service.new_warnings().await;
    let callback = op.authorize_error(&authorize, "access_denied");
    assert_eq!(alice.get(&callback).send().await.unwrap().status(), 400);
    one_warning(
        &mut service,
        "provider error",
        &["provider error", "local", "access_denied"],
    )
    .await;

    // An `iss` that is not the provider's, and a missing code.
    let authorize = start(&service, &alice, &login_path, &mut secrets).await;
    let callback = op.authorize(&authorize, &TestUser::alice());
    secrets.push(query_param(&callback, "code"));
    let forged = callback.replace(&urlencode(&op.issuer()), &urlencode("https://evil.example"));
    assert_eq!(alice.get(&forged).send().await.unwrap().status(), 400);
    one_warning(&mut service, "iss", &["check=\"iss\"", "local"]).await;
    let authorize = start(&service, &alice, &login_path, &mut secrets).await;
    let state = query_param(&authorize, "state");
    let no_code = service.url(&format!("/callback?state={}", urlencode(&state)));
    assert_eq!(alice.get(&no_code).send().await.unwrap().status(), 400);
    one_warning(&mut service, "code", &["check=\"code\"", "local"]).await;

    // An ID token check, and a refused code exchange.
    op.set_id_token_fault(Some(IdTokenFault::WrongNonce));
    let authorize = start(&service, &alice, &login_path, &mut secrets).await;
    let callback = op.authorize(&authorize, &TestUser::alice());
    secrets.push(query_param(&callback, "code"));
    assert_eq!(alice.get(&callback).send().await.unwrap().status(), 400);
    one_warning(
        &mut service,
        "ID token",
        &["code exchange and ID token", "local", "nonce"],
    )
    .await;
    op.set_id_token_fault(None);
    op.fail_token_endpoint(Some((400, "invalid_grant")));
    let authorize = start(&service, &alice, &login_path, &mut secrets).await;
    let callback = op.authorize(&authorize, &TestUser::alice());
    secrets.push(query_param(&callback, "code"));
    assert_eq!(alice.get(&callback).send().await.unwrap().status(), 400);
    one_warning(
        &mut service,
        "code exchange",
        &["code exchange", "local", "invalid_grant"],
    )
    .await;
    op.fail_token_endpoint(None);

    // A refused redirect names the rule.
    let response = alice
        .get(service.url(&format!(
            "/login?returnURL={}",
            urlencode("https://evil.com/")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    one_warning(&mut service, "redirect", &["returnURL refused", "origin"]).await;

    // A refused logout token names the clause.
    let response = stranger
        .post(service.url("/backchannel-logout"))
        .form(&[("logout_token", "eyJhbGciOiJub25lIn0.e30.")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    one_warning(
        &mut service,
        "logout token",
        &["logout token refused", "check="],
    )
    .await;

    // A refused bearer token.
    let response = stranger
        .get(service.url("/userinfo"))
        .bearer_auth("b3arer-XYZ-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    secrets.push("b3arer-XYZ-123".to_owned());
    one_warning(&mut service, "bearer", &["bearer", "check="]).await;

    // A refused token target.
    let authorize = start(&service, &alice, &login_path, &mut secrets).await;
    let callback = op.authorize(&authorize, &TestUser::alice());
    secrets.push(query_param(&callback, "code"));
    let done = alice.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), 302);
    for cookie in done.headers().get_all("set-cookie") {
        let cookie = cookie.to_str().unwrap();
        secrets.push(
            cookie
                .split(';')
                .next()
                .unwrap()
                .split_once('=')
                .unwrap()
                .1
                .to_owned(),
        );
    }
    service.new_warnings().await;
    let response = alice
        .post(service.url("/token"))
        .header("X-Requested-With", "x")
        .form(&[("target", "https://api.example.com@evil.com/maps/")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    one_warning(
        &mut service,
        "target",
        &["token target refused", "user info"],
    )
    .await;

    let log = service.all();
    let lines = log.lines().count();
    for secret in secrets.iter().filter(|secret| secret.len() >= 8) {
        assert!(
            !log.contains(secret.as_str()),
            "a secret is in the log: {secret}\n{log}"
        );
    }
    eprintln!("{lines} log lines checked for {} secrets", secrets.len());
}

/// SPEC 11: each admin action logs one WARN line (provider, subject hash, count, never
/// the token or the subject); each refused session or admin request and each failed
/// revocation logs one WARN line naming its cause.
#[tokio::test]
async fn session_refusals_admin_actions_and_failed_revocations_log_one_warn_line_each() {
    const ADMIN: &str = "adm1n-T0ken-XYZ-123";
    let op = FakeOp::start().await;
    let mut service = LoggedService::start(
        &op,
        AppOptions {
            provider_extra: "accept_bearer = true\nbearer_audience = \"identity\"\n".to_owned(),
            tail: format!("[admin]\ntoken = \"{ADMIN}\"\n"),
            ..AppOptions::default()
        },
    )
    .await;
    let alice = TestUser::alice();
    let mut cookies = Vec::new();
    let mut browsers = Vec::new();
    for _ in 0..2 {
        let client = browser();
        let login = client
            .get(service.url(&format!("/login?returnURL={}", urlencode(APP_URL))))
            .send()
            .await
            .unwrap();
        let callback = op.authorize(&location(&login), &alice);
        let response = client.get(&callback).send().await.unwrap();
        assert_eq!(response.status(), 302);
        for cookie in response.headers().get_all("set-cookie") {
            cookies.push(
                cookie
                    .to_str()
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .to_owned(),
            );
        }
        browsers.push(client);
    }
    service.new_warnings().await;
    let admin = reqwest::Client::new();
    let query = service.url(&format!(
        "/admin/sessions?provider=local&subject={}",
        urlencode(&alice.sub)
    ));

    let listed = admin.get(&query).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    one_warning(
        &mut service,
        "admin list",
        &[
            "admin listed sessions",
            "provider=\"local\"",
            "subject_hash=",
            "count=2",
        ],
    )
    .await;
    let wrong = admin.get(&query).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    one_warning(
        &mut service,
        "wrong admin token",
        &["admin request refused", "wrong admin token"],
    )
    .await;
    let missing = admin.delete(&query).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    one_warning(
        &mut service,
        "no admin token",
        &["admin request refused", "no admin bearer token"],
    )
    .await;

    let cross_site = browsers[0]
        .delete(service.url("/sessions"))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    one_warning(
        &mut service,
        "cross-site",
        &[
            "cross-site session request refused",
            "Origin or X-Requested-With",
        ],
    )
    .await;
    let bearer = admin
        .get(service.url("/sessions"))
        .bearer_auth(op.access_token_for(&alice, "identity", 300))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 403);
    one_warning(
        &mut service,
        "bearer",
        &["session request refused", "bearer caller"],
    )
    .await;

    op.fail_revocation(Some(500));
    let logout = browsers[0]
        .get(service.url("/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 200);
    one_warning(
        &mut service,
        "revocation",
        &["token revocation failed", "local", "HTTP 500"],
    )
    .await;

    let ended = admin
        .delete(&query)
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    one_warning(
        &mut service,
        "admin end",
        &["admin ended sessions", "provider=\"local\"", "count=1"],
    )
    .await;

    let log = service.all();
    for secret in cookies
        .iter()
        .map(|cookie| cookie.split_once('=').unwrap().1)
        .chain([ADMIN, alice.sub.as_str()])
        .filter(|secret| secret.len() >= 8)
    {
        assert!(!log.contains(secret), "the log holds {secret}");
    }
}

#[tokio::test]
async fn an_unanswered_introspection_logs_one_warn_line_naming_the_provider_and_no_token() {
    let op = FakeOp::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/introspect"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .with_priority(1)
        .mount(op.server())
        .await;
    let mut service = LoggedService::start(
        &op,
        AppOptions {
            store: "memory",
            provider_extra: "accept_bearer = true\nintrospection = true\n".to_owned(),
            ..AppOptions::default()
        },
    )
    .await;
    service.new_warnings().await;
    let token = "opaque-secret-token-value";
    let response = browser()
        .get(service.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    one_warning(
        &mut service,
        "introspection unavailable",
        &[
            "no introspection answer",
            "the introspection endpoint refused the request",
            "local",
        ],
    )
    .await;
    assert!(!service.all().contains(token), "{}", service.all());
}

#[tokio::test]
async fn a_refused_or_failed_pushed_authorization_request_logs_one_warn_line() {
    let op = FakeOp::start().await;
    let mut service = LoggedService::start(
        &op,
        AppOptions {
            store: "memory",
            provider_extra: "par = \"always\"".to_owned(),
            ..AppOptions::default()
        },
    )
    .await;
    service.new_warnings().await;
    let login = service.url(&format!("/login?returnURL={}", urlencode(APP_URL)));
    op.fail_par_endpoint(Some((400, "invalid_request")));
    assert_eq!(reqwest::get(&login).await.unwrap().status(), 400);
    one_warning(
        &mut service,
        "PAR refused",
        &["pushed authorization request", "local", "invalid_request"],
    )
    .await;
    op.fail_par_endpoint(Some((500, "server_error")));
    assert_eq!(reqwest::get(&login).await.unwrap().status(), 502);
    one_warning(
        &mut service,
        "PAR failed",
        &["pushed authorization request", "local", "500"],
    )
    .await;
    assert!(!service.all().contains("identity-secret"));
    // `par = "always"` and no PAR endpoint: not ready, the log names the missing endpoint.
    let op = FakeOp::start().await;
    op.hide_par_endpoint(true);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = AppOptions {
        store: "memory",
        provider_extra: "par = \"always\"".to_owned(),
        ..AppOptions::default()
    };
    let config = temp_file("toml", &config_text(&op, port, &options));
    let log = temp_file("log", "");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_identity-service"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut text = String::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("provider check failed") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let warning = text
        .lines()
        .find(|line| line.contains(" WARN ") && line.contains("provider check failed"))
        .unwrap_or_else(|| panic!("no check warning in {text}"));
    assert!(
        warning.contains("pushed_authorization_request_endpoint"),
        "{warning}"
    );
}

#[tokio::test]
async fn dpop_refusals_log_one_warn_line_naming_the_check_and_no_key_or_token() {
    let op = FakeOp::start().await;
    let mut service = LoggedService::start(
        &op,
        AppOptions {
            store: "memory",
            provider_extra: "dpop = true".to_owned(),
            tail:
                "[[targets]]\nurl = \"https://api.example.com/own/\"\nstrategy = \"access_token\"\n"
                    .to_owned(),
            ..AppOptions::default()
        },
    )
    .await;
    service.new_warnings().await;
    let login = format!("/login?returnURL={}", urlencode(APP_URL));
    // A provider that answers a proof with a Bearer token.
    op.set_dpop_wrong_token_type(true);
    let client = browser();
    let started = client.get(service.url(&login)).send().await.unwrap();
    let callback = op.authorize(&location(&started), &TestUser::alice());
    assert_eq!(client.get(&callback).send().await.unwrap().status(), 400);
    one_warning(
        &mut service,
        "token not DPoP-bound",
        &["code exchange and ID token", "local", "not DPoP-bound"],
    )
    .await;
    // A bound token asked for by the browser.
    op.set_dpop_wrong_token_type(false);
    let client = browser();
    let started = client.get(service.url(&login)).send().await.unwrap();
    let callback = op.authorize(&location(&started), &TestUser::alice());
    assert_eq!(client.get(&callback).send().await.unwrap().status(), 302);
    service.new_warnings().await;
    let refused = client
        .post(service.url("/token"))
        .header("X-Requested-With", "XMLHttpRequest")
        .form(&[("target", "https://api.example.com/own/x")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    one_warning(
        &mut service,
        "sender-constrained",
        &[
            "sender-constrained",
            "https://api.example.com/own/",
            "local",
        ],
    )
    .await;
    let log = service.all();
    for (token, _) in op.dpop_bound_tokens() {
        assert!(!log.contains(&token), "an access token in the log");
    }
    assert!(!log.to_lowercase().contains("pkcs8") && !log.contains("\"d\""));
}
