//! The spans of traces (SPEC 7, "Traces"): whether traces are on, the spans the request
//! middleware, the store and the outbound calls open, and the W3C trace context
//! (`traceparent`, `tracestate`) read from a request and sent on every outbound call.
//!
//! Traces are off unless `[telemetry] otlp_endpoint` is set; then [`enable`] is called once
//! at start and the constructors here give real spans of target [`TARGET`] (which only
//! the trace layer sees). Off, they give `Span::none()` after one relaxed load, so the
//! request path pays nothing for them.
//!
//! Sampling is decided here, where a trace starts, not by the SDK after the spans are
//! built: a request continuing a `traceparent` follows its sampled flag, any other root
//! (a request without one, a call outside any request) is drawn at `sample_ratio`. An
//! unsampled request gets `Span::none()` and runs inside [`unsampled`], so its store and
//! outbound calls make no span either: a request that will not be exported costs a
//! draw, not a tree of spans (the SDK's sampler then only follows parents).
//!
//! What a span may hold: route templates, methods, statuses, request ids, the kind of
//! call, host names and target names. Never a token, cookie, code, `state`, secret, store
//! key or query string: no constructor here takes one.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

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

/// A new trace is recorded when a random `u64` is below this (`sample_ratio` × 2⁶⁴).
static SAMPLE_BELOW: AtomicU64 = AtomicU64::new(u64::MAX);

tokio::task_local! {
    /// Set while an unsampled request is served.
    static UNSAMPLED: ();
}

/// Turns the spans on (the trace layer is installed), recording new traces at
/// `sample_ratio` (0 to 1).
pub fn enable(sample_ratio: f64) {
    SAMPLE_BELOW.store(sample_threshold(sample_ratio), Ordering::Relaxed);
    ENABLED.store(true, Ordering::Relaxed);
}

fn sample_threshold(sample_ratio: f64) -> u64 {
    if sample_ratio >= 1.0 {
        u64::MAX
    } else if sample_ratio > 0.0 {
        // Exact enough: the ratio has 53 bits, the threshold 64.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let threshold = (sample_ratio * 18_446_744_073_709_551_616.0) as u64;
        threshold
    } else {
        0
    }
}

/// Whether a new trace is recorded: a draw at `sample_ratio`.
fn draw() -> bool {
    match SAMPLE_BELOW.load(Ordering::Relaxed) {
        u64::MAX => true,
        0 => false,
        below => {
            let mut bytes = [0u8; 8];
            aws_lc_rs::rand::fill(&mut bytes).is_ok() && u64::from_le_bytes(bytes) < below
        }
    }
}

/// Runs `served` as an unsampled request: no span is made inside it.
pub fn unsampled<F: Future>(served: F) -> impl Future<Output = F::Output> {
    UNSAMPLED.scope((), served)
}

/// Runs `call` (the synchronous start of an unsampled request) where no span is made.
pub fn unsampled_scope<R>(call: impl FnOnce() -> R) -> R {
    UNSAMPLED.sync_scope((), call)
}

/// Whether a span made now may be recorded: traces are on, no unsampled request is being
/// served, and either a span is current (this one is its child) or this one starts a
/// trace and wins the draw.
fn recording() -> bool {
    enabled() && UNSAMPLED.try_with(|_| ()).is_err() && (!Span::current().is_none() || draw())
}

/// Whether traces are on.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The span of one served request, continuing the caller's `traceparent` when it sent
/// one. Its name and route are set by [`finish_request`] once the route is known.
/// `Span::none()` when traces are off or the request is not sampled (its `traceparent`
/// says so, or it starts a trace and loses the draw): see [`request_untraced`].
pub fn request(method: &str, request_id: &str, headers: &HeaderMap) -> Span {
    if !enabled() {
        return Span::none();
    }
    let parent = TraceContextPropagator::new().extract(&ActixHeaders(headers));
    let remote = parent.span().span_context().clone();
    let sampled = if remote.is_valid() {
        remote.is_sampled()
    } else {
        draw()
    };
    if !sampled {
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
    // Without a (valid) traceparent the context is empty and the span starts a trace.
    let _ = span.set_parent(parent);
    span
}

/// Whether a request whose span [`request`] gave is served without spans: traces are on
/// and it was not sampled. The middleware then serves it inside [`unsampled`].
pub fn request_untraced(span: &Span) -> bool {
    span.is_none() && enabled()
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
    if !recording() {
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
    if !recording() {
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
    if !recording() {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_ratio_becomes_a_threshold_over_the_whole_u64_range() {
        assert_eq!(sample_threshold(0.0), 0);
        assert_eq!(sample_threshold(-1.0), 0);
        assert_eq!(sample_threshold(1.0), u64::MAX);
        assert_eq!(sample_threshold(0.5), 1 << 63);
        assert_eq!(sample_threshold(0.25), 1 << 62);
    }
}
