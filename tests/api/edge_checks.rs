//! Issue 17 points 3 and 4 (SPEC 7): checks tied to a route see the route the router
//! serves, however its path is spelled (`/%6Cogin` is `/login`, `/%6Detrics` is
//! `/metrics`), and `[limits]` key IPv6 clients by their /64. Requests go over raw
//! sockets: a client library would normalise the path.

use std::net::TcpListener;

use identity_service::startup::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fake_op::FakeOp;
use crate::helpers::{APP_URL, AppOptions, config_text, load_config_text, urlencode};

/// The app for `options`, with `server_extra` added to `[server]`; its address and
/// metrics port.
async fn start(server_extra: &str, options: AppOptions) -> (String, Option<u16>) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let op = FakeOp::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let text = config_text(&op, port, &options)
        .replace("[server]\n", &format!("[server]\n{server_extra}\n"));
    let config = load_config_text(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let application = Application::build_with_listener(config, listener)
        .await
        .unwrap();
    let metrics_port = application.metrics_port();
    tokio::spawn(application.run_until_stopped());
    let address = format!("127.0.0.1:{port}");
    for _ in 0..100 {
        let base = if server_extra.contains("base_path") {
            "/id"
        } else {
            ""
        };
        if raw_get(&address, &format!("{base}/health/ready")).await.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    (address, metrics_port)
}

fn with_tail(tail: &str) -> AppOptions {
    AppOptions {
        store: "memory",
        tail: tail.to_owned(),
        ..AppOptions::default()
    }
}

/// Sends `head` (request line and headers, without the final blank line) and `body`
/// exactly as written; returns the status and the whole answer.
async fn raw(address: &str, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("{head}\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // The server may answer (and close) before it has read a refused body.
    let _ = stream.write_all(body).await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"));
    (status, answer)
}

async fn raw_get(address: &str, path: &str) -> (u16, String) {
    raw(address, &format!("GET {path} HTTP/1.1"), b"").await
}

fn login_query() -> String {
    format!("?returnURL={}&provider=local", urlencode(APP_URL))
}

fn assert_code(answer: &(u16, String), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert!(answer.1.contains(&format!("\"{code}\"")), "{}", answer.1);
}

// ---- point 3: the route, not the spelling -------------------------------------------------

#[tokio::test]
async fn encoded_spellings_of_login_and_callback_draw_on_the_login_bucket() {
    let (address, _) = start("", with_tail("[limits]\nlogin_per_minute = 3\n")).await;
    let query = login_query();
    // Served as /login (302 to the provider), and counted.
    assert_eq!(raw_get(&address, &format!("/%6Cogin{query}")).await.0, 302);
    assert_eq!(raw_get(&address, &format!("/%6cogin{query}")).await.0, 302);
    assert_eq!(
        raw_get(&address, &format!("/l%6F%67in{query}")).await.0,
        302
    );
    assert_code(
        &raw_get(&address, &format!("/login{query}")).await,
        429,
        "TOO_MANY_REQUESTS",
    );
    assert_code(
        &raw_get(&address, "/c%61llback?code=c&state=s").await,
        429,
        "TOO_MANY_REQUESTS",
    );
}

#[tokio::test]
async fn spellings_the_router_does_not_serve_as_login_are_not_counted_as_logins() {
    let (address, _) = start("", with_tail("[limits]\nlogin_per_minute = 1\n")).await;
    let query = login_query();
    for path in ["//login", "/login/", "/%2Flogin", "/LOGIN", "/log%69n%2F"] {
        assert_code(
            &raw_get(&address, &format!("{path}{query}")).await,
            404,
            "NOT_FOUND",
        );
    }
    // The bucket is still full.
    assert_eq!(raw_get(&address, &format!("/login{query}")).await.0, 302);
    assert_eq!(raw_get(&address, &format!("/%6Cogin{query}")).await.0, 429);
}

#[tokio::test]
async fn under_a_base_path_encoded_spellings_are_the_route_too() {
    let (address, _) = start(
        "base_path = \"/id\"",
        with_tail("[limits]\nlogin_per_minute = 2\n"),
    )
    .await;
    let query = login_query();
    assert_eq!(
        raw_get(&address, &format!("/id/%6Cogin{query}")).await.0,
        302
    );
    assert_eq!(
        raw_get(&address, &format!("/%69d/login{query}")).await.0,
        302
    );
    assert_code(
        &raw_get(&address, &format!("/id/login{query}")).await,
        429,
        "TOO_MANY_REQUESTS",
    );
    // Outside the base path there is no login route.
    assert_code(
        &raw_get(&address, &format!("/%6Cogin{query}")).await,
        404,
        "NOT_FOUND",
    );
}

#[tokio::test]
async fn an_encoded_metrics_path_is_not_served_on_the_main_listener() {
    let (address, metrics_port) = start("metrics_bind = \"127.0.0.1:0\"", with_tail("")).await;
    for path in ["/metrics", "/%6Detrics", "/%6detrics", "/m%65trics?x=1"] {
        assert_code(&raw_get(&address, path).await, 404, "NOT_FOUND");
    }
    let metrics = format!("127.0.0.1:{}", metrics_port.unwrap());
    let (status, answer) = raw_get(&metrics, "/%6Detrics").await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("identity_"), "{answer}");
    assert_eq!(raw_get(&metrics, "/health/%6Cive").await.0, 200);
    // The metrics listener serves nothing else, however spelled.
    assert_code(&raw_get(&metrics, "/us%65rinfo").await, 404, "NOT_FOUND");
}

/// A proxied target whose upstream nobody listens on (the proxy answers first).
fn proxy_target() -> String {
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!(
        "[[targets]]\nurl = \"http://127.0.0.1:{closed}/\"\nstrategy = \"access_token\"\nproxy_path = \"/api/echo\"\n"
    )
}

#[tokio::test]
async fn the_413_guard_judges_the_route_not_its_spelling() {
    let (address, _) = start("", with_tail(&proxy_target())).await;
    let body = vec![b'a'; 100_000];
    let post = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}",
            body.len()
        )
    };
    for path in ["/token", "/t%6Fken", "/%62ackchannel-logout"] {
        assert_code(
            &raw(&address, &post(path), &body).await,
            413,
            "PAYLOAD_TOO_LARGE",
        );
    }
    // An encoded spelling of a proxied path is proxied: its body is the proxy's to cap.
    for path in ["/api/echo/x", "/ap%69/echo/x", "/api/%65cho/x"] {
        let (status, answer) = raw(&address, &post(path), &body).await;
        assert_ne!(status, 413, "{path}: {answer}");
        assert_code(&(status, answer), 401, "UNAUTHORIZED");
    }
}

