//! The API proxy's configuration (SPEC 3 and 9): the `[proxy]` section (`timeout`,
//! `max_body` as a byte size) and the checks on the targets' `proxy_path` values —
//! each starts with `/`, and none equals, contains or lies under another one or one of
//! the service's own routes.

use std::time::Duration;

use serde::{Serialize, Serializer};

use super::checks::positive;
use super::take::{Problems, Section};

/// The service's own routes (relative to `base_path`); a `proxy_path` may not overlap them.
pub const SERVICE_ROUTES: [&str; 14] = [
    "/login",
    "/callback",
    "/logout",
    "/logout/callback",
    "/backchannel-logout",
    "/userinfo",
    "/token-targets",
    "/token",
    "/.well-known/jwks.json",
    "/metadata",
    "/openapi.json",
    "/health/live",
    "/health/ready",
    "/metrics",
];

/// `[proxy]`: the API proxy (SPEC 9).
#[derive(Debug, Clone, Serialize)]
pub struct ProxyConfig {
    /// No response headers from the target within this after the request body is sent
    /// (or no body progress for this long) → 502 `UPSTREAM_UNAVAILABLE`.
    #[serde(serialize_with = "super::duration::serialize")]
    pub timeout: Duration,
    /// Largest proxied request body, in bytes.
    #[serde(serialize_with = "serialize_bytes")]
    pub max_body: u64,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_body: 10_000_000,
        }
    }
}

/// Reads `[proxy]`.
pub(super) fn proxy(mut s: Section, p: &mut Problems) -> ProxyConfig {
    let d = ProxyConfig::default();
    let timeout = positive(p, &mut s, "timeout").unwrap_or(d.timeout);
    let max_body = s
        .string(p, "max_body")
        .and_then(|text| match parse_byte_size(&text) {
            Ok(0) => {
                p.push(s.path_of("max_body"), "must be larger than 0");
                None
            }
            Ok(bytes) => Some(bytes),
            Err(message) => {
                p.push(s.path_of("max_body"), message);
                None
            }
        })
        .unwrap_or(d.max_body);
    s.finish(p);
    ProxyConfig { timeout, max_body }
}

/// A byte size with a unit (`"512B"`, `"64KB"`, `"10MB"`, `"1GB"`; also `KiB`…): a bare
/// number is refused, as with durations.
pub(crate) fn parse_byte_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if !trimmed.ends_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!(
            "invalid byte size \"{text}\": a unit is needed (B, KB, MB, GB), e.g. \"10MB\""
        ));
    }
    trimmed
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|error| {
            format!("invalid byte size \"{text}\": {error}; write a number with a unit (B, KB, MB, GB), e.g. \"10MB\"")
        })
}

/// Writes a byte size back in the largest decimal unit that keeps it exact.
pub fn format_byte_size(bytes: u64) -> String {
    for (unit, size) in [("GB", 1_000_000_000), ("MB", 1_000_000), ("KB", 1_000)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

fn serialize_bytes<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_byte_size(*bytes))
}

/// Checks the form of one `proxy_path`: `/seg/seg`, no trailing `/`, no empty, `.` or `..`
/// segment, only unreserved characters (so it routes and compares as written).
pub(super) fn check_proxy_path(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("\"{path}\" must start with '/'"));
    }
    if path == "/" {
        return Err(
            "\"/\" would cover the whole service; name a path such as \"/api/maps\"".into(),
        );
    }
    let segments_ok = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .all(|segment| !segment.is_empty() && segment != "." && segment != "..");
    let characters_ok = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c));
    if !segments_ok || !characters_ok {
        return Err(format!(
            "\"{path}\" must be /segment/segment… of letters, digits and -._~ (no empty, \".\" or \"..\" segment, no trailing '/')"
        ));
    }
    Ok(())
}

/// Whether two paths overlap: equal, or one lies under the other by whole segments.
pub(super) fn overlaps(a: &str, b: &str) -> bool {
    let under = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    under(a, b) || under(b, a)
}

/// The cross-checks over every `proxy_path` (each given with its config key).
pub(super) fn check_proxy_paths(paths: &[(String, String)], p: &mut Problems) {
    for (i, (path, key)) in paths.iter().enumerate() {
        if let Some(route) = SERVICE_ROUTES.iter().find(|route| overlaps(path, route)) {
            p.push(
                key.clone(),
                format!("\"{path}\" overlaps the service's own route {route}"),
            );
        }
        if let Some((other, other_key)) = paths
            .iter()
            .take(i)
            .find(|(other, _)| overlaps(path, other))
        {
            let how = if other == path {
                "duplicates"
            } else {
                "overlaps"
            };
            p.push(
                key.clone(),
                format!("\"{path}\" {how} \"{other}\" ({other_key})"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn byte_sizes_with_units_parse_and_round_trip() {
        assert_eq!(parse_byte_size("10MB").unwrap(), 10_000_000);
        assert_eq!(parse_byte_size("200MB").unwrap(), 200_000_000);
        assert_eq!(parse_byte_size("64KB").unwrap(), 64_000);
        assert_eq!(parse_byte_size("1GB").unwrap(), 1_000_000_000);
        assert_eq!(parse_byte_size("512B").unwrap(), 512);
        assert_eq!(parse_byte_size("1KiB").unwrap(), 1024);
        for text in ["10MB", "1GB", "64KB", "1536B"] {
            assert_eq!(format_byte_size(parse_byte_size(text).unwrap()), text);
        }
    }

    #[test]
    fn byte_sizes_without_unit_or_nonsense_are_refused() {
        for bad in ["10", "", "big", "-5MB", "MB"] {
            assert!(parse_byte_size(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn proxy_path_form() {
        for good in ["/api", "/api/maps", "/a-b_c.d~e"] {
            assert!(check_proxy_path(good).is_ok(), "{good}");
        }
        for bad in [
            "api",
            "/",
            "/api/",
            "//api",
            "/api//x",
            "/api/../x",
            "/./x",
            "/a b",
            "/a%2F",
            "/a?b",
        ] {
            assert!(check_proxy_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overlap_is_by_whole_segments() {
        assert!(overlaps("/api", "/api"));
        assert!(overlaps("/api", "/api/maps"));
        assert!(overlaps("/health", "/health/live"));
        assert!(!overlaps("/api", "/apix"));
        assert!(!overlaps("/tokens", "/token"));
    }
}
