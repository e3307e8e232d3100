//! The API proxy (SPEC 9): forwarding with the caller's token, header filtering, streaming
//! both ways, every refusal with its status and code, config checks at start, metrics and
//! the OpenAPI document — against a local upstream that records what it received.

use std::net::TcpListener;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fake_op::{FakeOp, TestUser};
use crate::helpers::{AppOptions, TestApp, assert_error, browser, session_cookie, spawn_app_for};
use crate::token_strategies::claims_of;
use crate::upstream::{Upstream, pattern, pattern_stream};

/// A port nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Targets on `upstream`: `/api/echo` (the session's token as Bearer), `/api/param`
/// (`?token=`), `/api/access` (`?access_token=`), `/api/admin` (a role nobody has),
/// `/api/exchange` (token exchange), `/api/dead` (nothing listens).
fn targets(upstream: &Upstream, proxy: &str) -> String {
    let up = &upstream.address;
    format!(
        r#"
[proxy]
{proxy}

[[targets]]
url = "{up}/v1/"
strategy = "access_token"
proxy_path = "/api/echo"

[[targets]]
url = "{up}/p/"
strategy = "access_token"
transport = ["TOKEN_PARAMETER", "BEARER"]
proxy_path = "/api/param"

[[targets]]
url = "{up}/a/"
strategy = "access_token"
transport = ["ACCESS_TOKEN_PARAMETER"]
proxy_path = "/api/access"

[[targets]]
url = "{up}/admin/"
strategy = "access_token"
roles = ["nobody-has-this"]
proxy_path = "/api/admin"

[[targets]]
url = "{up}/x/"
strategy = "exchange"
audience = "x"
proxy_path = "/api/exchange"

[[targets]]
url = "http://127.0.0.1:{dead}/"
strategy = "access_token"
proxy_path = "/api/dead"

[[targets]]
url = "{up}/"
strategy = "access_token"
proxy_path = "/api/root"
"#,
        dead = closed_port()
    )
}

struct Setup {
    app: TestApp,
    upstream: Upstream,
}

async fn setup_with(proxy: &str) -> Setup {
    let upstream = Upstream::start().await;
    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            tail: targets(&upstream, proxy),
            ..AppOptions::default()
        },
    )
    .await;
    app.login(&TestUser::alice()).await;
    Setup { app, upstream }
}

async fn setup() -> Setup {
    setup_with("").await
}

impl Setup {
    /// A proxied request from the logged-in browser, with X-Requested-With.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.app
            .client
            .request(method, self.app.url(path))
            .header("X-Requested-With", "XMLHttpRequest")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }
}

/// Sends `path` exactly as written (reqwest would resolve `..`), with the session cookie
/// of a fresh login; returns the status.
async fn raw_get(setup: &Setup, path: &str) -> u16 {
    let client = browser();
    let response = setup.app.login_with(&client, &TestUser::alice()).await;
    let cookie = session_cookie(&response).unwrap();
    let cookie = cookie.split(';').next().unwrap();
    let address = setup.app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\nX-Requested-With: x\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split(' ').nth(1).unwrap();
    if status != "404" {
        assert!(
            answer.contains("INVALID_PARAMETER") || !status.starts_with('4'),
            "{answer}"
        );
    }
    status.parse().unwrap()
}

#[tokio::test]
async fn get_reaches_the_target_with_the_token_and_without_our_cookie() {
    let s = setup().await;
    let response = s
        .request(reqwest::Method::GET, "/api/echo/items/7?q=a%20b&x=1")
        .header("Authorization", "Basic YnJvd3Nlcjpzb21ldGhpbmc=")
        .header("X-Forwarded-For", "6.6.6.6")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), r#"{"echo":true}"#);
    let seen = s.upstream.only_request();
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.uri, "/v1/items/7?q=a%20b&x=1");
    let authorization = seen.header("authorization");
    assert_eq!(authorization.len(), 1, "{seen:?}");
    let token = authorization[0].strip_prefix("Bearer ").unwrap();
    // Exactly what POST /token gives for this target.
    let answer: serde_json::Value =
        crate::targets::post_token(&s.app, &format!("{}/v1/x", s.upstream.address))
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(answer["token"]["value"], token);
    assert_eq!(claims_of(token)["sub"], TestUser::alice().sub);
    assert!(seen.header("cookie").is_empty(), "{seen:?}");
    assert_eq!(seen.header("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.header("x-forwarded-proto"), ["http"]);
    let host = s.app.address.trim_start_matches("http://");
    assert_eq!(seen.header("x-forwarded-host"), [host]);
    assert_eq!(seen.header("accept"), ["application/json"]);
    assert_eq!(seen.header("x-requested-with"), ["XMLHttpRequest"]);
}

#[tokio::test]
async fn every_method_and_its_body_are_forwarded() {
    let s = setup().await;
    for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let body: Vec<u8> = (0..1000).map(pattern).collect();
        let response = s
            .request(method.clone(), "/api/echo/things")
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{method}");
        let seen = s.upstream.requests().pop().unwrap();
        assert_eq!(seen.method, method.as_str());
        assert_eq!(seen.uri, "/v1/things");
        assert_eq!((seen.body_length, seen.body_is_pattern), (1000, true));
        assert_eq!(seen.header("content-length"), ["1000"]);
        assert_eq!(seen.header("content-type"), ["application/octet-stream"]);
    }
    let response = s.get("/api/echo").await;
    assert_eq!(response.status(), 200);
    assert_eq!(s.upstream.requests().pop().unwrap().uri, "/v1/");
}

