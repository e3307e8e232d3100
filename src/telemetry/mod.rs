//! Logging (SPEC 3 `[log]`, SPEC 7): a tracing subscriber writing text or one JSON object
//! per line through a non-blocking writer, the per-request span, the access line and the
//! `X-Request-Id` response header.
//!
//! Access lines carry the method, the path (never the query string, which holds codes,
//! `state` values and tokens on some routes), the matched route, the status, the duration
//! and the request id. They are events of target [`ACCESS_TARGET`], so `access = false`
//! is one filter directive.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// The `tracing` target of access lines.
pub const ACCESS_TARGET: &str = "access";

/// The response header that names the request id (the `request_id` of its log lines).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Installs the global subscriber with defaults (text, `RUST_LOG` or `info`), writing
/// synchronously (tests use this). Later calls are ignored.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .try_init();
}

/// Installs the global subscriber for `[log]`, writing to stdout from a background
/// thread so a request never waits for the terminal or the pipe. Keep the guard alive
/// until exit: dropping it flushes what is still queued. `None` when a subscriber was
/// already installed.
pub fn init_with(log: &LogConfig) -> Option<WorkerGuard> {
    let mut filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::new(directives),
        _ => EnvFilter::new(&log.level),
    };
    if !log.access
        && let Ok(directive) = format!("{ACCESS_TARGET}=off").parse()
    {
        filter = filter.add_directive(directive);
    }
    let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
    let installed = match log.format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_writer(writer)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_target(false)
            .with_env_filter(filter)
            .with_writer(writer)
            .try_init(),
    };
    installed.ok().map(|()| guard)
}

/// When the request started (for the access line's duration).
#[derive(Clone, Copy)]
struct Started(Instant);

/// Request spans without query strings, and the access line at their end.
pub struct RedactedRootSpan;

impl RootSpanBuilder for RedactedRootSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        request.extensions_mut().insert(Started(Instant::now()));
        let request_id = request.extensions().get::<RequestId>().copied();
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.path(),
            request_id = %request_id.map(|id| id.to_string()).unwrap_or_default(),
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        let _entered = span.enter();
        match outcome {
            Ok(response) => {
                let request = response.request();
                let duration_ms = request
                    .extensions()
                    .get::<Started>()
                    .map(|started| started.0.elapsed().as_secs_f64() * 1000.0)
                    .unwrap_or_default();
                let route = request
                    .match_pattern()
                    .unwrap_or_else(|| "UNKNOWN".to_owned());
                tracing::info!(
                    target: ACCESS_TARGET,
                    route = %route,
                    status = response.status().as_u16(),
                    duration_ms,
                    "served"
                );
            }
            Err(error) => tracing::warn!(%error, "request failed"),
        }
    }
}

/// Middleware (for `wrap_fn`, inside `TracingLogger`): sets `X-Request-Id` on the response.
pub fn request_id_header<S, B>(
    request: ServiceRequest,
    service: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<B>, Error>> + use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    let request_id = request.extensions().get::<RequestId>().copied();
    let response = service.call(request);
    async move {
        let mut response = response.await?;
        if let Some(id) = request_id
            && let Ok(value) = HeaderValue::from_str(&id.to_string())
        {
            response
                .headers_mut()
                .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
        }
        Ok(response)
    }
}
