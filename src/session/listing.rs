//! What a session list shows (SPEC 11) and how it is kept: one short entry per session
//! in a hash beside the per-subject index (`<last seen> <created> <browser label>`, Unix
//! seconds (last seen) and milliseconds (created, so two logins in one second still list
//! newest first) in base 36 and at most [`MAX_LABEL`] characters; every byte is Redis memory
//! per session), never inside the sealed record, which
//! other sessions cannot open. It holds no token, no claim and no address; its id is
//! derived from the store name, so it opens nothing.

use crate::crypto;

/// Longest browser label kept (the entry stays within Redis's compact hash encoding).
pub const MAX_LABEL: usize = 40;

/// The label of a `User-Agent` nobody could read.
const UNKNOWN: &str = "Unknown browser";

/// One session as its owner (or an operator) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSession {
    /// Opaque and stable: derived from the store name, opens nothing.
    pub id: String,
    /// Whether this is the session of the request.
    pub current: bool,
    /// The provider's id.
    pub provider: String,
    /// Unix seconds of login.
    pub created_at: i64,
    /// Unix seconds of the last idle-timer touch, rounded down to the minute.
    pub last_seen_at: i64,
    /// Unix seconds when the session ends if it stays idle.
    pub expires_at: i64,
    /// "Firefox 133 on Linux".
    pub browser: String,
}

/// The short label of a `User-Agent`: browser family, major version and OS, parsed by
/// `woothee`; printable ASCII only, at most [`MAX_LABEL`] characters.
pub fn browser_label(user_agent: Option<&str>) -> String {
    let parsed = user_agent.and_then(|agent| woothee::parser::Parser::new().parse(agent));
    let Some(parsed) = parsed.filter(|parsed| parsed.name != woothee::woothee::VALUE_UNKNOWN)
    else {
        return UNKNOWN.to_owned();
    };
    let major = parsed.version.split('.').next().unwrap_or_default();
    let mut label = parsed.name.to_owned();
    if !major.is_empty() && major != woothee::woothee::VALUE_UNKNOWN {
        label.push(' ');
        label.push_str(major);
    }
    if parsed.os != woothee::woothee::VALUE_UNKNOWN {
        label.push_str(" on ");
        label.push_str(parsed.os);
    }
    label
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_LABEL)
        .collect()
}

/// The listing id of the session stored under `name` (see [`super::SessionTicket::storage_name`]).
pub fn listing_id(name: &str) -> String {
    crypto::derive_name("session-listing-id", name.as_bytes())
}

/// The stored entry: last seen (Unix seconds), created (Unix milliseconds) and the label.
pub fn encode_entry(last_seen_s: i64, created_ms: i64, label: &str) -> Vec<u8> {
    format!("{} {} {label}", base36(last_seen_s), base36(created_ms)).into_bytes()
}

/// The first word of an entry: the last-seen time.
pub fn encode_last_seen(last_seen_s: i64) -> Vec<u8> {
    base36(last_seen_s).into_bytes()
}

/// `value` (not negative) in base 36, lower case: 6 characters for today's Unix times.
fn base36(value: i64) -> String {
    let mut rest = u64::try_from(value).unwrap_or(0);
    let mut digits = Vec::new();
    loop {
        let digit = u32::try_from(rest % 36).unwrap_or(0);
        digits.push(char::from_digit(digit, 36).unwrap_or('0'));
        rest /= 36;
        if rest == 0 {
            break;
        }
    }
    digits.iter().rev().collect()
}

/// The parts of a stored entry (last seen in seconds, created in milliseconds, label);
/// `None` for one this version cannot read.
pub fn decode_entry(entry: &[u8]) -> Option<(i64, i64, String)> {
    let text = std::str::from_utf8(entry).ok()?;
    let mut parts = text.splitn(3, ' ');
    let last_seen = i64::from_str_radix(parts.next()?, 36).ok()?;
    let created = i64::from_str_radix(parts.next()?, 36).ok()?;
    let label = parts.next().unwrap_or(UNKNOWN).to_owned();
    Some((last_seen, created, label))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn labels_name_family_major_and_os_only() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(browser_label(Some(firefox)), "Firefox 133 on Linux");
        let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.86 Safari/537.36";
        assert_eq!(browser_label(Some(chrome)), "Chrome 131 on Windows 10");
        assert_eq!(browser_label(None), "Unknown browser");
        assert_eq!(browser_label(Some("not a browser")), "Unknown browser");
        assert!(browser_label(Some(&"x".repeat(5000))).len() <= MAX_LABEL);
    }

    #[test]
    fn an_entry_survives_a_touch_of_its_first_word() {
        let entry = encode_entry(1_800_000_000, 1_799_999_000_123, "Firefox 133 on Linux");
        let touched = crate::store::with_first_word(&entry, &encode_last_seen(1_800_000_600));
        assert_eq!(
            decode_entry(&touched).unwrap(),
            (
                1_800_000_600,
                1_799_999_000_123,
                "Firefox 133 on Linux".to_owned()
            )
        );
        assert!(entry.len() <= 17 + MAX_LABEL, "{}", entry.len());
        assert_eq!(base36(0), "0");
        assert_eq!(base36(1_800_000_000), "tro8w0");
    }
}
