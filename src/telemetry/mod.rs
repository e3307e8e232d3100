//! Logging (SPEC 3 `[log]`, SPEC 7) and the request middleware.
//!
//! - [`init_with`]: the subscriber for `[log]`, text or one JSON object per line, written
//!   from a background thread; lines logged while a request is served name it
//!   ([`request`]).
//! - [`RequestTelemetry`] (the outermost middleware): the request id (`X-Request-Id`),
//!   one access line per request ([`access`]) and the request counters of `/metrics`.
//!
//! Access lines carry the method, the path (never the query string, which holds codes,
//! `state` values and tokens on some routes), the matched route, the status, the duration
//! and the request id. They belong to target [`ACCESS_TARGET`], so `access = false` is
//! one filter directive.

mod access;
mod middleware;
mod request;
pub mod traces;

pub use middleware::{RequestTelemetry, RequestTelemetryService, RouteLabel, UNMATCHED_ROUTE};

use std::io::{BufWriter, Stdout};

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Registry;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogConfig, LogFormat};
use crate::spans;

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
        .event_format(request::WithRequest::text(ansi()))
        .try_init();
}

/// Installs the global subscriber for `[log]`, writing to stdout from a background
/// thread so a request never waits for the terminal or the pipe. Keep the guard alive
/// until exit: dropping it flushes what is still queued. `None` when a subscriber was
/// already installed.
pub fn init_with(log: &LogConfig) -> Option<WorkerGuard> {
    let (writer, guard) = tracing_appender::non_blocking(batched_stdout());
    let access_writer = writer.clone();
    let installed = match (level_filter(log), log.format) {
        (Filter::Targets(filter), LogFormat::Text) => text_subscriber()
            .with_writer(writer)
            .finish()
            .with(filter)
            .try_init()
            .is_ok(),
        (Filter::Targets(filter), LogFormat::Json) => json_subscriber()
            .with_writer(writer)
            .finish()
            .with(filter)
            .try_init()
            .is_ok(),
        (Filter::Env(filter), LogFormat::Text) => text_subscriber()
            .with_env_filter(filter)
            .with_writer(writer)
            .try_init()
            .is_ok(),
        (Filter::Env(filter), LogFormat::Json) => json_subscriber()
            .with_env_filter(filter)
            .with_writer(writer)
            .try_init()
            .is_ok(),
    };
    if installed {
        access::write_directly(access_writer, log.format);
    }
    installed.then_some(guard)
}

/// [`init_with`], and with `traces` the layer that records the spans of [`crate::spans`]
/// into them (the log lines never show those spans) and turns the spans on.
pub fn init_with_traces(log: &LogConfig, traces: Option<&traces::Traces>) -> Option<WorkerGuard> {
    let Some(traces) = traces else {
        return init_with(log);
    };
    let (writer, guard) = tracing_appender::non_blocking(batched_stdout());
    let access_writer = writer.clone();
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match (level_filter(log), log.format) {
        (Filter::Targets(filter), format) => fmt_layer(
            format,
            writer,
            filter.with_target(spans::TARGET, LevelFilter::OFF),
        ),
        (Filter::Env(filter), format) => {
            let filter = match format!("{}=off", spans::TARGET).parse() {
                Ok(directive) => filter.add_directive(directive),
                Err(_) => filter,
            };
            fmt_layer(format, writer, filter)
        }
    };
    let spans_only = tracing_subscriber::filter::filter_fn(|metadata| {
        metadata.is_span() && metadata.target() == spans::TARGET
    });
    let span_layer = tracing_opentelemetry::layer()
        .with_tracer(traces.tracer())
        .with_location(false)
        // Neither busy/idle times (two clock reads per poll of a span, two attributes) nor
        // an OpenTelemetry context per entered span: trace context is read off the spans
        // themselves (`spans::context_headers`), never off the ambient context.
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        .with_filter(spans_only);
    let installed = tracing_subscriber::registry()
        .with(lines)
        .with(span_layer)
        .try_init()
        .is_ok();
    if installed {
        access::write_directly(access_writer, log.format);
        spans::enable(traces.sample_ratio());
    }
    installed.then_some(guard)
}

/// The log lines as a layer (for [`init_with_traces`]), filtered by `filter`.
fn fmt_layer<F>(
    format: LogFormat,
    writer: tracing_appender::non_blocking::NonBlocking,
    filter: F,
) -> Box<dyn Layer<Registry> + Send + Sync>
where
    F: tracing_subscriber::layer::Filter<Registry> + Send + Sync + 'static,
{
    match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi())
            .event_format(request::WithRequest::text(ansi()))
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .event_format(request::WithRequest::json())
            .with_writer(writer)
            .with_filter(filter)
            .boxed(),
    }
}

fn ansi() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}

/// Text lines: time, level, message, fields, then the request's fields.
fn text_subscriber() -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::DefaultFields,
    request::WithRequest,
> {
    tracing_subscriber::fmt()
        .with_ansi(ansi())
        .event_format(request::WithRequest::text(ansi()))
}

/// One JSON object per line: the event's fields flat, the request's under `span`.
fn json_subscriber() -> tracing_subscriber::fmt::SubscriberBuilder<
    tracing_subscriber::fmt::format::JsonFields,
    request::WithRequest,
> {
    tracing_subscriber::fmt()
        .json()
        .event_format(request::WithRequest::json())
}

/// Which lines are written (made once at start: the size of a variant does not matter).
#[allow(clippy::large_enum_variant)]
enum Filter {
    /// `log.level` as per-target levels: decided once per call site.
    Targets(Targets),
    /// `RUST_LOG`, or a `log.level` with span or field filters: the full `EnvFilter`.
    Env(EnvFilter),
}

/// `RUST_LOG` when set, else `log.level`; `access = false` turns the access lines off.
fn level_filter(log: &LogConfig) -> Filter {
    let from_env = std::env::var("RUST_LOG")
        .ok()
        .filter(|directives| !directives.trim().is_empty());
    let targets = match &from_env {
        Some(_) => None,
        None => log.level.parse::<Targets>().ok(),
    };
    match targets {
        Some(targets) if !log.access => {
            Filter::Targets(targets.with_target(ACCESS_TARGET, LevelFilter::OFF))
        }
        Some(targets) => Filter::Targets(targets),
        None => {
            let mut filter = EnvFilter::new(from_env.as_deref().unwrap_or(&log.level));
            if !log.access
                && let Ok(directive) = format!("{ACCESS_TARGET}=off").parse()
            {
                filter = filter.add_directive(directive);
            }
            Filter::Env(filter)
        }
    }
}

/// Stdout for the log thread: lines queued meanwhile leave in one `write(2)` (the log
/// thread flushes whenever its queue is empty), not one call per line.
fn batched_stdout() -> BufWriter<Stdout> {
    BufWriter::with_capacity(64 * 1024, std::io::stdout())
}