#[tokio::test]
async fn query_transports_add_the_token_parameter() {
    let s = setup().await;
    assert_eq!(s.get("/api/param/q?token=forged&b=2").await.status(), 200);
    assert_eq!(s.get("/api/access/q?a=1").await.status(), 200);
    let seen = s.upstream.requests();
    let param = url::Url::parse(&format!("http://x{}", seen[0].uri)).unwrap();
    let pairs: Vec<(String, String)> = param.query_pairs().into_owned().collect();
    assert_eq!(pairs.len(), 2, "{pairs:?}");
    assert_eq!(pairs[0], ("b".to_owned(), "2".to_owned()));
    assert_eq!(pairs[1].0, "token");
    assert_eq!(claims_of(&pairs[1].1)["sub"], TestUser::alice().sub);
    // The first transport only: no Authorization header besides the parameter.
    assert!(seen[0].header("authorization").is_empty());
    let access = url::Url::parse(&format!("http://x{}", seen[1].uri)).unwrap();
    let names: Vec<String> = access.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(names, ["a", "access_token"]);
}

#[tokio::test]
async fn upstream_errors_pass_through_without_set_cookie_or_hop_by_hop_headers() {
    let s = setup_with("").await;
    for code in [404, 500, 503] {
        let response = s.get(&format!("/api/root/status/{code}")).await;
        assert_eq!(response.status(), code);
        assert_eq!(response.headers()["x-upstream"], "yes");
        assert_eq!(
            response.text().await.unwrap(),
            format!("upstream says {code}")
        );
    }
    let response = s.get("/api/root/cookie").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("set-cookie").is_none());
    assert!(response.headers().get("proxy-authenticate").is_none());
    assert!(response.headers().get("trailer").is_none());
    assert_eq!(response.headers()["x-kept"], "1");
}

#[tokio::test]
async fn the_response_starts_before_the_upstream_body_ends() {
    let s = setup().await;
    let mut response = s.get("/api/root/hold").await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"first;");
    s.upstream.release();
    assert_eq!(response.text().await.unwrap(), "rest");
}

