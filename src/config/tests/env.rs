//! Environment overrides: by section, by provider index and id, typed values.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

#[test]
fn env_overrides_sections() {
    let c = ok(
        "[session]\nstore = \"redis\"\n",
        &[
            ("IDENTITY__SESSION__REDIS_URL", "redis://cache:6380/2"),
            ("IDENTITY__SERVER__BIND", "0.0.0.0:9000"),
            ("IDENTITY__SERVER__PUBLIC_URL", "https://login.example.com/"),
            ("UNRELATED", "x"),
        ],
    );
    assert_eq!(c.session.redis_url, "redis://cache:6380/2");
    assert_eq!(c.server.bind, "0.0.0.0:9000");
    assert_eq!(c.server.public_url.as_str(), "https://login.example.com/");
    assert!(c.session.cookie_secure, "auto follows the https public_url");
}

#[test]
fn env_overrides_a_provider_by_index_and_by_id() {
    let two = format!(
        "{PROVIDER}\n[[providers]]\nid = \"Corp\"\nissuer = \"https://corp.example.com\"\nclient_id = \"c\"\nclient_secret = \"x\"\n"
    );
    let c = ok(
        &two,
        &[
            ("IDENTITY__PROVIDERS__0__CLIENT_SECRET", "from-env-index"),
            ("IDENTITY__PROVIDERS__CORP__CLIENT_SECRET", "from-env-id"),
            ("IDENTITY__PROVIDERS__CORP__LOGOUT__RP_INITIATED", "false"),
            ("IDENTITY__PROVIDERS__LOCAL__NAME", "Renamed"),
        ],
    );
    let secret = |i: usize| match &c.providers[i].client_auth {
        ClientAuth::ClientSecretBasic { secret } => secret.expose().to_owned(),
        other => panic!("{other:?}"),
    };
    assert_eq!(secret(0), "from-env-index");
    assert_eq!(secret(1), "from-env-id");
    assert_eq!(c.providers[0].name, "Renamed");
    assert!(c.providers[0].logout.rp_initiated);
    assert!(!c.providers[1].logout.rp_initiated);
}

#[test]
fn env_can_define_a_provider_and_a_target_from_scratch() {
    let c = ok(
        "",
        &[
            ("IDENTITY__PROVIDERS__0__ID", "env"),
            ("IDENTITY__PROVIDERS__0__ISSUER", "https://op.example.com"),
            ("IDENTITY__PROVIDERS__0__CLIENT_ID", "cid"),
            ("IDENTITY__PROVIDERS__0__AUTH_METHOD", "none"),
            ("IDENTITY__TARGETS__0__URL", "https://api.example.com/"),
            ("IDENTITY__TARGETS__0__STRATEGY", "access_token"),
        ],
    );
    assert_eq!(c.providers[0].id, "env");
    assert!(matches!(c.providers[0].client_auth, ClientAuth::None));
    assert!(matches!(c.targets[0].strategy, Strategy::AccessToken));
}

#[test]
fn env_values_are_typed() {
    let c = ok(
        PROVIDER,
        &[
            ("IDENTITY__SERVER__WORKERS", "4"),
            ("IDENTITY__SESSION__COOKIE_SECURE", "true"),
            ("IDENTITY__REDIRECTS__ALLOW_RELATIVE", "false"),
            (
                "IDENTITY__REDIRECTS__ALLOWED_ORIGINS",
                r#"["https://a.example.com","https://b.example.com"]"#,
            ),
            ("IDENTITY__SERVER__TRUSTED_PROXIES", r#"["10.0.0.0/8"]"#),
            // Text that happens to read as a number stays text where text is expected.
            ("IDENTITY__PROVIDERS__0__CLIENT_ID", "12345"),
            ("IDENTITY__PROVIDERS__0__CLIENT_SECRET", "1e5"),
        ],
    );
    assert_eq!(c.server.workers, 4);
    assert!(c.session.cookie_secure);
    assert!(!c.redirects.allow_relative);
    assert_eq!(c.redirects.allowed_origins.len(), 2);
    assert_eq!(c.server.trusted_proxies.len(), 1);
    assert_eq!(c.providers[0].client_id, "12345");
    assert!(
        matches!(&c.providers[0].client_auth, ClientAuth::ClientSecretBasic { secret } if secret.expose() == "1e5")
    );

    let problems = bad(
        "",
        &[
            ("IDENTITY__SERVER__WORKERS", "many"),
            ("IDENTITY__CORS__ALLOWED_ORIGINS", "https://a.example.com"),
        ],
    );
    assert_problem(
        &problems,
        "server.workers",
        "expected an integer, found a string",
    );
    assert_problem(&problems, "cors.allowed_origins", "write it as TOML");
}

#[test]
fn env_problems_name_the_variable_and_hide_the_value() {
    let problems = bad(
        PROVIDER,
        &[(
            "IDENTITY__PROVIDERS__OTHER__CLIENT_SECRET",
            "env-secret-value",
        )],
    );
    assert_problem(
        &problems,
        "IDENTITY__PROVIDERS__OTHER__CLIENT_SECRET",
        "no entry of providers has the id \"other\"",
    );
    assert!(
        problems
            .iter()
            .all(|p| !p.message.contains("env-secret-value"))
    );
    let problems = bad("", &[("IDENTITY__SERVR__BIND", "x")]);
    assert_problem(&problems, "servr", "did you mean \"server\"");
}
