//! The SPEC section 4 cases for `returnURL`, accepted and refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::origin::OriginPattern;

fn policy(allow_relative: bool, patterns: &[&str]) -> RedirectPolicy {
    RedirectPolicy {
        public_url: Url::parse("http://127.0.0.1:8080").unwrap(),
        allow_relative,
        allowed_origins: OriginPolicy::new(
            patterns
                .iter()
                .map(|p| OriginPattern::parse(p).unwrap())
                .collect(),
        ),
    }
}

fn default_policy() -> RedirectPolicy {
    policy(
        true,
        &[
            "https://www.whitelisteddomain.tld",
            "http://localhost:3000",
            "https://*.example.com",
        ],
    )
}

#[track_caller]
fn accepted(raw: &str, policy: &RedirectPolicy) -> String {
    match ReturnUrl::parse(raw, policy) {
        Ok(url) => url.as_str().to_owned(),
        Err(refused) => panic!("{raw:?} refused: {refused}"),
    }
}

#[track_caller]
fn refused(raw: &str, policy: &RedirectPolicy) -> RedirectRefused {
    match ReturnUrl::parse(raw, policy) {
        Ok(url) => panic!("{raw:?} accepted as {url}"),
        Err(refused) => refused,
    }
}

#[test]
fn accepts_own_and_allowed_origins_and_serializes_absolutely() {
    let policy = default_policy();
    for (raw, location) in [
        ("/app", "http://127.0.0.1:8080/app"),
        ("/", "http://127.0.0.1:8080/"),
        ("app/page?x=1", "http://127.0.0.1:8080/app/page?x=1"),
        ("?x=1", "http://127.0.0.1:8080/?x=1"),
        ("#frag", "http://127.0.0.1:8080/#frag"),
        ("/a/../b/./c", "http://127.0.0.1:8080/b/c"),
        ("/%2e%2e/x", "http://127.0.0.1:8080/x"),
        (
            "/a?next=https://evil.com",
            "http://127.0.0.1:8080/a?next=https://evil.com",
        ),
        ("/a@evil.com", "http://127.0.0.1:8080/a@evil.com"),
        ("/%2f%2fevil.com", "http://127.0.0.1:8080/%2f%2fevil.com"),
        (
            "/%252F%252Fevil.com",
            "http://127.0.0.1:8080/%252F%252Fevil.com",
        ),
        ("/café", "http://127.0.0.1:8080/caf%C3%A9"),
        ("/a\"<b>", "http://127.0.0.1:8080/a%22%3Cb%3E"),
        (".evil.com", "http://127.0.0.1:8080/.evil.com"),
        ("evil.com", "http://127.0.0.1:8080/evil.com"),
        ("http://127.0.0.1:8080/app", "http://127.0.0.1:8080/app"),
        ("HTTP://127.0.0.1:8080/app", "http://127.0.0.1:8080/app"),
        ("http://2130706433:8080/app", "http://127.0.0.1:8080/app"),
        ("http://0x7f.0.0.1:8080/", "http://127.0.0.1:8080/"),
        ("http://127.1:8080/", "http://127.0.0.1:8080/"),
        // Same scheme as the base: WHATWG treats these as relative to it.
        ("http:evil.com", "http://127.0.0.1:8080/evil.com"),
        ("http:/evil.com", "http://127.0.0.1:8080/evil.com"),
        (
            "https://www.whitelisteddomain.tld",
            "https://www.whitelisteddomain.tld/",
        ),
        (
            "https://www.whitelisteddomain.tld:443/x",
            "https://www.whitelisteddomain.tld/x",
        ),
        (
            "https://WWW.WhitelistedDomain.TLD/x",
            "https://www.whitelisteddomain.tld/x",
        ),
        (
            "https://www.whitelisteddomain.tld/@evil.com",
            "https://www.whitelisteddomain.tld/@evil.com",
        ),
        (
            "https://www.whitelisteddomain.tld#@evil.com",
            "https://www.whitelisteddomain.tld/#@evil.com",
        ),
        (
            "https://www.whitelisteddomain.tld?@evil.com",
            "https://www.whitelisteddomain.tld/?@evil.com",
        ),
        (
            "https://www.whitelisteddomain.tld#.evil.com:443",
            "https://www.whitelisteddomain.tld/#.evil.com:443",
        ),
        (
            "https:www.whitelisteddomain.tld/x",
            "https://www.whitelisteddomain.tld/x",
        ),
        (
            "https:///www.whitelisteddomain.tld/x",
            "https://www.whitelisteddomain.tld/x",
        ),
        (
            "http://localhost:3000/cb?a=1#f",
            "http://localhost:3000/cb?a=1#f",
        ),
        ("https://a.example.com/", "https://a.example.com/"),
        ("https://a.b.example.com/x", "https://a.b.example.com/x"),
        ("https://ä.example.com/", "https://xn--4ca.example.com/"),
        // IDNA mapping lands on the allowed host; we send its ASCII form.
        (
            "https://www\u{3002}whitelisteddomain\u{3002}tld/",
            "https://www.whitelisteddomain.tld/",
        ),
        (
            "https://\u{ff57}\u{ff57}\u{ff57}.whitelisteddomain.tld/",
            "https://www.whitelisteddomain.tld/",
        ),
    ] {
        assert_eq!(accepted(raw, &policy), location, "{raw:?}");
    }
}

