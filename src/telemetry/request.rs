//! The request a log line belongs to: the middleware names the request being served
//! ([`CURRENT`], a task-local), and [`WithRequest`] adds its method, path and request id
//! to every line logged meanwhile (text: as trailing fields; JSON: under `span`). A
//! `tracing` span per request would do the same at about 1.7 µs a request.

use std::fmt;

use actix_web::http::{Method, Uri};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Json, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

tokio::task_local! {
    /// The request being served by this task, while the middleware polls it.
    pub(super) static CURRENT: RequestContext;
}

/// A request id, 32 hex digits: 64 random bits per worker thread, then the thread's
/// request counter through a bijective mix (unique per thread, and it does not show
/// how many requests came before).
#[derive(Clone, Copy)]
pub(super) struct RequestId([u8; 32]);

impl RequestId {
    /// The next id of this thread.
    pub(super) fn next() -> Self {
        thread_local! {
            static PREFIX: u64 = random_u64();
            static COUNTER: std::cell::Cell<u64> = std::cell::Cell::new(random_u64());
        }
        let prefix = PREFIX.with(|prefix| *prefix);
        let count = COUNTER.with(|counter| {
            let next = counter.get().wrapping_add(1);
            counter.set(next);
            next
        });
        let mut text = [b'0'; 32];
        let value = (u128::from(prefix) << 64) | u128::from(mix(count));
        for (index, digit) in text.iter_mut().enumerate() {
            let shift = 4 * (31 - index);
            let nibble = ((value >> shift) & 0xf) as u8;
            *digit = if nibble < 10 {
                b'0' + nibble
            } else {
                b'a' + nibble - 10
            };
        }
        Self(text)
    }

    /// The 32 hex digits.
    pub(super) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// SplitMix64's finaliser: a bijection on `u64` that scatters consecutive inputs.
fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    // Without the system's randomness the clock still keeps instances apart in practice.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos().into());
    }
    u64::from_le_bytes(bytes)
}

/// What a log line says about its request.
#[derive(Clone)]
pub(super) struct RequestContext {
    /// The request id (also sent as `X-Request-Id`).
    pub id: RequestId,
    /// The method.
    pub method: Method,
    /// The URI (for its path; cloning it shares its bytes). Not the request itself:
    /// routing needs the only reference to it.
    pub uri: Uri,
}

/// The event formatter: the usual text or JSON line, with the current request's fields.
pub enum WithRequest {
    /// `time  LEVEL message fields method=… path=… request_id=…`
    Text(Format<Full>),
    /// `{"timestamp":…,"level":…,"message":…,fields…,"span":{"method":…,"path":…,"request_id":…,"name":"request"}}`
    Json(Format<Json>),
}

impl WithRequest {
    /// Text lines (with colours when `ansi`).
    pub fn text(ansi: bool) -> Self {
        Self::Text(Format::default().with_target(false).with_ansi(ansi))
    }

    /// JSON lines.
    pub fn json() -> Self {
        Self::Json(
            Format::default()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_target(false),
        )
    }
}

impl<S, N> FormatEvent<S, N> for WithRequest
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Ok(request) = CURRENT.try_with(RequestContext::clone) else {
            return match self {
                Self::Text(format) => format.format_event(context, writer, event),
                Self::Json(format) => format.format_event(context, writer, event),
            };
        };
        let mut line = String::new();
        match self {
            Self::Text(format) => format.format_event(context, Writer::new(&mut line), event)?,
            Self::Json(format) => format.format_event(context, Writer::new(&mut line), event)?,
        }
        let line = line.trim_end_matches('\n');
        let method = request.method.as_str();
        let path = request.uri.path();
        let id = request.id.as_str();
        match self {
            Self::Text(_) => writeln!(writer, "{line} {}", TextFields { method, path, id }),
            Self::Json(_) => {
                let object = line.strip_suffix('}').unwrap_or(line);
                writeln!(writer, "{object},{}}}", JsonSpan { method, path, id })
            }
        }
    }
}

/// ` method=… path=… request_id=…` (the text form of a request's fields).
pub(super) struct TextFields<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub id: &'a str,
}

impl fmt::Display for TextFields<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "method={} path={} request_id={}",
            self.method, self.path, self.id
        )
    }
}

/// `"span":{…}` (the JSON form of a request's fields).
pub(super) struct JsonSpan<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub id: &'a str,
}

impl fmt::Display for JsonSpan<'_> {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = serde_json::to_string(self.path).map_err(|_| fmt::Error)?;
        write!(
            formatter,
            "\"span\":{{\"method\":\"{}\",\"path\":{path},\"request_id\":\"{}\",\"name\":\"request\"}}",
            self.method, self.id
        )
    }
}
