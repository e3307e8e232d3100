//! SPEC 6 target matching: the requested URL is parsed by WHATWG rules (host lower-cased,
//! default port dropped, dot segments resolved), then scheme, host and port must be equal
//! and the configured path must be a whole-segment prefix of the requested one.

use url::Url;

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

/// Parses a requested target: an absolute http(s) URL without user info.
pub fn parse_requested(raw: &str) -> Option<Url> {
    let url = Url::parse(raw).ok()?;
    let web = matches!(url.scheme(), "http" | "https");
    (web && url.username().is_empty() && url.password().is_none() && url.host().is_some())
        .then_some(url)
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
        assert!(parse_requested("/relative").is_none());
        assert!(parse_requested("javascript:alert(1)").is_none());
        assert!(parse_requested("https://user@api.example.com/").is_none());
        assert!(parse_requested("https://api.example.com/x").is_some());
    }
}
