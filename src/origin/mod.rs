//! Origin patterns (`https://app.example.com`, `https://*.example.com:8443`) and
//! the policy built from a list of them. SPEC section 4: the same matching decides
//! which `returnURL` origins are allowed and which origins CORS trusts with credentials.

use std::fmt;

use url::{Host, Origin, Url};

/// One configured origin: exact (`http://localhost:3000`) or a subdomain
/// wildcard (`https://*.example.com`). Scheme and port always have to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    text: String,
    scheme: String,
    host: HostMatch,
    port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    /// Exactly this host (domain in lowercase punycode, or an IP address).
    Exact(Host<String>),
    /// One or more whole labels before `.` + this domain (never the domain itself).
    Subdomains(String),
}

impl OriginPattern {
    /// Parses `"http://localhost:3000"`, `"https://app.example.com"` or
    /// `"https://*.example.com"` (each optionally with a port and a trailing `/`).
    ///
    /// Hosts are normalised the way browsers do it (lowercase, punycode,
    /// default port). `Err` is a human message saying why the pattern is invalid.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        let invalid = |why: &str| format!("invalid origin pattern {pattern:?}: {why}");
        if pattern.is_empty() {
            return Err(invalid("it is empty"));
        }
        if pattern
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return Err(invalid(
                "whitespace, control characters and backslashes are not allowed",
            ));
        }
        let Some((scheme, rest)) = pattern.split_once("://") else {
            return Err(invalid("it must start with http:// or https://"));
        };
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(invalid("the scheme must be http or https"));
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if !tail.is_empty() && tail != "/" {
            return Err(invalid("an origin has no path, query or fragment"));
        }
        if authority.contains('@') {
            return Err(invalid("user info (`user@`) is not allowed"));
        }
        let (wildcard, host_port) = match authority.strip_prefix("*.") {
            Some(after) => (true, after),
            None => (false, authority),
        };
        if host_port.contains('*') {
            return Err(invalid(
                "`*` is only allowed as the whole leftmost label, as in https://*.example.com",
            ));
        }
        if host_port.is_empty() || host_port.starts_with(':') {
            return Err(invalid("it has no host"));
        }
        let url = Url::parse(&format!("{scheme}://{host_port}/"))
            .map_err(|error| invalid(&format!("not a valid origin ({error})")))?;
        // Re-check what the WHATWG parser made of it, so nothing but an origin slips through.
        if !url.username().is_empty()
            || url.password().is_some()
            || url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
        {
            return Err(invalid("it must be an origin only"));
        }
        let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
            return Err(invalid("it has no host"));
        };
        if let Host::Domain(domain) = host {
            let labels = domain.strip_suffix('.').unwrap_or(domain);
            if labels.split('.').any(str::is_empty) {
                return Err(invalid("the host has an empty label"));
            }
        }
        let host = if wildcard {
            match host {
                Host::Domain(domain) => HostMatch::Subdomains(domain.to_owned()),
                Host::Ipv4(_) | Host::Ipv6(_) => {
                    return Err(invalid("a wildcard needs a domain name, not an IP address"));
                }
            }
        } else {
            HostMatch::Exact(host.to_owned())
        };
        Ok(Self {
            text: pattern.to_owned(),
            scheme,
            host,
            port,
        })
    }

    /// Whether `origin` (scheme, host, port) matches this pattern. Opaque origins never match.
    pub fn matches(&self, origin: &Origin) -> bool {
        let Origin::Tuple(scheme, host, port) = origin else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case(&self.scheme) || *port != self.port {
            return false;
        }
        match (&self.host, host) {
            (HostMatch::Exact(Host::Domain(want)), Host::Domain(got)) => {
                want.eq_ignore_ascii_case(got)
            }
            (HostMatch::Exact(want), got) => want == got,
            (HostMatch::Subdomains(suffix), Host::Domain(got)) => is_subdomain(got, suffix),
            (HostMatch::Subdomains(_), Host::Ipv4(_) | Host::Ipv6(_)) => false,
        }
    }

    /// The pattern text as configured (for printing the configuration).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for OriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `host` is `<one or more non-empty labels>.<suffix>`, compared ASCII case-insensitively.
/// Look-alikes (`evilexample.com`, `example.com.evil.com`) and `example.com` itself are not.
fn is_subdomain(host: &str, suffix: &str) -> bool {
    let (host, suffix) = (host.as_bytes(), suffix.as_bytes());
    let Some(split) = host.len().checked_sub(suffix.len() + 1) else {
        return false;
    };
    let (labels, dot_suffix) = host.split_at(split);
    let Some((b'.', tail)) = dot_suffix.split_first() else {
        return false;
    };
    tail.eq_ignore_ascii_case(suffix)
        && !labels.is_empty()
        && labels.split(|&b| b == b'.').all(|label| !label.is_empty())
}

/// A list of origin patterns; an origin is allowed when any pattern matches it.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    patterns: Vec<OriginPattern>,
}

impl OriginPolicy {
    /// A policy allowing exactly the origins the patterns match (none when empty).
    pub fn new(patterns: Vec<OriginPattern>) -> Self {
        Self { patterns }
    }

    /// The configured patterns.
    pub fn patterns(&self) -> &[OriginPattern] {
        &self.patterns
    }

    /// Whether no origin at all is allowed.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether some pattern matches `origin`.
    pub fn allows(&self, origin: &Origin) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(origin))
    }

    /// For an HTTP `Origin` request header value (`https://app.example.com`):
    /// `"null"`, empty, unparsable or anything more than an origin gives `false`.
    pub fn allows_header_value(&self, value: &str) -> bool {
        if value.is_empty()
            || value
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
        {
            return false;
        }
        let Ok(url) = Url::parse(value) else {
            return false;
        };
        let origin_only = matches!(url.scheme(), "http" | "https")
            && url.username().is_empty()
            && url.password().is_none()
            && url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none();
        origin_only && self.allows(&url.origin())
    }
}

/// Whether a cookie-authenticated browser request may act (SPEC 2 `POST /token`, SPEC 9
/// proxy): an `Origin` header, when present, must be `own` or allowed by `allowed`
/// (`[cors]`); only when it is absent does `X-Requested-With` (any value, which a
/// cross-site form cannot send without a CORS preflight) stand in for it.
/// `origin` is the raw header value; bytes that are not visible ASCII never match.
pub fn allows_credentialed_request(
    origin: Option<&[u8]>,
    has_x_requested_with: bool,
    own: &Origin,
    allowed: &OriginPolicy,
) -> bool {
    match origin {
        None => has_x_requested_with,
        Some(value) => std::str::from_utf8(value).is_ok_and(|value| {
            value == own.ascii_serialization() || allowed.allows_header_value(value)
        }),
    }
}

#[cfg(test)]
mod tests;
