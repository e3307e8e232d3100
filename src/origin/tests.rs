//! Origin patterns and the credentialed-request rule, case by case.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn origin(url: &str) -> Origin {
    Url::parse(url).unwrap().origin()
}

fn matches(pattern: &str, url: &str) -> bool {
    OriginPattern::parse(pattern).unwrap().matches(&origin(url))
}

#[test]
fn valid_patterns_parse_and_keep_their_text() {
    for text in [
        "http://localhost:3000",
        "https://app.example.com",
        "https://app.example.com/",
        "https://*.example.com",
        "https://*.example.com:8443",
        "https://*.example.com/",
        "HTTPS://App.Example.COM",
        "http://127.0.0.1:8080",
        "http://[::1]:3000",
        "https://bücher.example",
        "https://*.bücher.example",
        "http://*.localhost:5173",
    ] {
        let pattern = OriginPattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(pattern.as_str(), text);
        assert_eq!(pattern.to_string(), text);
    }
}

#[test]
fn invalid_patterns_are_rejected_with_a_reason() {
    for text in [
        "",
        "*",
        "https://*",
        "https://*.",
        "https://*:443",
        "*.example.com",
        "example.com",
        "localhost:3000",
        "//example.com",
        "ftp://example.com",
        "javascript://example.com",
        "ws://example.com",
        "https://example.com/app",
        "https://example.com//",
        "https://example.com/?",
        "https://example.com?x=1",
        "https://example.com#top",
        "https://user@example.com",
        "https://user:pw@example.com",
        "https://@example.com",
        "https://a.*.example.com",
        "https://*.*.example.com",
        "https://*example.com",
        "https://a*.example.com",
        "https://**.example.com",
        "https://*.1.2.3.4",
        "https://*.[::1]",
        "https://*.127.0.0.1",
        "https://",
        "https://:443",
        "https://example.com:99999",
        "https://exa mple.com",
        " https://example.com",
        "https://example.com\n",
        "https:\\\\example.com",
        "https://ex<ample.com",
        "https://a..example.com",
        "https://.example.com",
        "https://*..example.com",
    ] {
        let error = OriginPattern::parse(text).expect_err(text);
        assert!(error.contains("invalid origin pattern"), "{text}: {error}");
    }
}

#[test]
fn exact_patterns_compare_scheme_host_and_port() {
    let table = [
        ("http://localhost:3000", "http://localhost:3000", true),
        (
            "http://localhost:3000",
            "http://localhost:3000/any/path?q",
            true,
        ),
        ("http://localhost:3000", "http://LOCALHOST:3000", true),
        ("http://localhost:3000", "https://localhost:3000", false),
        ("http://localhost:3000", "http://localhost:3001", false),
        ("http://localhost:3000", "http://localhost", false),
        ("http://localhost:3000", "http://localhost.:3000", false),
        ("http://localhost:3000", "http://127.0.0.1:3000", false),
        (
            "https://app.example.com",
            "https://app.example.com:443",
            true,
        ),
        (
            "https://app.example.com:443",
            "https://app.example.com",
            true,
        ),
        ("http://app.example.com:80", "http://app.example.com", true),
        (
            "https://app.example.com",
            "https://app.example.com:8443",
            false,
        ),
        ("https://app.example.com", "http://app.example.com", false),
        ("https://app.example.com", "https://APP.Example.Com", true),
        ("https://app.example.com", "https://app.example.com.", false),
        (
            "https://app.example.com",
            "https://x.app.example.com",
            false,
        ),
        (
            "https://app.example.com",
            "https://app.example.com.evil.com",
            false,
        ),
        (
            "https://app.example.com",
            "https://evilapp.example.com",
            false,
        ),
        ("https://app.example.com", "https://example.com", false),
        (
            "https://bücher.example",
            "https://xn--bcher-kva.example",
            true,
        ),
        (
            "https://xn--bcher-kva.example",
            "https://BÜCHER.example",
            true,
        ),
        ("https://bucher.example", "https://bücher.example", false),
        ("http://127.0.0.1:8080", "http://2130706433:8080", true),
        ("http://127.0.0.1:8080", "http://0x7f.1:8080", true),
        (
            "http://127.0.0.1:8080",
            "http://[::ffff:127.0.0.1]:8080",
            false,
        ),
        ("http://[::1]:3000", "http://[0:0::1]:3000", true),
        ("http://[::1]:3000", "http://127.0.0.1:3000", false),
    ];
    for (pattern, url, expected) in table {
        assert_eq!(matches(pattern, url), expected, "{pattern} vs {url}");
    }
}

