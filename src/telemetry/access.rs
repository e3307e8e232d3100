//! The access line: one per request, written straight into the log thread's queue in the
//! same shapes as the other lines (see [`super::request`]), in batches per worker
//! ([`Pending`]). Formatting it through `tracing`'s field visitors cost about 3.6 µs a
//! request; this costs a fraction.
//! Without [`write_directly`] (tests' subscriber) the line is an ordinary event.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing_appender::non_blocking::NonBlocking;

use super::ACCESS_TARGET;
use super::request::{JsonSpan, TextFields};
use crate::config::LogFormat;

/// Where access lines go when the binary's subscriber is installed.
static DIRECT: OnceLock<(NonBlocking, LogFormat)> = OnceLock::new();

/// Writes access lines into `writer` (the log thread's queue) as `format`.
pub(super) fn write_directly(writer: NonBlocking, format: LogFormat) {
    let _ = DIRECT.set((writer, format));
}

/// A worker's batch is handed to the log thread once it holds this many bytes.
const FLUSH_AT: usize = 16 * 1024;

thread_local! {
    /// This worker's access lines not yet handed to the log thread.
    static PENDING: RefCell<Pending> = const {
        RefCell::new(Pending { lines: String::new(), writer: None, flush_scheduled: false })
    };
}

/// Access lines of one worker thread, handed to the log thread's queue as one message per
/// batch instead of one per line: a message costs an allocation and, when the log thread
/// sleeps, a wake-up (together about as much as formatting the line). The batch leaves when
/// it reaches [`FLUSH_AT`] or when a task spawned on the worker with the batch's first line
/// runs — after the requests already ready on that worker — so a line waits for no timer.
struct Pending {
    lines: String,
    writer: Option<NonBlocking>,
    flush_scheduled: bool,
}

impl Pending {
    fn flush(&mut self) {
        self.flush_scheduled = false;
        if self.lines.is_empty() {
            return;
        }
        if let Some(writer) = &mut self.writer {
            // A full queue drops the batch (the writer counts it); nothing to do here.
            let _ = writer.write_all(self.lines.as_bytes());
        }
        self.lines.clear();
    }
}

impl Drop for Pending {
    /// A worker thread that ends hands over what it still holds.
    fn drop(&mut self) {
        self.flush();
    }
}

/// Hands the worker's batch over when its task runs or, at shutdown, is dropped.
struct FlushPending;

impl Drop for FlushPending {
    fn drop(&mut self) {
        let _ = PENDING.try_with(|pending| {
            if let Ok(mut pending) = pending.try_borrow_mut() {
                pending.flush();
            }
        });
    }
}

/// One served request.
pub(super) struct AccessLine<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub request_id: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub elapsed: Duration,
}

impl AccessLine<'_> {
    /// Logs the line, unless the filter turns access lines off.
    pub(super) fn log(&self) {
        if !tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
            return;
        }
        let Some((writer, format)) = DIRECT.get() else {
            let duration_ms = self.elapsed.as_secs_f64() * 1000.0;
            tracing::info!(
                target: ACCESS_TARGET,
                route = self.route,
                status = self.status,
                duration_ms,
                "served"
            );
            return;
        };
        PENDING.with_borrow_mut(|pending| {
            let start = pending.lines.len();
            let written = match format {
                LogFormat::Text => self.text(&mut pending.lines),
                LogFormat::Json => self.json(&mut pending.lines),
            };
            if written.is_err() {
                pending.lines.truncate(start);
                return;
            }
            if pending.writer.is_none() {
                pending.writer = Some(writer.clone());
            }
            if pending.lines.len() >= FLUSH_AT {
                pending.flush();
            } else if !pending.flush_scheduled {
                pending.flush_scheduled = true;
                // Runs once the tasks already woken on this worker have had their turn.
                let flush = FlushPending;
                tokio::task::spawn_local(async move { drop(flush) });
            }
        });
    }

    fn text(&self, line: &mut String) -> std::fmt::Result {
        timestamp(line)?;
        writeln!(
            line,
            "  INFO served route={} status={} duration_ms={} {}",
            self.route,
            self.status,
            Millis(self.elapsed),
            TextFields {
                method: self.method,
                path: self.path,
                id: self.request_id
            }
        )
    }

    fn json(&self, line: &mut String) -> std::fmt::Result {
        line.push_str("{\"timestamp\":\"");
        timestamp(line)?;
        let route = serde_json::to_string(self.route).map_err(|_| std::fmt::Error)?;
        writeln!(
            line,
            "\",\"level\":\"INFO\",\"message\":\"served\",\"route\":{route},\"status\":{},\"duration_ms\":{},{}}}",
            self.status,
            Millis(self.elapsed),
            JsonSpan {
                method: self.method,
                path: self.path,
                id: self.request_id
            }
        )
    }
}

/// A duration in milliseconds with three decimals (`1.500`), from whole microseconds:
/// integer formatting, which costs a fraction of formatting a float.
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let micros = self.0.as_micros();
        write!(formatter, "{}.{:03}", micros / 1000, micros % 1000)
    }
}

/// `2026-11-29T16:09:38.123456Z`, as `tracing-subscriber` writes it; the part up to the
/// second is formatted once a second per thread.
fn timestamp(line: &mut String) -> std::fmt::Result {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != now.as_secs() {
            *second = now.as_secs();
            text.clear();
            let seconds = i64::try_from(now.as_secs()).unwrap_or_default();
            if let Some(time) = chrono::DateTime::from_timestamp(seconds, 0) {
                write!(text, "{}", time.format("%Y-%m-%dT%H:%M:%S"))?;
            }
        }
        write!(line, "{text}.{:06}Z", now.subsec_micros())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn line() -> AccessLine<'static> {
        AccessLine {
            method: "GET",
            path: "/a\"b",
            request_id: "0123",
            route: "/a",
            status: 200,
            elapsed: Duration::from_micros(1_500),
        }
    }

    #[test]
    fn json_access_lines_parse_and_carry_every_field() {
        let mut text = String::new();
        line().json(&mut text).unwrap();
        assert!(text.ends_with('\n'));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["message"], "served");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["status"], 200);
        assert_eq!(value["duration_ms"], 1.5);
        assert_eq!(value["route"], "/a");
        assert_eq!(value["span"]["path"], "/a\"b");
        assert_eq!(value["span"]["method"], "GET");
        assert_eq!(value["span"]["request_id"], "0123");
        let stamp = value["timestamp"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "{stamp}"
        );
        assert_eq!(stamp.len(), "2026-11-29T16:09:38.123456Z".len());
    }

    #[test]
    fn durations_are_written_in_milliseconds_with_three_decimals() {
        for (micros, text) in [
            (0, "0.000"),
            (7, "0.007"),
            (1_500, "1.500"),
            (61_234_567, "61234.567"),
        ] {
            assert_eq!(Millis(Duration::from_micros(micros)).to_string(), text);
        }
    }

    #[test]
    fn text_access_lines_read_like_the_other_lines() {
        let mut text = String::new();
        line().text(&mut text).unwrap();
        let (stamp, rest) = text.split_once("  ").unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(stamp).is_ok(),
            "{stamp}"
        );
        assert_eq!(
            rest,
            "INFO served route=/a status=200 duration_ms=1.500 method=GET path=/a\"b request_id=0123\n"
        );
    }
}
