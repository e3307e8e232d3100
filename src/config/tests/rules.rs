//! Validation rules, and that every problem is reported at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::*;

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
[session]
idle_timeout = "30 minutes-ish"

[[providers]]
id = "local"
issuer = "not a url"
client_secrt = "typo-secret"
"#;
    let err = load_str(text, no_env()).unwrap_err();
    let problems = &err.problems;
    assert_problem(
        problems,
        "providers[0].client_secrt",
        "unknown key (did you mean \"client_secret\"?)",
    );
    assert_problem(problems, "session.idle_timeout", "invalid duration");
    assert_problem(problems, "providers[0].issuer", "invalid URL");
    assert_problem(problems, "providers[0].client_id", "is required");
    assert!(!err.to_string().contains("typo-secret"));
    // One `key: message` per line.
    for (line, problem) in err.to_string().lines().zip(problems) {
        assert_eq!(line, format!("{}: {}", problem.key, problem.message));
    }
    assert_eq!(err.to_string().lines().count(), problems.len());
}

#[test]
fn values_are_checked() {
    let text = r#"
[server]
bind = "localhost"
public_url = "ftp://x.example.com"
base_path = "/x/"
workers = -1
trusted_proxies = ["10.0.0.0/33"]
templates_dir = "/nonexistent/templates"
[session]
store = "disk"
cookie_name = "bad name"
cookie_same_site = "none"
idle_timeout = "13h"
max_lifetime = "0s"
[redirects]
allowed_origins = ["localhost:3000"]
allow_relative = "yes"
[backchannel]
max_age = 300
[signing]
key_file = "/nonexistent/key.pem"
"#;
    let problems = bad(text, &[]);
    for (key, fragment) in [
        ("server.bind", "not host:port"),
        ("server.public_url", "http or https"),
        ("server.base_path", "must not end with"),
        ("server.workers", "negative"),
        ("server.trusted_proxies[0]", "CIDR"),
        ("server.templates_dir", "not a readable directory"),
        (
            "session.store",
            "\"disk\" is not one of \"memory\" or \"redis\"",
        ),
        ("session.cookie_name", "not a valid cookie name"),
        ("session.cookie_same_site", "needs cookie_secure = true"),
        ("session.max_lifetime", "longer than 0"),
        ("redirects.allowed_origins[0]", "http"),
        ("redirects.allow_relative", "expected true or false"),
        ("backchannel.max_age", "with a unit"),
        ("signing.key_file", "cannot read"),
    ] {
        assert_problem(&problems, key, fragment);
    }
}

#[test]
fn idle_timeout_and_max_lifetime_are_independent() {
    // Whichever comes first ends the session (SPEC 3): either may be the shorter.
    let c = ok("[session]\nmax_lifetime = \"3s\"\n", &[]);
    assert_eq!(c.session.max_lifetime, Duration::from_secs(3));
    assert_eq!(c.session.idle_timeout, Duration::from_secs(30 * 60));
    let c = ok("[session]\nidle_timeout = \"13h\"\n", &[]);
    assert_eq!(c.session.idle_timeout, Duration::from_secs(13 * 3600));
}

#[test]
fn redis_urls_are_checked_without_repeating_them() {
    for url in [
        "redis://h:6379",
        "rediss://h",
        "redis+cluster://h1,h2",
        "redis+sentinel://h/mymaster",
    ] {
        ok(
            &format!("[session]\nstore = \"redis\"\nredis_url = \"{url}\"\n"),
            &[],
        );
    }
    let problems = bad(
        "[session]\nstore = \"redis\"\nredis_url = \"http://:pw-in-url@h\"\n",
        &[],
    );
    assert_problem(&problems, "session.redis_url", "must start with redis://");
    assert!(!format!("{problems:?}").contains("pw-in-url"));
    // Not checked while unused.
    ok("[session]\nredis_url = \"whatever\"\n", &[]);
}

#[test]
fn public_url_is_normalised() {
    let c = ok(
        "[server]\npublic_url = \"https://x.example.com/auth/\"\nbase_path = \"/\"\n",
        &[],
    );
    assert_eq!(c.server.public_url.as_str(), "https://x.example.com/auth");
    assert_eq!(c.server.base_path, "");
    let problems = bad(
        "[server]\npublic_url = \"https://x.example.com/?a=1\"\n",
        &[],
    );
    assert_problem(&problems, "server.public_url", "query or fragment");
}

