//! SPEC 6 target matching: the requested URL is parsed by WHATWG rules (host lower-cased,
//! default port dropped, dot segments resolved), then scheme, host and port must be equal
//! and the configured path must be a whole-segment prefix of the requested one.

use url::Url;

use crate::error::ApiError;
use crate::redirect::{UnsafeUrlText, check_url_text, scheme_of};

/// A configured target URL, ready for matching.
#[derive(Debug, Clone)]
pub struct TargetPattern {
    url: Url,
    /// The path without its trailing slash ("" for the root).
    path: String,
}

impl TargetPattern {
    /// From the configured URL.
    pub fn new(url: &Url) -> Self {
        Self {
            url: url.clone(),
            path: url.path().trim_end_matches('/').to_owned(),
        }
    }

    /// How specific the pattern is (longer paths win).
    pub fn specificity(&self) -> usize {
        self.path.len()
    }

    /// Whether `requested` falls under this target.
    pub fn matches(&self, requested: &Url) -> bool {
        if requested.scheme() != self.url.scheme()
            || requested.host_str() != self.url.host_str()
            || requested.port_or_known_default() != self.url.port_or_known_default()
        {
            return false;
        }
        let path = requested.path();
        match path.strip_prefix(self.path.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// Why a requested target was refused before any configured target was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestedTargetRefused {
    /// Not an absolute `http(s)` URL, or one the WHATWG parser refuses (400).
    #[error("it is not an absolute http(s) URL")]
    Malformed,
    /// A form parsers disagree on (SPEC 4, shared with `returnURL`): no target can match (403).
    #[error("it contains {0}")]
    Unsafe(UnsafeUrlText),
    /// An encoded slash (`%2F`) in the path, which some servers decode into a separator (403).
    #[error("its path contains an encoded slash")]
    EncodedSlash,
}

impl From<RequestedTargetRefused> for ApiError {
    fn from(refused: RequestedTargetRefused) -> Self {
        match refused {
            RequestedTargetRefused::Malformed => {
                ApiError::InvalidParameter("'target' must be an absolute http(s) URL".to_owned())
            }
            RequestedTargetRefused::Unsafe(_) | RequestedTargetRefused::EncodedSlash => {
                ApiError::TargetNotAllowed
            }
        }
    }
}

/// Parses a requested target (SPEC 6): an absolute http(s) URL, refusing first what
/// SPEC 4 refuses in a `returnURL` before parsing (backslashes, controls, spaces, user
/// info, raw or encoded), so that the host we match is the host every client sees.
pub fn parse_requested(raw: &str) -> Result<Url, RequestedTargetRefused> {
    let web_scheme = scheme_of(raw).is_some_and(|scheme| {
        scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
    });
    if !web_scheme {
        return Err(RequestedTargetRefused::Malformed);
    }
    check_url_text(raw).map_err(RequestedTargetRefused::Unsafe)?;
    let url = Url::parse(raw).map_err(|_| RequestedTargetRefused::Malformed)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(RequestedTargetRefused::Unsafe(UnsafeUrlText::UserInfo));
    }
    if url.host().is_none() {
        return Err(RequestedTargetRefused::Malformed);
    }
    if url.path().to_ascii_lowercase().contains("%2f") {
        return Err(RequestedTargetRefused::EncodedSlash);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pattern(url: &str) -> TargetPattern {
        TargetPattern::new(&Url::parse(url).unwrap())
    }

    fn matches(pattern_url: &str, requested: &str) -> bool {
        pattern(pattern_url).matches(&parse_requested(requested).unwrap())
    }

    fn refusal(requested: &str) -> RequestedTargetRefused {
        parse_requested(requested).unwrap_err()
    }

    #[test]
    fn paths_match_by_whole_segments() {
        let api = "https://api.example.com/api/";
        assert!(matches(api, "https://api.example.com/api/x"));
        assert!(matches(api, "https://api.example.com/api"));
        assert!(matches(api, "https://API.example.com:443/api/x/../y"));
        assert!(!matches(api, "https://api.example.com/apix"));
        assert!(!matches(api, "https://api.example.com.evil.com/api/"));
        assert!(!matches(api, "https://api.example.comx/api/"));
        assert!(!matches(api, "http://api.example.com/api/"));
        assert!(!matches(api, "https://api.example.com:8443/api/"));
        assert!(!matches(api, "https://api.example.com/api/../other"));
        assert!(matches(
            "https://api.example.com/",
            "https://api.example.com/anything"
        ));
    }

    #[test]
    fn requested_targets_must_be_absolute_web_urls() {
        use RequestedTargetRefused::Malformed;
        for raw in [
            "/relative",
            "//api.example.com/x",
            "javascript:alert(1)",
            "ftp://api.example.com/",
            "not a url",
            "https://",
            "https://exa<mple.com/",
            "https://api.example.com:99999/",
        ] {
            assert_eq!(refusal(raw), Malformed, "{raw:?}");
        }
        assert!(parse_requested("https://api.example.com/x").is_ok());
        assert!(parse_requested("HTTPS://API.example.com/x?q=1").is_ok());
    }

    #[test]
    fn what_return_urls_refuse_before_parsing_no_target_matches() {
        use RequestedTargetRefused::{EncodedSlash, Unsafe};
        use UnsafeUrlText::*;
        for (raw, why) in [
            ("https://api.example.com@evil.com/maps/", Unsafe(UserInfo)),
            ("https://user@api.example.com/", Unsafe(UserInfo)),
            ("https://user:pw@api.example.com/", Unsafe(UserInfo)),
            ("https://@api.example.com/", Unsafe(UserInfo)),
            ("https:api.example.com@evil.com/", Unsafe(UserInfo)),
            ("https://api.example.com\\@evil.com/x", Unsafe(Backslash)),
            ("https:\\\\evil.com/", Unsafe(Backslash)),
            ("https://api.example.com/\tx", Unsafe(ControlOrSpace)),
            (
                "https://api.example.com\n.evil.com/",
                Unsafe(ControlOrSpace),
            ),
            ("https://api.example.com/ x", Unsafe(ControlOrSpace)),
            (
                "https://api.example.com%09.evil.com/",
                Unsafe(EncodedControlOrSpace),
            ),
            (
                "https://api.example.com/%5c..%5cx",
                Unsafe(EncodedControlOrSpace),
            ),
            ("https://api.example.com/%00", Unsafe(EncodedControlOrSpace)),
            (
                "https://api.example.com/api/%2F..%2F..%2Fadmin",
                EncodedSlash,
            ),
            ("https://api.example.com/api/%2f", EncodedSlash),
        ] {
            assert_eq!(refusal(raw), why, "{raw:?}");
        }
        // Neither `@` after the authority nor an encoded slash in the query is user info or a path.
        assert!(parse_requested("https://api.example.com/api/@evil.com").is_ok());
        assert!(parse_requested("https://api.example.com/api/x?next=a%2Fb").is_ok());
    }

    #[test]
    fn refusals_map_to_the_spec_codes() {
        assert_eq!(
            ApiError::from(RequestedTargetRefused::Malformed).code(),
            "INVALID_PARAMETER"
        );
        assert_eq!(
            ApiError::from(RequestedTargetRefused::EncodedSlash).code(),
            "TARGET_NOT_ALLOWED"
        );
        assert_eq!(
            ApiError::from(RequestedTargetRefused::Unsafe(UnsafeUrlText::UserInfo)).code(),
            "TARGET_NOT_ALLOWED"
        );
    }

    #[test]
    fn matched_targets_keep_the_configured_scheme_host_port_and_path() {
        use proptest::prelude::*;
        let patterns: Vec<TargetPattern> = [
            "https://api.example.com/api/",
            "https://api.example.com/",
            "http://127.0.0.1:8080/maps",
            "https://xn--bcher-kva.example/b%C3%BC/",
        ]
        .iter()
        .map(|url| pattern(url))
        .collect();
        let piece = prop_oneof![
            Just("https://"),
            Just("http://"),
            Just("api.example.com"),
            Just("API.EXAMPLE.COM"),
            Just("127.0.0.1:8080"),
            Just("bücher.example"),
            Just("evil.com"),
            Just(".evil.com"),
            Just("@"),
            Just(":443"),
            Just(":8080"),
            Just("/api"),
            Just("/api/"),
            Just("/maps"),
            Just("/bü/"),
            Just("/.."),
            Just("/%2e%2e"),
            Just("%2F"),
            Just("\\"),
            Just("?x=/api/"),
            Just("#/api/"),
            Just("x"),
        ]
        .prop_map(str::to_owned);
        let any_piece = prop_oneof![6 => piece, 1 => any::<String>()];
        let raw = proptest::collection::vec(any_piece, 1..8).prop_map(|pieces| pieces.concat());
        proptest!(proptest::test_runner::Config::with_cases(4_000), |(raw in raw)| {
            let Ok(requested) = parse_requested(&raw) else { return Ok(()); };
            for pattern in &patterns {
                if !pattern.matches(&requested) {
                    continue;
                }
                // Another client re-reading what we matched sees the same place.
                let again = Url::parse(requested.as_str()).unwrap();
                prop_assert_eq!(again.scheme(), pattern.url.scheme(), "{:?}", raw);
                prop_assert_eq!(again.host_str(), pattern.url.host_str(), "{:?}", raw);
                prop_assert_eq!(again.port_or_known_default(), pattern.url.port_or_known_default());
                prop_assert!(again.username().is_empty() && again.password().is_none());
                let rest = again.path().strip_prefix(pattern.path.as_str());
                prop_assert!(
                    rest.is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
                    "{raw:?} -> {again} under {}", pattern.url
                );
                prop_assert!(!again.path().split('/').any(|segment| segment == ".."));
            }
        });
    }
}
