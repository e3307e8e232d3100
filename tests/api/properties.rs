//! Property tests (issue 9 point 22) for the parsers that face the internet: thousands of
//! generated inputs each, no panic, and the invariants that matter for safety. Target
//! matching and `returnURL` have their own properties next to the code (unit tests);
//! here are the ones reached through the public API.

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};

use identity_service::session::SessionTicket;

use crate::fake_op::{FakeOp, LogoutTokenSpec, SigningKeyChoice};

/// Text with the characters parsers trip over, and the pieces attacks are made of.
fn hostile_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(".".to_owned()),
        Just("=".to_owned()),
        Just("%".to_owned()),
        Just("\\".to_owned()),
        Just("\u{0}".to_owned()),
        Just("é".to_owned()),
        Just("eyJ".to_owned()),
        "[A-Za-z0-9_-]{0,64}",
        any::<String>(),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

#[test]
fn ticket_decoding_never_panics_and_round_trips() {
    proptest!(ProptestConfig::with_cases(5000), |(text in hostile_text())| {
        if let Some(ticket) = SessionTicket::parse(&text) {
            prop_assert_eq!(SessionTicket::parse(&ticket.cookie_value()), Some(ticket));
        }
    });
}

/// A JSON value of any shape, for claims and header fields.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_token_checks_never_panic_on_garbage_or_odd_claims() {
    let op = FakeOp::start().await;
    let config = crate::helpers::load_config_text(&crate::helpers::config_text(
        &op,
        0,
        &crate::helpers::AppOptions::default(),
    ))
    .unwrap();
    let registry =
        identity_service::oidc::ProviderRegistry::new(&config.providers, "http://x/callback")
            .unwrap();
    let http = reqwest::Client::new();
    let now = chrono::Utc::now().timestamp();
    let runtime = tokio::runtime::Handle::current();
    let claims = [
        "iss", "aud", "iat", "exp", "jti", "events", "sid", "sub", "nonce",
    ];
    let headers = ["kid", "typ"];
    let keys = [
        SigningKeyChoice::Current,
        SigningKeyChoice::Rotated,
        SigningKeyChoice::Attacker,
    ];
    tokio::task::spawn_blocking(move || {
        let validate = |token: &str| {
            runtime.block_on(identity_service::oidc::logout_token::validate(
                &registry, &http, token, 300, now,
            ))
        };
        let mut runner = TestRunner::new(ProptestConfig::with_cases(3000));
        runner
            .run(&hostile_text(), |token| {
                prop_assert!(validate(&token).is_err());
                Ok(())
            })
            .unwrap();
        let mut runner = TestRunner::new(ProptestConfig::with_cases(1000));
        let overrides = (
            prop::collection::vec((0..claims.len(), any_json()), 0..4),
            prop::collection::vec((0..headers.len(), any_json()), 0..2),
            0..keys.len(),
        );
        runner
            .run(&overrides, |(claim_values, header_values, key)| {
                let mut spec =
                    LogoutTokenSpec::for_session("alice", "sid-1").signed_with(keys[key]);
                let changed = !claim_values.is_empty() || !header_values.is_empty() || key != 0;
                for (index, value) in claim_values {
                    spec = spec.claim(claims[index], value);
                }
                for (index, value) in header_values {
                    spec = spec.header(headers[index], value);
                }
                let token = op.logout_token(spec);
                let outcome = validate(&token);
                if !changed {
                    prop_assert!(outcome.is_ok(), "{:?}", outcome.err());
                }
                Ok(())
            })
            .unwrap();
    })
    .await
    .unwrap();
}

/// A TOML value of any simple shape.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "[ -~]{0,20}".prop_map(|text| format!("{:?}", text)),
        Just("\"30s\"".to_owned()),
        Just("\"0ms\"".to_owned()),
        Just("\"999999999999d\"".to_owned()),
        Just("\"https://*.example.com\"".to_owned()),
        Just("[]".to_owned()),
        Just("[\"x\", 1]".to_owned()),
        Just("{ a = 1 }".to_owned()),
    ]
}

#[test]
fn the_config_loader_never_panics_on_generated_toml() {
    let sections = [
        "server",
        "log",
        "limits",
        "tls",
        "proxy",
        "session",
        "redirects",
        "cors",
        "backchannel",
        "signing",
    ];
    let keys = [
        "bind",
        "public_url",
        "base_path",
        "workers",
        "trusted_proxies",
        "templates_dir",
        "metrics_bind",
        "format",
        "level",
        "store",
        "redis_url",
        "key_prefix",
        "cookie_name",
        "cookie_secure",
        "cookie_same_site",
        "idle_timeout",
        "max_lifetime",
        "allowed_origins",
        "allow_relative",
        "max_age",
        "key_file",
        "timeout",
        "max_body",
        "id",
        "issuer",
        "client_id",
        "client_secret",
        "url",
        "strategy",
        "transport",
        "unknown",
    ];
    let table = prop::collection::vec(
        (
            prop_oneof![
                (0..sections.len()).prop_map(move |i| format!("[{}]", sections[i])),
                Just("[[providers]]".to_owned()),
                Just("[[targets]]".to_owned()),
            ],
            prop::collection::vec((0..keys.len(), toml_value()), 0..6),
        ),
        0..5,
    );
    let env = prop::collection::vec(
        (
            prop_oneof![
                Just("IDENTITY__SESSION__IDLE_TIMEOUT".to_owned()),
                Just("IDENTITY__PROVIDERS__0__ISSUER".to_owned()),
                Just("IDENTITY__SERVER__WORKERS".to_owned()),
                "IDENTITY__[A-Z_]{0,20}",
            ],
            "[ -~]{0,12}",
        ),
        0..3,
    );
    proptest!(ProptestConfig::with_cases(3000), |(table in table, env in env, raw in any::<String>())| {
        let mut text = String::new();
        for (header, entries) in table {
            text.push_str(&header);
            text.push('\n');
            for (key, value) in entries {
                text.push_str(&format!("{} = {value}\n", keys[key]));
            }
        }
        let _ = identity_service::config::load_str(&text, env.clone());
        let _ = identity_service::config::load_str(&raw, env);
    });
}
