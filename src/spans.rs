//! The spans of traces (SPEC 7, "Traces"): whether traces are on, the spans the request
//! middleware, the store and the outbound calls open, and the W3C trace context
//! (`traceparent`, `tracestate`) read from a request and sent on every outbound call.
//!
//! Traces are off unless `[telemetry] otlp_endpoint` is set; then [`enable`] is called once
//! at start and every constructor here gives a real span of target [`TARGET`] (which only
//! the trace layer sees). Off, they give `Span::none()` after one relaxed load, so the
//! request path pays nothing for them.
//!
//! What a span may hold: route templates, methods, statuses, request ids, the kind of
//! call, host names and target names. Never a token, cookie, code, `state`, secret, store
//! key or query string: no constructor here takes one.

use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `tracing` target of every span made here.
pub const TARGET: &str = "otel";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns the spans on (the trace layer is installed).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether traces are on.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The span of one served request, continuing the caller's `traceparent` when it sent
/// one. Its name and route are set by [`finish_request`] once the route is known.
pub fn request(method: &str, request_id: &str, headers: &HeaderMap) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        otel.name = method,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = Empty,
        http.response.status_code = Empty,
        request_id = request_id,
    );
    let parent = TraceContextPropagator::new().extract(&ActixHeaders(headers));
    // Without a (valid) traceparent the context is empty and the span starts a trace.
    let _ = span.set_parent(parent);
    span
}

/// Names the request span by its route template (`GET /sessions/{id}`) and records the
/// status; 5xx marks it failed.
pub fn finish_request(span: &Span, method: &str, route: &str, status: u16) {
    if span.is_none() {
        return;
    }
    // The span has started by now (its children need its context): rename the started
    // span itself; recording `otel.name` only renames a span that has not.
    span.context()
        .span()
        .update_name(format!("{method} {route}"));
    span.record("http.route", route);
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
    }
}

/// The span of one store call (`get`, `set`, …): the operation only, never the key.
pub fn store(operation: &'static str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "store",
        otel.name = format!("store {operation}"),
        otel.kind = "client",
        db.operation.name = operation,
    )
}

/// The span of one outbound HTTP call: `call` names it (`discovery`, `jwks`, `token`,
/// `userinfo`, `introspection`, `proxy`, …); the host, never the path or query.
pub fn outbound(call: &'static str, method: &str, host: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "outbound",
        otel.name = format!("{method} {call}"),
        otel.kind = "client",
        otel.status_code = Empty,
        http.request.method = method,
        server.address = host,
        http.response.status_code = Empty,
        call = call,
    )
}

/// Records an outbound call's answer on its span (5xx or no answer: failed).
pub fn finish_outbound(span: &Span, status: Option<u16>) {
    if span.is_none() {
        return;
    }
    match status {
        Some(status) => {
            span.record("http.response.status_code", status);
            if status >= 500 {
                span.record("otel.status_code", "ERROR");
            }
        }
        None => {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// The span of one target token fetch (cached or not), naming the target by its
/// configured URL (a prefix from the configuration, never a request's URL).
pub fn target_token(target_url: &str) -> Span {
    if !enabled() {
        return Span::none();
    }
    tracing::info_span!(
        target: TARGET,
        "target_token",
        otel.name = "target token",
        target = target_url,
    )
}

/// The W3C trace context headers (`traceparent`, and `tracestate` when there is one) that
/// continue `span` in the callee; empty when traces are off.
pub fn context_headers(span: &Span) -> Vec<(&'static str, String)> {
    let mut headers = ContextHeaders(Vec::new());
    if span.is_none() {
        return headers.0;
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
    headers.0
}

/// Reads the trace context from an actix request's headers.
struct ActixHeaders<'a>(&'a HeaderMap);

impl Extractor for ActixHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// Collects the trace context headers to send.
struct ContextHeaders(Vec<(&'static str, String)>);

impl Injector for ContextHeaders {
    fn set(&mut self, key: &str, value: String) {
        let name = match key {
            "traceparent" => "traceparent",
            "tracestate" => "tracestate",
            _ => return,
        };
        self.0.push((name, value));
    }
}
