//! Traces (SPEC 7, "Traces"; `[telemetry]`): the release binary exports OTLP/HTTP to a
//! receiver of our own ([`Receiver`]: an actix server decoding the protobuf with the
//! `opentelemetry-proto` types). One span per request named by its route template with
//! status and request id, child spans for store and outbound calls, an incoming
//! `traceparent` continued and one sent on every outbound call (provider and proxy), no
//! secret or query string anywhere in what is exported, and a collector that is down or
//! silent costs requests nothing while the spans it loses are counted in `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::fake_op::{FakeOp, TestUser};
use crate::helpers::{TestApp, browser, session_cookie};
use crate::logging::{
    Running, a_whole_session, assert_no_secret, run_binary_with_tail, wait_ready,
};
use crate::upstream::Upstream;

/// A small OTLP/HTTP receiver: `POST /v1/traces` with a protobuf body, decoded and kept.
#[derive(Clone)]
pub struct Receiver {
    /// `http://127.0.0.1:<port>` (the `otlp_endpoint`).
    pub address: String,
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

impl Receiver {
    /// Starts it on a free port.
    pub async fn start() -> Self {
        let received = Arc::new(Mutex::new(Vec::new()));
        let data = web::Data::new(received.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .route("/v1/traces", web::post().to(export))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self {
            address: format!("http://127.0.0.1:{port}"),
            received,
        }
    }

    /// Every export request received so far.
    pub fn requests(&self) -> Vec<ExportTraceServiceRequest> {
        self.received.lock().unwrap().clone()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.requests()
            .into_iter()
            .flat_map(|request| request.resource_spans)
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans)
            .collect()
    }
}

async fn export(
    body: web::Bytes,
    received: web::Data<Arc<Mutex<Vec<ExportTraceServiceRequest>>>>,
) -> HttpResponse {
    match ExportTraceServiceRequest::decode(body.as_ref()) {
        Ok(request) => {
            received.lock().unwrap().push(request);
            HttpResponse::Ok()
                .content_type("application/x-protobuf")
                .finish()
        }
        Err(_) => HttpResponse::BadRequest().finish(),
    }
}

/// A span's string or integer attribute.
fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
        .map(|value| match value {
            AnyValue::StringValue(text) => text.clone(),
            AnyValue::IntValue(number) => number.to_string(),
            other => format!("{other:?}"),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `traceparent` = `00-<trace id>-<parent id>-<flags>`: (trace id, parent id).
fn parse_traceparent(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// The span tree under `root` as indented names (what the report shows of a trace).
fn tree(spans: &[Span], root: &Span) -> String {
    fn walk(spans: &[Span], span: &Span, depth: usize, out: &mut String) {
        out.push_str(&format!("{}{}\n", "  ".repeat(depth), span.name));
        let mut children: Vec<&Span> = spans
            .iter()
            .filter(|child| child.parent_span_id == span.span_id && child.trace_id == span.trace_id)
            .collect();
        children.sort_by_key(|child| child.start_time_unix_nano);
        for child in children {
            walk(spans, child, depth + 1, out);
        }
    }
    let mut out = String::new();
    walk(spans, root, 0, &mut out);
    out
}

fn proxy_target(upstream: &Upstream) -> String {
    format!(
        "[[targets]]\nurl = \"{}/v1/\"\nstrategy = \"access_token\"\nproxy_path = \"/api/echo\"\n",
        upstream.address
    )
}

/// Waits until `done` holds for the receiver's spans (the exporter sends every second).
async fn eventually(receiver: &Receiver, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    for _ in 0..100 {
        let spans = receiver.spans();
        if done(&spans) {
            return spans;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver.spans()
}

#[tokio::test]
async fn a_whole_session_is_traced_end_to_end_without_a_secret() {
    let receiver = Receiver::start().await;
    let upstream = Upstream::start().await;
    let op = FakeOp::start().await;
    let (running, app) = run_binary_with_tail(
        &op,
        "text",
        &[("IDENTITY__TELEMETRY__OTLP_ENDPOINT", &receiver.address)],
        &proxy_target(&upstream),
    );
    wait_ready(&app).await;

    // Login, token, refused bearer, back-channel logout, logout (the log test's run).
    let (mut secrets, _) = a_whole_session(&app).await;

    // A login whose access token expires at once, then /token refreshes it.
    op.set_access_token_ttl(1);
    let carol = browser();
    let response = app.login_with(&carol, &TestUser::alice()).await;
    assert_eq!(response.status(), 302);
    let cookie = session_cookie(&response).unwrap();
    secrets.push(
        cookie
            .split(';')
            .next()
            .unwrap()
            .trim_start_matches("ctIDENTITY=")
            .to_owned(),
    );
    op.set_access_token_ttl(300);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let refreshes = op.token_calls("refresh_token");
    let response = carol
        .post(app.url("/token"))
        .header("X-Requested-With", "XMLHttpRequest")
        .form(&[("target", "https://api.example.com/maps/tiles")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(op.token_calls("refresh_token"), refreshes + 1);
    let body: serde_json::Value = response.json().await.unwrap();
    secrets.push(body["token"]["value"].as_str().unwrap().to_owned());

    // The proxy, with a query string that must not be recorded, continuing the browser's
    // trace (a sampled traceparent).
    let incoming_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let incoming_parent = "00f067aa0ba902b7";
    let query_secret = "query-SECRET-4c1d2e3f";
    let response = carol
        .get(app.url(&format!("/api/echo/items?q={query_secret}")))
        .header("X-Requested-With", "XMLHttpRequest")
        .header(
            "traceparent",
            format!("00-{incoming_trace}-{incoming_parent}-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let proxy_request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    secrets.push(query_secret.to_owned());
    let upstream_request = upstream
        .requests()
        .into_iter()
        .last()
        .expect("the upstream got the proxied request");
    let upstream_traceparent = upstream_request.header("traceparent");
    assert_eq!(upstream_traceparent.len(), 1, "{upstream_request:?}");
    secrets.extend(
        upstream_request
            .header("authorization")
            .iter()
            .map(|value| value.trim_start_matches("Bearer ").to_owned()),
    );

    let log = running.stop();
    let spans = receiver.spans();
    assert!(!spans.is_empty(), "no span arrived; log:\n{log}");

    // Nothing exported holds a secret of the run or a query string.
    let exported = format!("{:?}", receiver.requests());
    assert_no_secret(&exported, &secrets);
    for span in &spans {
        for attribute in &span.attributes {
            let text = format!("{:?}", attribute.value);
            assert!(
                !text.contains('?'),
                "a query string in {}: {text}",
                span.name
            );
        }
    }
    let resources = format!(
        "{:?}",
        receiver
            .requests()
            .iter()
            .flat_map(|request| request.resource_spans.iter().map(|r| r.resource.clone()))
            .collect::<Vec<_>>()
    );
    assert!(resources.contains("identity-service"), "{resources}");

    // Request spans are named by route template and carry status and request id.
    let callback = spans
        .iter()
        .find(|span| span.name == "GET /callback")
        .unwrap_or_else(|| {
            panic!(
                "no GET /callback span in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(
        attribute(callback, "http.response.status_code").as_deref(),
        Some("302")
    );
    assert_eq!(
        attribute(callback, "http.route").as_deref(),
        Some("/callback")
    );
    assert_eq!(
        attribute(callback, "request_id").map(|id| id.len()),
        Some(32)
    );
    let login_tree = tree(&spans, callback);
    eprintln!("the trace of one login (GET /callback):\n{login_tree}");
    for child in ["POST token", "store ", "GET userinfo"] {
        assert!(
            login_tree.contains(child),
            "no {child} under the callback:\n{login_tree}"
        );
    }

    // The provider received our trace context: the token call of a login belongs to its
    // callback's trace, with the "POST token" span as parent.
    let traceparents = op.traceparents();
    let token_calls: Vec<(String, String)> = traceparents
        .iter()
        .filter(|(path, _)| path == "/token")
        .map(|(_, value)| parse_traceparent(value))
        .collect();
    let callback_trace = hex(&callback.trace_id);
    let (_, token_parent) = token_calls
        .iter()
        .find(|(trace, _)| *trace == callback_trace)
        .expect("the login's token request carries the callback's trace id");
    let token_span = spans
        .iter()
        .find(|span| hex(&span.span_id) == *token_parent)
        .expect("the traceparent names an exported span");
    assert_eq!(token_span.name, "POST token");
    assert_eq!(token_span.parent_span_id, callback.span_id);
    for path in [
        "/token",
        "/userinfo",
        "/.well-known/openid-configuration",
        "/jwks",
    ] {
        assert!(
            traceparents.iter().any(|(seen, _)| seen == path),
            "no traceparent sent to {path}: {traceparents:?}"
        );
    }

    // The refresh and the target token fetch are spans of the /token request.
    let refresh_trace = spans
        .iter()
        .filter(|span| span.name == "POST /token")
        .map(|token| tree(&spans, token))
        .find(|tree| tree.contains("POST token"))
        .expect("a /token request that refreshed");
    assert!(refresh_trace.contains("target token"), "{refresh_trace}");

    // The proxied request continues the browser's trace and hands it on to the API.
    let proxied = spans
        .iter()
        .find(|span| attribute(span, "request_id").as_deref() == Some(proxy_request_id.as_str()))
        .expect("the proxied request's span");
    assert_eq!(hex(&proxied.trace_id), incoming_trace);
    assert_eq!(hex(&proxied.parent_span_id), incoming_parent);
    assert!(
        proxied.name.starts_with("GET /api/echo"),
        "{}",
        proxied.name
    );
    let (upstream_trace, upstream_parent) = parse_traceparent(upstream_traceparent[0]);
    assert_eq!(upstream_trace, incoming_trace);
    let proxy_span = spans
        .iter()
        .find(|span| hex(&span.span_id) == upstream_parent)
        .expect("the upstream's traceparent names an exported span");
    assert_eq!(proxy_span.name, "GET proxy");
    assert_eq!(proxy_span.parent_span_id, proxied.span_id);
    assert_eq!(
        attribute(proxy_span, "http.response.status_code").as_deref(),
        Some("200")
    );
}

/// The release binary exporting to `receiver` at `sample_ratio`, under the service name
/// `identity-under-test`.
fn traced_binary(op: &FakeOp, receiver: &Receiver, sample_ratio: &str) -> (Running, TestApp) {
    run_binary_with_tail(
        op,
        "text",
        &[
            ("IDENTITY__TELEMETRY__OTLP_ENDPOINT", &receiver.address),
            ("IDENTITY__TELEMETRY__SAMPLE_RATIO", sample_ratio),
            ("IDENTITY__TELEMETRY__SERVICE_NAME", "identity-under-test"),
        ],
        "",
    )
}

#[tokio::test]
async fn new_traces_follow_sample_ratio_and_a_sampled_traceparent_is_always_followed() {
    let receiver = Receiver::start().await;
    let op = FakeOp::start().await;
    let (running, app) = traced_binary(&op, &receiver, "0.0");
    wait_ready(&app).await;
    let client = browser();
    for _ in 0..20 {
        let response = client.get(app.url("/health/live")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let unsampled = "00-11111111111111111111111111111111-2222222222222222-00";
    let response = client
        .get(app.url("/health/live"))
        .header("traceparent", unsampled)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sampled_trace = "0af7651916cd43dd8448eb211c80319c";
    let response = client
        .get(app.url("/health/live"))
        .header(
            "traceparent",
            format!("00-{sampled_trace}-b7ad6b7169203331-01"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let spans = eventually(&receiver, |spans| !spans.is_empty()).await;
    running.stop();
    let spans: Vec<Span> = spans.into_iter().chain(receiver.spans()).collect();
    let traces: HashMap<String, usize> = spans.iter().fold(HashMap::new(), |mut seen, span| {
        *seen.entry(hex(&span.trace_id)).or_default() += 1;
        seen
    });
    assert_eq!(
        traces.keys().collect::<Vec<_>>(),
        vec![sampled_trace],
        "only the sampled incoming trace is recorded at sample_ratio 0"
    );
    assert!(
        spans.iter().any(|span| span.name == "GET /health/live"),
        "{:?}",
        spans.iter().map(|span| &span.name).collect::<Vec<_>>()
    );
    let resources = format!("{:?}", receiver.requests()[0].resource_spans[0].resource);
    assert!(resources.contains("identity-under-test"), "{resources}");
}

#[tokio::test]
async fn an_unsampled_request_makes_no_span_of_its_store_and_outbound_calls() {
    let receiver = Receiver::start().await;
    let op = FakeOp::start().await;
    // Every new trace is recorded, so a span an unsampled request's call made would be.
    let (running, app) = traced_binary(&op, &receiver, "1.0");
    wait_ready(&app).await;
    let mut unsampled_headers = reqwest::header::HeaderMap::new();
    unsampled_headers.insert(
        "traceparent",
        "00-11111111111111111111111111111111-2222222222222222-00"
            .parse()
            .unwrap(),
    );
    let unsampled = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(unsampled_headers)
        .build()
        .unwrap();
    // A login (store writes, the provider's token and userinfo calls), then /userinfo.
    let response = app.login_with(&unsampled, &TestUser::alice()).await;
    assert_eq!(response.status(), 302);
    let response = unsampled.get(app.url("/userinfo")).send().await.unwrap();
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["authenticated"],
        true
    );
    // Then one sampled request, so the export after it holds whatever came before.
    let response = browser().get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let spans = eventually(&receiver, |spans| {
        spans.iter().any(|span| span.name == "GET /health/live")
    })
    .await;
    running.stop();
    let names: Vec<&String> = spans.iter().map(|span| &span.name).collect();
    let unsampled_trace = [0x11; 16];
    // What the readiness checks (`store ping`) and discovery record is theirs; the rest
    // would come from the unsampled requests or their calls.
    let of_unsampled = [
        "GET /login",
        "GET /callback",
        "GET /userinfo",
        "POST token",
        "GET userinfo",
    ];
    assert!(
        names.iter().any(|name| *name == "store ping"),
        "the control: readiness' store calls are recorded: {names:?}"
    );
    assert!(
        spans.iter().all(|span| span.trace_id != unsampled_trace
            && !of_unsampled.contains(&span.name.as_str())
            && (!span.name.starts_with("store") || span.name == "store ping")),
        "an unsampled request's calls left spans: {names:?}"
    );
}

#[tokio::test]
async fn a_silent_or_refusing_collector_costs_requests_nothing_and_drops_are_counted() {
    // A collector that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_address = format!("http://{}", silent.local_addr().unwrap());
    // A port nothing listens on: every export is refused.
    let refusing = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    for (collector, counted) in [(silent_address.as_str(), false), (refusing.as_str(), true)] {
        let op = FakeOp::start().await;
        let (running, app) = run_binary_with_tail(
            &op,
            "text",
            &[("IDENTITY__TELEMETRY__OTLP_ENDPOINT", collector)],
            "",
        );
        wait_ready(&app).await;
        let client = browser();
        let mut slowest = Duration::ZERO;
        // Across several export intervals: each request answers at once.
        for _ in 0..30 {
            let started = Instant::now();
            let response = client.get(app.url("/health/live")).send().await.unwrap();
            assert_eq!(response.status(), 200);
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            slowest < Duration::from_millis(500),
            "a request waited {slowest:?} with collector {collector}"
        );
        if counted {
            let mut dropped = 0.0;
            for _ in 0..50 {
                let metrics = client
                    .get(app.url("/metrics"))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                dropped = metrics
                    .lines()
                    .find_map(|line| line.strip_prefix("identity_trace_spans_dropped_total "))
                    .expect("the drop counter is exported")
                    .parse::<f64>()
                    .unwrap();
                if dropped >= 30.0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(dropped >= 30.0, "{dropped} spans counted as dropped");
        }
        let started = Instant::now();
        running.stop();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "stopping took {:?}",
            started.elapsed()
        );
    }
    drop(silent);
}

#[test]
fn bad_telemetry_settings_exit_2_naming_the_key() {
    for (toml, key) in [
        (
            "[telemetry]\nsample_ratio = 1.5\n",
            "telemetry.sample_ratio",
        ),
        (
            "[telemetry]\nsample_ratio = \"all\"\n",
            "telemetry.sample_ratio",
        ),
        (
            "[telemetry]\notlp_endpoint = \"collector:4318\"\n",
            "telemetry.otlp_endpoint",
        ),
        (
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318/?key=1\"\n",
            "telemetry.otlp_endpoint",
        ),
        ("[telemetry]\nexporter = \"grpc\"\n", "telemetry.exporter"),
    ] {
        let path = crate::helpers::temp_file("toml", toml);
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_identity-service"))
            .args(["--config", path.to_str().unwrap(), "check-config"])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{toml}");
        let message = String::from_utf8_lossy(&output.stderr);
        assert!(
            message.contains(key),
            "{key} not named for {toml}: {message}"
        );
    }
}

#[test]
fn check_config_masks_a_password_in_the_otlp_endpoint() {
    let path = crate::helpers::temp_file(
        "toml",
        "[telemetry]\notlp_endpoint = \"https://tenant:otlp-S3CRET-9f2@collector.example.com:4318\"\n",
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_identity-service"))
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{printed}");
    assert!(!printed.contains("otlp-S3CRET-9f2"), "{printed}");
    assert!(
        printed.contains("otlp_endpoint = \"https://tenant:***@collector.example.com:4318/\""),
        "{printed}"
    );
}