#[test]
fn provider_rules() {
    let text = r#"
[[providers]]
id = "bad id!"
issuer = "https://a.example.com"
client_id = "a"
client_secret = "s"
scopes = ["profile"]
[[providers]]
id = "dup"
issuer = "https://b.example.com"
client_id = "b"
client_secret = "s"
logout.rp_initiatd = true
[[providers]]
id = "DUP"
issuer = "https://c.example.com"
client_id = "c"
auth_method = "private_key_jwt"
client_secret = "s"
[[providers]]
id = "d"
issuer = "https://d.example.com"
client_id = "d"
auth_method = "client_secret_jwt"
[[providers]]
id = "e"
issuer = "https://e.example.com"
client_id = "e"
"#;
    let problems = bad(text, &[]);
    assert_problem(&problems, "providers[0].id", "may only contain");
    assert_problem(&problems, "providers[0].scopes", "must contain \"openid\"");
    assert_problem(&problems, "providers[1].logout.rp_initiatd", "unknown key");
    assert_problem(
        &problems,
        "providers[2].id",
        "duplicate provider id \"DUP\" (also providers[1].id",
    );
    assert_problem(
        &problems,
        "providers[2].client_secret",
        "not used with auth_method \"private_key_jwt\"",
    );
    assert_problem(&problems, "providers[2].private_key_file", "is required");
    assert_problem(
        &problems,
        "providers[3].auth_method",
        "\"client_secret_jwt\" is not one of",
    );
    assert_problem(
        &problems,
        "providers[4].client_secret",
        "is required for auth_method \"client_secret_basic\"",
    );
    let problems = bad(
        "[[providers]]\nissuer = \"https://a\"\nclient_id = \"x\"\nclient_secret = \"s\"\n",
        &[],
    );
    assert_problem(&problems, "providers[0].id", "is required");
}

#[test]
fn a_lone_private_key_file_means_private_key_jwt() {
    let dir = temp_dir();
    let key = write(&dir, "key.pem", "pem");
    let c = ok(
        &format!(
            "[[providers]]\nid = \"a\"\nissuer = \"https://a\"\nclient_id = \"a\"\nprivate_key_file = \"{}\"\n",
            key.display()
        ),
        &[],
    );
    assert!(
        matches!(&c.providers[0].client_auth, ClientAuth::PrivateKeyJwt { key_file } if key_file == &key)
    );
}

#[test]
fn target_rules() {
    let dir = temp_dir();
    let key = write(&dir, "key.pem", "pem");
    let text = format!(
        r#"{PROVIDER}
[[targets]]
url = "https://api.example.com/a/"
strategy = "access_token"
[[targets]]
url = "https://api.example.com/b/"
strategy = "client_credentials"
token_url = "https://op.example.com/token"
client_id = "svc"
private_key_file = "{key}"
scope = "read"
[[targets]]
url = "https://api.example.com/c/"
strategy = "jwt"
transport = ["BEARER", "TOKEN_PARAMETER", "ACCESS_TOKEN_PARAMETER"]
"#,
        key = key.display()
    );
    let c = ok(&text, &[]);
    assert!(matches!(
        &c.targets[1].strategy,
        Strategy::ClientCredentials {
            client_auth: ClientAuth::PrivateKeyJwt { .. },
            scope: Some(_),
            ..
        }
    ));
    match &c.targets[2].strategy {
        Strategy::Jwt { lifetime, audience } => {
            assert_eq!(*lifetime, Duration::from_secs(300));
            assert!(audience.is_none());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(c.targets[2].transport.len(), 3);

    let text = format!(
        r#"{PROVIDER}
[[targets]]
url = "https://api.example.com/a/"
strategy = "exchange"
token_url = "https://op.example.com/token"
providers = ["local", "ghost"]
transport = ["bearer"]
[[targets]]
url = "ftp://api.example.com/"
strategy = "client_credentials"
client_id = "svc"
auth_method = "none"
[[targets]]
url = "https://api.example.com/a/"
strategy = "password"
token_url = "https://op.example.com/token"
client_id = "svc"
client_secret = "s"
username = "u"
lifetime = "5m"
[[targets]]
url = "https://api.example.com/z/"
strategy = "magic"
audience = "x"
[[targets]]
url = "https://api.example.com/y/"
"#
    );
    let problems = bad(&text, &[]);
    assert_problem(
        &problems,
        "targets[0].token_url",
        "not used by strategy \"exchange\"",
    );
    assert_problem(
        &problems,
        "targets[0].providers[1]",
        "no provider has the id \"ghost\"",
    );
    assert_problem(
        &problems,
        "targets[0].transport[0]",
        "\"bearer\" is not one of \"BEARER\"",
    );
    assert_problem(&problems, "targets[1].url", "http or https");
    assert_problem(&problems, "targets[1].token_url", "is required");
    assert_problem(
        &problems,
        "targets[1].auth_method",
        "\"none\" is not one of",
    );
    assert_problem(&problems, "targets[2].password", "is required");
    assert_problem(
        &problems,
        "targets[2].lifetime",
        "not used by strategy \"password\"",
    );
    assert_problem(&problems, "targets[3].strategy", "\"magic\" is not one of");
    assert!(
        !problems.iter().any(|p| p.key == "targets[3].audience"),
        "{problems:#?}"
    );
    assert_problem(&problems, "targets[4].strategy", "is required");
}

#[test]
fn duplicate_target_urls_are_refused() {
    let text = "[[targets]]\nurl = \"https://a.example.com/x\"\nstrategy = \"access_token\"\n[[targets]]\nurl = \"https://a.example.com/x\"\nstrategy = \"jwt\"\n";
    assert_problem(
        &bad(text, &[]),
        "targets[1].url",
        "duplicate target url (also targets[0].url)",
    );
}