// ---- point 4: IPv6 clients by their /64 ------------------------------------------------------

async fn login_from(address: &str, forwarded_for: &str) -> (u16, String) {
    let head = format!(
        "GET /login{} HTTP/1.1\r\nX-Forwarded-For: {forwarded_for}",
        login_query()
    );
    raw(address, &head, b"").await
}

#[tokio::test]
async fn ipv6_clients_behind_a_trusted_proxy_share_a_bucket_per_64() {
    let (address, _) = start(
        "trusted_proxies = [\"127.0.0.1/32\"]",
        with_tail("[limits]\nlogin_per_minute = 2\n"),
    )
    .await;
    assert_eq!(login_from(&address, "2001:db8:1:2::1").await.0, 302);
    assert_eq!(login_from(&address, "2001:db8:1:2::2").await.0, 302);
    // Every other address of that /64 is the same client.
    for n in 3..30 {
        let (status, answer) = login_from(&address, &format!("2001:db8:1:2:{n:x}::{n:x}")).await;
        assert_code(&(status, answer), 429, "TOO_MANY_REQUESTS");
    }
    // Another /64 is another client; IPv4 clients are keyed by address.
    assert_eq!(login_from(&address, "2001:db8:1:3::1").await.0, 302);
    assert_eq!(login_from(&address, "198.51.100.1").await.0, 302);
    assert_eq!(login_from(&address, "198.51.100.2").await.0, 302);
}