#[test]
fn refuses_backslashes_controls_and_spaces_before_parsing() {
    let policy = default_policy();
    for raw in [
        "\\evil.com",
        "/\\evil.com",
        "https:\\\\evil.com",
        "https://www.whitelisteddomain.tld\\@evil.com",
    ] {
        assert!(
            matches!(refused(raw, &policy), RedirectRefused::Backslash),
            "{raw:?}"
        );
    }
    for raw in [
        "/app page",
        " /app",
        "/app ",
        "/\t/evil.com",
        "/\n/evil.com",
        "/\r/evil.com",
        "/a\u{0}",
        "/a\u{1f}",
        "/a\u{7f}",
        "/a\u{85}",
        "/a\u{a0}",
        "/a\u{2028}",
        "/a\u{3000}",
        "\tjavascript:alert(1)",
        "java\nscript:alert(1)",
    ] {
        assert!(
            matches!(refused(raw, &policy), RedirectRefused::ControlOrSpace),
            "{raw:?}"
        );
    }
    for raw in [
        "/%5cevil.com",
        "/%5Cevil.com",
        "/%09/evil.com",
        "/%0a/evil.com",
        "/%0D/evil.com",
        "/%00",
        "/%1f",
        "/%1F",
        "/a%20b",
        "/%7f",
        "/%7F",
        "/%C2%85",
        "/%c2%a0",
        "/%E2%80%A8",
        "%2F%5Cevil.com",
        "https://www.whitelisteddomain.tld/%20",
        "https://www.whitelisteddomain.tld%09.evil.com",
    ] {
        assert!(
            matches!(
                refused(raw, &policy),
                RedirectRefused::EncodedControlOrSpace
            ),
            "{raw:?}"
        );
    }
}

#[test]
fn refuses_user_info() {
    let policy = default_policy();
    for raw in [
        "https://good@evil.com",
        "https://good:pw@evil.com",
        "https://www.whitelisteddomain.tld@evil.com",
        "https://evil.com@www.whitelisteddomain.tld",
        "https://user:pw@www.whitelisteddomain.tld/",
        "https://@www.whitelisteddomain.tld",
        "https://:@www.whitelisteddomain.tld",
        "http://user@127.0.0.1:8080/",
        "https:good@evil.com",
        "https:///good@evil.com",
        "http:@127.0.0.1:8080",
        "https://www.whitelisteddomain.tld%40evil.com@evil.com",
    ] {
        assert!(
            matches!(refused(raw, &policy), RedirectRefused::UserInfo),
            "{raw:?}"
        );
    }
}