#[tokio::test]
async fn large_bodies_stream_through_intact() {
    const SIZE: u64 = 32 * 1024 * 1024;
    let s = setup_with("max_body = \"200MB\"").await;
    let response = s.get(&format!("/api/root/download/{SIZE}")).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut offset = 0u64;
    while let Some(chunk) = stream.next().await {
        for byte in chunk.unwrap().iter() {
            assert_eq!(*byte, pattern(offset), "byte {offset}");
            offset += 1;
        }
    }
    assert_eq!(offset, SIZE);

    let response = s
        .request(reqwest::Method::PUT, "/api/root/upload")
        .body(reqwest::Body::wrap_stream(pattern_stream(SIZE)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let seen = s.upstream.requests().pop().unwrap();
    assert_eq!((seen.body_length, seen.body_is_pattern), (SIZE, true));
}

#[tokio::test]
async fn bodies_over_max_body_are_refused_with_413() {
    let s = setup_with("max_body = \"1KB\"").await;
    // Declared up front: refused before anything else.
    let response = s
        .request(reqwest::Method::POST, "/api/echo/up")
        .body(vec![0u8; 1001])
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "PAYLOAD_TOO_LARGE").await;
    assert!(s.upstream.requests().is_empty());
    // Chunked, found while streaming (the service then closes the connection).
    let response = s
        .request(reqwest::Method::POST, "/api/echo/up")
        .header("Connection", "close")
        .body(reqwest::Body::wrap_stream(pattern_stream(200_000)))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "PAYLOAD_TOO_LARGE").await;
    // Exactly max_body passes.
    let response = s
        .request(reqwest::Method::POST, "/api/echo/up")
        .body(vec![0u8; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_64_kib_api_limit_does_not_apply_to_the_proxy() {
    let s = setup().await;
    let body: Vec<u8> = (0..200_000).map(pattern).collect();
    let response = s
        .request(reqwest::Method::POST, "/api/echo/big")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(s.upstream.only_request().body_length, 200_000);
}

#[tokio::test]
async fn without_a_session_it_is_401() {
    let s = setup().await;
    let response = browser()
        .get(s.app.url("/api/echo/x"))
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "UNAUTHORIZED").await;
    assert!(s.upstream.requests().is_empty());
}

#[tokio::test]
async fn a_target_the_caller_may_not_use_is_403_target_not_allowed() {
    let s = setup().await;
    assert_error(s.get("/api/admin/x").await, 403, "TARGET_NOT_ALLOWED").await;
    assert!(s.upstream.requests().is_empty());
}

#[tokio::test]
async fn cross_site_requests_are_403_forbidden_for_every_method() {
    let s = setup().await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let plain = s
            .app
            .client
            .request(method.clone(), s.app.url("/api/echo/x"));
        assert_error(plain.send().await.unwrap(), 403, "FORBIDDEN").await;
        let foreign = s
            .app
            .client
            .request(method.clone(), s.app.url("/api/echo/x"))
            .header("Origin", "https://evil.example.org");
        assert_error(foreign.send().await.unwrap(), 403, "FORBIDDEN").await;
    }
    assert!(s.upstream.requests().is_empty());
    // An allowed Origin, or our own, is enough.
    for origin in ["http://localhost:3000".to_owned(), s.app.address.clone()] {
        let response = s
            .app
            .client
            .get(s.app.url("/api/echo/x"))
            .header("Origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn x_requested_with_does_not_excuse_a_foreign_origin() {
    let s = setup().await;
    let response = s
        .request(reqwest::Method::GET, "/api/echo/x")
        .header("Origin", "https://evil.example.org")
        .send()
        .await
        .unwrap();
    assert_error(response, 403, "FORBIDDEN").await;
    assert!(s.upstream.requests().is_empty());
}

#[tokio::test]
async fn paths_that_leave_the_target_are_400_and_never_sent() {
    let s = setup().await;
    for path in [
        "/api/echo/../p/x",
        "/api/echo/%2e%2e/p/x",
        "/api/echo/%2E%2E/p/x",
        "/api/echo/a/..%2F..%2Fp",
        "/api/echo/a%2fb",
        "/api/echo/a%5Cb",
        "/api/echo/..",
    ] {
        assert_eq!(raw_get(&s, path).await, 400, "{path}");
    }
    assert!(
        s.upstream.requests().is_empty(),
        "{:?}",
        s.upstream.requests()
    );
    // Dot segments that stay inside are fine.
    assert_eq!(raw_get(&s, "/api/echo/a/../b").await, 200);
    assert_eq!(s.upstream.only_request().uri, "/v1/b");
}

#[tokio::test]
async fn paths_beside_a_proxy_path_are_not_proxied() {
    let s = setup().await;
    assert_error(s.get("/api/echox").await, 404, "NOT_FOUND").await;
    assert!(s.upstream.requests().is_empty());
}

#[tokio::test]
async fn a_token_that_cannot_be_had_is_502_token_unavailable() {
    let upstream = Upstream::start().await;
    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            tail: targets(&upstream, ""),
            ..AppOptions::default()
        },
    )
    .await;
    app.login(&TestUser::alice()).await;
    op.fail_token_endpoint(Some((500, "server_error")));
    let s = Setup { app, upstream };
    assert_error(s.get("/api/exchange/x").await, 502, "TOKEN_UNAVAILABLE").await;
    assert!(s.upstream.requests().is_empty());
}

#[tokio::test]
async fn an_unreachable_or_silent_upstream_is_502_upstream_unavailable() {
    let s = setup_with("timeout = \"300ms\"").await;
    assert_error(s.get("/api/dead/x").await, 502, "UPSTREAM_UNAVAILABLE").await;
    assert_error(s.get("/api/root/silent").await, 502, "UPSTREAM_UNAVAILABLE").await;
    assert_eq!(s.upstream.only_request().uri, "/silent");
}

#[tokio::test]
async fn an_https_target_is_reached_only_when_its_certificate_is_trusted() {
    // Any GET but discovery answers `{"keys":[]}`, over TLS from a private CA.
    let upstream = crate::operate::start_private_ca_provider().await;
    let ca_file = crate::helpers::temp_file("pem", &upstream.ca_pem);
    let op = FakeOp::start().await;
    let target = format!(
        "[[targets]]\nurl = \"{}/\"\nstrategy = \"access_token\"\nproxy_path = \"/api/tls\"\n",
        upstream.issuer
    );
    let trusted = format!("[tls]\nca_file = \"{}\"\n{target}", ca_file.display());
    for (tail, trusts) in [(target.clone(), false), (trusted, true)] {
        let app = spawn_app_for(
            &op,
            AppOptions {
                tail,
                ..AppOptions::default()
            },
        )
        .await;
        app.login(&TestUser::alice()).await;
        let response = app
            .client
            .get(app.url("/api/tls/keys"))
            .header("X-Requested-With", "XMLHttpRequest")
            .send()
            .await
            .unwrap();
        if trusts {
            assert_eq!(response.status(), 200);
            assert_eq!(response.text().await.unwrap(), r#"{"keys":[]}"#);
        } else {
            assert_error(response, 502, "UPSTREAM_UNAVAILABLE").await;
        }
    }
}

#[tokio::test]
async fn metrics_count_proxied_requests_and_upstream_latency() {
    let s = setup().await;
    assert_eq!(s.get("/api/echo/x").await.status(), 200);
    assert_eq!(s.get("/api/admin/x").await.status(), 403);
    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    let up = &s.upstream.address;
    assert!(
        metrics.contains(&format!(
            "identity_proxy_requests_total{{status=\"200\",target=\"{up}/v1/\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "identity_proxy_requests_total{{status=\"403\",target=\"{up}/admin/\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "identity_proxy_upstream_duration_seconds_count{{target=\"{up}/v1/\"}} 1"
        )),
        "{metrics}"
    );
}

#[tokio::test]
async fn openapi_describes_each_proxy_path_and_token_targets_is_unchanged() {
    let s = setup().await;
    let doc: serde_json::Value = s.app.get("/openapi.json").await.json().await.unwrap();
    let item = &doc["paths"]["/api/echo/{rest}"];
    for method in ["get", "post", "put", "patch", "delete"] {
        assert!(
            item[method]["responses"]["401"].is_object(),
            "{method}: {item}"
        );
    }
    assert!(doc["paths"]["/api/root/{rest}"].is_object());
    // OpenAPI 3.1 (4.8.12.4): every parameter has a `schema` or a `content`; without one
    // a client generator (or schemathesis) cannot make a value for it.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                assert!(
                    parameter.get("schema").is_some() || parameter.get("content").is_some(),
                    "{method} {path}: parameter {} has neither schema nor content",
                    parameter["name"]
                );
            }
        }
    }
    let list: serde_json::Value = s.app.get("/token-targets").await.json().await.unwrap();
    let targets = list["targets"].as_array().unwrap();
    assert!(targets.contains(&serde_json::json!(format!("{}/v1/", s.upstream.address))));
    assert!(list.get("proxy_path").is_none() && targets.iter().all(|t| t.is_string()));
}

#[test]
fn a_bad_proxy_path_stops_the_start_with_exit_2() {
    let text = "[[targets]]\nurl = \"https://a.example.com/\"\nstrategy = \"access_token\"\nproxy_path = \"/token\"\n";
    let path = crate::helpers::temp_file("toml", text);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_identity-service"))
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("targets[0].proxy_path"), "{stderr}");
}

#[tokio::test]
async fn allowed_frontends_may_send_any_method_cross_origin() {
    let s = setup().await;
    let response = s
        .app
        .client
        .request(reqwest::Method::OPTIONS, s.app.url("/api/echo/x"))
        .header("Origin", "http://localhost:3000")
        .header("Access-Control-Request-Method", "DELETE")
        .header("Access-Control-Request-Headers", "x-requested-with")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let methods = response.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    assert!(
        s.upstream.requests().is_empty(),
        "a preflight is not proxied"
    );
}
