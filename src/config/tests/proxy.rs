//! `[proxy]` and `proxy_path` (SPEC 3 and 9): defaults, values, and every refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::*;

fn target(url: &str, proxy_path: &str) -> String {
    format!(
        "[[targets]]\nurl = \"{url}\"\nstrategy = \"access_token\"\nproxy_path = \"{proxy_path}\"\n"
    )
}

#[test]
fn proxy_defaults_are_the_specs() {
    let c = ok("", &[]);
    assert_eq!(c.proxy.timeout, Duration::from_secs(30));
    assert_eq!(c.proxy.max_body, 10_000_000);
    let printed = c.to_masked_toml();
    assert!(printed.contains("[proxy]"), "{printed}");
    assert!(printed.contains("max_body = \"10MB\""), "{printed}");
}

#[test]
fn proxy_values_and_env_overrides_are_read() {
    let text = format!(
        "[proxy]\ntimeout = \"5s\"\nmax_body = \"200MB\"\n{}",
        target("https://api.example.com/maps/", "/api/maps")
    );
    let c = ok(&text, &[("IDENTITY__PROXY__TIMEOUT", "750ms")]);
    assert_eq!(c.proxy.timeout, Duration::from_millis(750));
    assert_eq!(c.proxy.max_body, 200_000_000);
    assert_eq!(c.targets[0].proxy_path.as_deref(), Some("/api/maps"));
    assert!(c.to_masked_toml().contains("proxy_path = \"/api/maps\""));
}

#[test]
fn bad_proxy_values_are_refused() {
    let problems = bad(
        "[proxy]\ntimeout = \"0s\"\nmax_body = \"10\"\nmax_bodyy = \"1MB\"\n",
        &[],
    );
    assert_problem(&problems, "proxy.timeout", "longer than 0");
    assert_problem(&problems, "proxy.max_body", "a unit is needed");
    assert_problem(&problems, "proxy.max_bodyy", "unknown key");
    assert_problem(
        &bad("[proxy]\nmax_body = \"lots\"\n", &[]),
        "proxy.max_body",
        "invalid byte size",
    );
    assert_problem(
        &bad("[proxy]\nmax_body = \"0MB\"\n", &[]),
        "proxy.max_body",
        "larger than 0",
    );
}

#[test]
fn proxy_paths_must_start_with_a_slash_and_be_plain() {
    for (path, fragment) in [
        ("api/maps", "must start with '/'"),
        ("/", "whole service"),
        ("/api/maps/", "no trailing '/'"),
        ("/api/../x", "no trailing '/'"),
        ("/api%2Fx", "letters, digits"),
    ] {
        assert_problem(
            &bad(&target("https://a.example.com/", path), &[]),
            "targets[0].proxy_path",
            fragment,
        );
    }
}

#[test]
fn proxy_paths_must_not_repeat_or_overlap() {
    let text = [
        target("https://a.example.com/", "/api"),
        target("https://b.example.com/", "/api"),
        target("https://c.example.com/", "/api/c"),
        target("https://d.example.com/", "/apix"),
    ]
    .concat();
    let problems = bad(&text, &[]);
    assert_problem(
        &problems,
        "targets[1].proxy_path",
        "\"/api\" duplicates \"/api\" (targets[0].proxy_path)",
    );
    assert_problem(&problems, "targets[2].proxy_path", "overlaps \"/api\"");
    assert!(!has(&problems, "targets[3].proxy_path", ""), "{problems:?}");
}

#[test]
fn proxy_paths_must_not_overlap_the_services_routes() {
    for path in [
        "/token",
        "/health",
        "/logout/callback/x",
        "/.well-known",
        "/metrics",
    ] {
        assert_problem(
            &bad(&target("https://a.example.com/", path), &[]),
            "targets[0].proxy_path",
            "overlaps the service's own route",
        );
    }
    ok(&target("https://a.example.com/", "/tokens"), &[]);
}