#[test]
fn refuses_protocol_relative() {
    let policy = default_policy();
    for raw in [
        "//evil.com",
        "///evil.com",
        "////evil.com",
        "//www.whitelisteddomain.tld",
        "//127.0.0.1:8080/app",
        "//",
    ] {
        assert!(
            matches!(refused(raw, &policy), RedirectRefused::ProtocolRelative),
            "{raw:?}"
        );
    }
}

#[test]
fn refuses_other_schemes() {
    let policy = default_policy();
    for (raw, scheme) in [
        ("javascript:alert(1)", "javascript"),
        ("JaVaScRiPt:alert(1)", "javascript"),
        (
            "javascript://www.whitelisteddomain.tld/?alert(1)",
            "javascript",
        ),
        ("data:text/html,<script>alert(1)</script>", "data"),
        ("ftp://www.whitelisteddomain.tld/", "ftp"),
        ("file:///etc/passwd", "file"),
        ("ws://127.0.0.1:8080/", "ws"),
        ("vbscript:msgbox(1)", "vbscript"),
        ("blob:https://www.whitelisteddomain.tld/x", "blob"),
        ("c:/windows", "c"),
        ("app:page", "app"),
        ("https+x://evil.com", "https+x"),
    ] {
        match refused(raw, &policy) {
            RedirectRefused::Scheme(got) => assert_eq!(got, scheme, "{raw:?}"),
            other => panic!("{raw:?}: {other:?}"),
        }
    }
    let long = format!("{}:x", "a".repeat(5000));
    match refused(&long, &policy) {
        RedirectRefused::Scheme(got) => assert!(got.chars().count() <= MAX_ECHO + 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn refuses_foreign_origins_after_parsing() {
    let policy = default_policy();
    for raw in [
        "https://evil.com",
        "http://evil.com",
        "https:evil.com",
        "https:/evil.com",
        "https:///evil.com",
        "http://www.whitelisteddomain.tld/",
        "https://www.whitelisteddomain.tld:8443/",
        "https://www.whitelisteddomain.tld./",
        "https://www.whitelisteddomain.tld.evil.com",
        "https://evilwww.whitelisteddomain.tld",
        "https://x.www.whitelisteddomain.tld",
        "https://ẉww.whitelisteddomain.tld",
        "https://www.whitelisteddomain.tld%2eevil.com",
        "https://example.com",
        "https://evilexample.com",
        "https://example.com.evil.com",
        "https://a.example.com.evil.com",
        "https://a.example.com./",
        "http://a.example.com",
        "https://a.example.com:444",
        "http://localhost:3001",
        "https://localhost:3000",
        "http://127.0.0.1:8081/",
        "http://127.0.0.1/",
        "https://127.0.0.1:8080/",
        "http://localhost:8080/",
        "http://[::1]:8080/",
        "http://[::ffff:127.0.0.1]:8080/",
        "http://0.0.0.0:8080/",
        "http://3232235521/",
        "https://www.whitelisteddomain.tld%2e",
        "https://www.whitelisteddomain.tld%E3%80%82evil.com",
        "https://www.whitelisteddomain.tld\u{3002}evil.com",
        "https://www.whitelisteddomain\u{ad}tld/",
    ] {
        assert!(
            matches!(refused(raw, &policy), RedirectRefused::OriginNotAllowed(_)),
            "{raw:?}"
        );
    }
}

#[test]
fn refuses_what_does_not_parse() {
    let policy = default_policy();
    for raw in [
        "https://",
        "http://",
        "https:",
        "https://exa<mple.com",
        "https://[::1",
        "https://evil.com:99999",
        "https://%zz",
        "http://300.0.0.1/",
        "https://www.whitelisteddomain.tld:port",
        "https://xn--www-whitelisteddomain-tld.evil/",
        "https://www.whitelisteddomain.tld%252eevil.com",
    ] {
        assert!(
            matches!(refused(raw, &policy), RedirectRefused::Unparsable(_)),
            "{raw:?}: {:?}",
            ReturnUrl::parse(raw, &policy)
        );
    }
}

#[test]
fn relative_inputs_need_allow_relative() {
    let strict = policy(false, &["https://www.whitelisteddomain.tld"]);
    for raw in ["/app", "app/page?x=1", "?x=1", "#f", ".evil.com", "/"] {
        assert!(
            matches!(refused(raw, &strict), RedirectRefused::RelativeNotAllowed),
            "{raw:?}"
        );
    }
    assert!(matches!(
        refused("//evil.com", &strict),
        RedirectRefused::ProtocolRelative
    ));
    assert_eq!(
        accepted("http://127.0.0.1:8080/app", &strict),
        "http://127.0.0.1:8080/app"
    );
    assert_eq!(
        accepted("https://www.whitelisteddomain.tld/x", &strict),
        "https://www.whitelisteddomain.tld/x"
    );
    assert!(matches!(
        refused("https://evil.com/", &strict),
        RedirectRefused::OriginNotAllowed(_)
    ));
}

#[test]
fn relative_inputs_resolve_under_a_public_path() {
    let policy = RedirectPolicy {
        public_url: Url::parse("https://id.example.org/identity/").unwrap(),
        allow_relative: true,
        allowed_origins: OriginPolicy::default(),
    };
    assert_eq!(
        accepted("app", &policy),
        "https://id.example.org/identity/app"
    );
    assert_eq!(accepted("/app", &policy), "https://id.example.org/app");
    assert_eq!(
        accepted("https://ID.example.org:443/x", &policy),
        "https://id.example.org/x"
    );
    assert!(matches!(
        refused("http://id.example.org/x", &policy),
        RedirectRefused::OriginNotAllowed(_)
    ));
    // Different scheme from the base: `https:` takes the authority form.
    assert!(matches!(
        refused("http:evil.com", &policy),
        RedirectRefused::OriginNotAllowed(_)
    ));
}

#[test]
fn refuses_empty_and_huge_input_without_echoing_it() {
    let policy = default_policy();
    assert!(matches!(refused("", &policy), RedirectRefused::Empty));
    let huge = format!("/{}", "a".repeat(MAX_RETURN_URL_LEN));
    let error = refused(&huge, &policy);
    assert!(matches!(error, RedirectRefused::TooLong(_)));
    assert!(error.to_string().len() < 100);
    let long_host = format!(
        "https://{}evil.com/",
        format!("{}.", "a".repeat(59)).repeat(20)
    );
    let error = refused(&long_host, &policy);
    assert!(error.to_string().len() < 150, "{error}");
    let at_limit = format!("/{}", "a".repeat(MAX_RETURN_URL_LEN - 1));
    assert_eq!(
        ReturnUrl::parse(&at_limit, &policy)
            .unwrap()
            .as_url()
            .path()
            .len(),
        MAX_RETURN_URL_LEN
    );
}

#[test]
fn location_reparses_to_the_same_url() {
    let policy = default_policy();
    for raw in [
        "/a/../../b",
        "/.//evil.com",
        "/%2e%2e%2f%2e%2e%2fevil.com",
        "https:www.whitelisteddomain.tld/./..//evil.com",
        "/x?y=%ZZ&z=ü",
    ] {
        let url = ReturnUrl::parse(raw, &policy).unwrap();
        let again = Url::parse(url.as_str()).unwrap();
        assert_eq!(&again, url.as_url(), "{raw:?}");
        assert!(
            policy.allowed_origins.allows(&again.origin())
                || again.origin() == policy.public_url.origin()
        );
    }
}

#[test]
fn serde_is_the_plain_url_string() {
    let url = ReturnUrl::parse("/app?x=1", &default_policy()).unwrap();
    let json = serde_json::to_string(&url).unwrap();
    assert_eq!(json, "\"http://127.0.0.1:8080/app?x=1\"");
    let back: ReturnUrl = serde_json::from_str(&json).unwrap();
    assert_eq!(back, url);
    assert_eq!(back.to_string(), url.as_str());
}

mod generated;