#[test]
fn wildcard_patterns_match_whole_labels_only() {
    let table = [
        ("https://*.example.com", "https://a.example.com", true),
        ("https://*.example.com", "https://a.b.example.com", true),
        ("https://*.example.com", "https://A.B.EXAMPLE.com", true),
        ("https://*.example.com", "https://a-b.example.com:443", true),
        ("https://*.example.com", "https://example.com", false),
        ("https://*.example.com", "https://.example.com", false),
        ("https://*.example.com", "https://evilexample.com", false),
        ("https://*.example.com", "https://a.evilexample.com", false),
        (
            "https://*.example.com",
            "https://example.com.evil.com",
            false,
        ),
        (
            "https://*.example.com",
            "https://a.example.com.evil.com",
            false,
        ),
        ("https://*.example.com", "https://a.example.com.", false),
        ("https://*.example.com", "https://a.example.co", false),
        ("https://*.example.com", "https://a.example.comm", false),
        ("https://*.example.com", "http://a.example.com", false),
        ("https://*.example.com", "https://a.example.com:8443", false),
        (
            "https://*.example.com:8443",
            "https://a.example.com:8443",
            true,
        ),
        ("https://*.example.com:8443", "https://a.example.com", false),
        ("https://*.example.com", "https://1.2.3.4", false),
        (
            "https://*.bücher.example",
            "https://a.xn--bcher-kva.example",
            true,
        ),
        (
            "https://*.bücher.example",
            "https://a.bucher.example",
            false,
        ),
        ("https://*.example.com", "https://ä.example.com", true),
        ("http://*.localhost:5173", "http://app.localhost:5173", true),
        ("http://*.localhost:5173", "http://localhost:5173", false),
    ];
    for (pattern, url, expected) in table {
        assert_eq!(matches(pattern, url), expected, "{pattern} vs {url}");
    }
}

#[test]
fn subdomain_check_handles_edges() {
    assert!(is_subdomain("a.example.com", "example.com"));
    assert!(!is_subdomain("a..example.com", "example.com"));
    assert!(!is_subdomain(".a.example.com", "example.com"));
    assert!(!is_subdomain("example.com", "example.com"));
    assert!(!is_subdomain("com", "example.com"));
    assert!(!is_subdomain("", "example.com"));
    assert!(!is_subdomain("xexample.com", "example.com"));
}

#[test]
fn opaque_origins_never_match() {
    let pattern = OriginPattern::parse("https://*.example.com").unwrap();
    assert!(!pattern.matches(&Origin::new_opaque()));
    assert!(!pattern.matches(&origin("data:text/html,hi")));
    assert!(!pattern.matches(&origin("file:///a.example.com")));
}

#[test]
fn policy_allows_any_matching_pattern() {
    let policy = OriginPolicy::new(vec![
        OriginPattern::parse("http://localhost:3000").unwrap(),
        OriginPattern::parse("https://*.example.com").unwrap(),
    ]);
    assert_eq!(policy.patterns().len(), 2);
    assert!(policy.allows(&origin("http://localhost:3000/x")));
    assert!(policy.allows(&origin("https://a.example.com")));
    assert!(!policy.allows(&origin("https://example.com")));
    assert!(!policy.allows(&origin("http://localhost:3001")));
    assert!(OriginPolicy::default().is_empty());
    assert!(!OriginPolicy::default().allows(&origin("http://localhost:3000")));
}

#[test]
fn header_values_are_strict_origins() {
    let policy = OriginPolicy::new(vec![
        OriginPattern::parse("http://localhost:3000").unwrap(),
        OriginPattern::parse("https://*.example.com").unwrap(),
    ]);
    for (value, expected) in [
        ("http://localhost:3000", true),
        ("https://app.example.com", true),
        ("https://app.example.com:443", true),
        ("HTTPS://APP.EXAMPLE.COM", true),
        ("null", false),
        ("", false),
        (" ", false),
        ("http://localhost:3000 ", false),
        ("http://localhost:3000\t", false),
        ("http://localhost:3000/app", false),
        ("http://localhost:3000?x", false),
        ("http://localhost:3000#x", false),
        ("http://user@localhost:3000", false),
        ("http://localhost:3001", false),
        ("https://example.com", false),
        ("https://example.com.evil.com", false),
        ("localhost:3000", false),
        ("//localhost:3000", false),
        ("file://", false),
        ("https://", false),
        ("not a url", false),
    ] {
        assert_eq!(policy.allows_header_value(value), expected, "{value:?}");
    }
}

#[test]
fn credentialed_requests_need_an_allowed_origin_or_none_and_x_requested_with() {
    let own = origin("http://127.0.0.1:8080");
    let cors = OriginPolicy::new(vec![OriginPattern::parse("http://localhost:3000").unwrap()]);
    let check = |value: Option<&str>, xrw: bool| {
        allows_credentialed_request(value.map(str::as_bytes), xrw, &own, &cors)
    };
    assert!(check(None, true));
    assert!(!check(None, false));
    for xrw in [true, false] {
        assert!(check(Some("http://127.0.0.1:8080"), xrw));
        assert!(check(Some("http://localhost:3000"), xrw));
        assert!(!check(Some("https://evil.example"), xrw));
        assert!(!check(Some("null"), xrw));
        assert!(!check(Some(""), xrw));
        assert!(!check(Some("http://127.0.0.1:8080/"), xrw));
        assert!(!check(Some("http://127.0.0.1:8081"), xrw));
        assert!(!check(Some("http://localhost:3000.evil.example"), xrw));
    }
    assert!(!allows_credentialed_request(
        Some(b"http://localhost:3000\xff"),
        true,
        &own,
        &cors
    ));
}
