//! The wall clock, in the units the protocols use (Unix seconds, milliseconds), and the
//! one RFC 3339 rendering of a time that answers show.

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Milliseconds since the Unix epoch (session timers need better than whole seconds:
/// rounding would shorten a short idle timeout by up to a second).
pub fn unix_now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Unix seconds as RFC 3339 UTC (`2026-11-24T12:00:00Z`).
pub fn rfc3339(unix_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(unix_seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_renders_utc_seconds_with_z() {
        assert_eq!(rfc3339(1_795_521_600), "2026-11-24T12:00:00Z");
    }
}
