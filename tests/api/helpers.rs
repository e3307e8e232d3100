//! `spawn_app()` and friends: each test gets its own app on a free port, its own Redis key
//! prefix and its own fake provider, so tests run in parallel.

use std::net::TcpListener;
use std::sync::Once;
use std::time::Duration;

use identity_service::config;
use identity_service::startup::Application;
use reqwest::header::LOCATION;

use crate::fake_op::{FakeOp, TestUser};

pub use crate::private_redis::redis_url;

/// A unique key prefix.
pub fn unique_prefix() -> String {
    format!(
        "test:{}:",
        identity_service::crypto::random_token::<9>().unwrap()
    )
}

/// The returnURL tests use (an allowed frontend origin).
pub const APP_URL: &str = "http://localhost:3000/app";

/// How a test app is configured.
pub struct AppOptions {
    /// "redis" (default) or "memory".
    pub store: &'static str,
    /// Redis URL (default: [`redis_url`]).
    pub redis_url: String,
    /// Key prefix (default: unique).
    pub prefix: String,
    /// Extra TOML appended to `[session]`.
    pub session_extra: String,
    /// Extra TOML appended to the provider table.
    pub provider_extra: String,
    /// Extra TOML at the end of the file (more providers, targets…).
    pub tail: String,
    /// `server.public_url` (default: the app's own address), e.g. one shared by instances.
    pub public_url: Option<String>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            store: "redis",
            redis_url: redis_url(),
            prefix: unique_prefix(),
            session_extra: String::new(),
            provider_extra: String::new(),
            tail: String::new(),
            public_url: None,
        }
    }
}

/// A running app and what a test needs to drive it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The fake provider behind it.
    pub op: FakeOp,
    /// A browser-like client: cookie jar, no automatic redirects.
    pub client: reqwest::Client,
    /// The Redis key prefix.
    pub prefix: String,
}

fn init_once() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        if std::env::var("TEST_LOG").is_ok() {
            identity_service::telemetry::init();
        }
    });
}

/// A browser-like HTTP client.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// An app with a Redis store and a fresh fake provider.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// An app configured by `options`, with a fresh fake provider.
pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    let op = FakeOp::start().await;
    spawn_app_for(&op, options).await
}

/// The TOML text of a test configuration.
pub fn config_text(op: &FakeOp, port: u16, options: &AppOptions) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:{port}"
public_url = "{public_url}"

[session]
store = "{store}"
redis_url = "{redis_url}"
key_prefix = "{prefix}"
{session_extra}

[redirects]
allowed_origins = ["http://localhost:3000", "https://*.example.com"]

[cors]
allowed_origins = ["http://localhost:3000"]

[[providers]]
id = "local"
name = "Local login"
issuer = "{issuer}"
client_id = "identity"
client_secret = "identity-secret"
scopes = ["openid", "profile", "email"]
roles_claim = "realm_access.roles"
groups_claim = "groups"
attributes = ["email"]
{provider_extra}
{tail}
"#,
        public_url = options
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{port}")),
        store = options.store,
        redis_url = options.redis_url,
        prefix = options.prefix,
        session_extra = options.session_extra,
        issuer = op.issuer(),
        provider_extra = options.provider_extra,
        tail = options.tail,
    )
}

/// An app in front of an existing fake provider (e.g. two instances, one provider).
pub async fn spawn_app_for(op: &FakeOp, options: AppOptions) -> TestApp {
    init_once();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let text = config_text(op, port, &options);
    let config = load_config_text(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let application = Application::build_with_listener(config, listener)
        .await
        .unwrap();
    tokio::spawn(application.run_until_stopped());
    let app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        op: op.clone(),
        client: browser(),
        prefix: options.prefix,
    };
    app.wait_until_ready().await;
    app
}

/// Two instances behind one (imagined) load balancer: one provider, one Redis prefix,
/// one public URL; `tail` is extra TOML for both.
pub async fn spawn_two_instances(op: &FakeOp, tail: &str) -> (TestApp, TestApp) {
    let prefix = unique_prefix();
    let a = spawn_app_for(
        op,
        AppOptions {
            tail: tail.to_owned(),
            prefix: prefix.clone(),
            ..AppOptions::default()
        },
    )
    .await;
    let b = spawn_app_for(
        op,
        AppOptions {
            tail: tail.to_owned(),
            prefix,
            public_url: Some(a.address.clone()),
            ..AppOptions::default()
        },
    )
    .await;
    (a, b)
}

/// Loads configuration from TOML text (through a temporary file, as the binary would).
pub fn load_config_text(text: &str) -> Result<config::Config, String> {
    let path = temp_file("toml", text);
    let result =
        config::load(Some(&path), Vec::<(String, String)>::new()).map_err(|e| e.to_string());
    let _ = std::fs::remove_file(path);
    result
}

/// Writes `content` to a fresh temporary file.
pub fn temp_file(extension: &str, content: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "identity-test-{}.{extension}",
        identity_service::crypto::random_token::<9>().unwrap()
    ));
    std::fs::write(&path, content).unwrap();
    path
}

impl TestApp {
    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET with this app's browser.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// GET as a browser asking for HTML.
    pub async fn get_html(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
            .send()
            .await
            .unwrap()
    }

    /// Waits until discovery has loaded (the fake provider answers at once).
    pub async fn wait_until_ready(&self) {
        for _ in 0..100 {
            if let Ok(response) = self.client.get(self.url("/health/ready")).send().await
                && response.status() == 200
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts a login and returns the provider URL we were sent to.
    pub async fn start_login(&self, client: &reqwest::Client) -> String {
        let response = client
            .get(self.url(&format!(
                "/login?returnURL={}&provider=local",
                urlencode(APP_URL)
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302, "login should redirect");
        location(&response)
    }

    /// Runs the whole code flow for `user` with `client`; returns the callback response.
    pub async fn login_with(&self, client: &reqwest::Client, user: &TestUser) -> reqwest::Response {
        let authorize_url = self.start_login(client).await;
        let callback_url = self.op.authorize(&authorize_url, user);
        client.get(callback_url).send().await.unwrap()
    }

    /// Logs `user` in with the app's own browser and checks it landed on the returnURL.
    pub async fn login(&self, user: &TestUser) {
        let response = self.login_with(&self.client, user).await;
        assert_eq!(response.status(), 302, "{:?}", response.text().await);
        assert_eq!(location(&response), APP_URL);
    }

    /// `/userinfo` as JSON.
    pub async fn userinfo(&self) -> serde_json::Value {
        self.userinfo_with(&self.client).await
    }

    /// `/userinfo` as JSON for `client`.
    pub async fn userinfo_with(&self, client: &reqwest::Client) -> serde_json::Value {
        let response = client.get(self.url("/userinfo")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }
}

/// The `Location` header.
pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

/// Percent-encodes a query value.
pub fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Asserts an error response: status, code, JSON content type and no-store.
pub async fn assert_error(
    response: reqwest::Response,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    assert_eq!(response.headers().get("cache-control").unwrap(), "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(body["errorMessage"].is_string(), "{body}");
    body
}

/// The session cookie value in a `Set-Cookie` of `response`, if any.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with("ctIDENTITY="))
        .map(str::to_owned)
}
