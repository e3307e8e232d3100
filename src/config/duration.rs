//! Durations in configuration: text with a unit (`"500ms"`, `"30m"`, `"12h"`,
//! `"1d"`), parsed with humantime and written back in the same units.

use std::time::Duration;

use serde::Serializer;

/// Parses a duration with a unit. A bare number is refused: `"30"` could mean anything.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!(
            "invalid duration \"{text}\": a unit is needed (ms, s, m, h, d), e.g. \"30m\""
        ));
    }
    humantime::parse_duration(trimmed).map_err(|e| {
        format!("invalid duration \"{text}\": {e}; write a number with a unit (ms, s, m, h, d), e.g. \"30m\"")
    })
}

/// Writes a duration as text that the config parser (humantime) reads back, e.g. `"1d 2h"`, `"30m"`, `"500ms"`.
pub fn format(d: Duration) -> String {
    const UNITS: [(&str, u128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let mut rest = d.as_nanos();
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut parts = Vec::new();
    for (unit, nanos) in UNITS {
        let n = rest / nanos;
        if n > 0 {
            parts.push(format!("{n}{unit}"));
            rest %= nanos;
        }
    }
    parts.join(" ")
}

/// `serialize_with` helper: a duration as [`format`] text.
pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn units_from_the_spec_parse() {
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(parse("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse("1d").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse("1h 30m").unwrap(), Duration::from_secs(5400));
    }

    #[test]
    fn bare_numbers_and_nonsense_are_refused() {
        for bad in ["30", "1.5", "", "soon", "5x", "-5m"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formatting_round_trips() {
        for text in ["500ms", "30m", "12h", "1d", "1d 2h 3m 4s 5ms", "0s"] {
            let d = parse(text).unwrap();
            assert_eq!(format(d), text);
            assert_eq!(parse(&format(d)).unwrap(), d);
        }
    }
}
