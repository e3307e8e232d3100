//! `[signing] key_files` (SPEC 3): the first key signs, every key is published at
//! `/.well-known/jwks.json` under its RFC 7638 thumbprint, and the documented rotation
//! (add next → promote → drop previous) keeps every token verifiable by a downstream
//! verifier that caches the JWKS it fetched at the previous step.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};

use crate::fake_op::{FakeOp, TestUser, fixture_path};
use crate::helpers::{AppOptions, TestApp, spawn_app_for, temp_file};
use crate::targets::post_token;

const TARGET: &str = "https://gis.example.com/";

/// An instance whose `[signing]` is `signing` (a TOML body), with a `jwt` target.
async fn instance(op: &FakeOp, signing: &str) -> TestApp {
    let app = spawn_app_for(
        op,
        AppOptions {
            tail: format!(
                "[signing]\n{signing}\n[[targets]]\nurl = \"{TARGET}\"\nstrategy = \"jwt\"\n"
            ),
            ..AppOptions::default()
        },
    )
    .await;
    app.login(&TestUser::alice()).await;
    app
}

fn key_files(keys: &[&PathBuf]) -> String {
    let list: Vec<String> = keys
        .iter()
        .map(|path| format!("\"{}\"", path.display()))
        .collect();
    format!("key_files = [{}]", list.join(", "))
}

async fn token(app: &TestApp) -> String {
    let response = post_token(app, TARGET).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let body: serde_json::Value = response.json().await.unwrap();
    body["token"]["value"].as_str().unwrap().to_owned()
}

async fn jwks(app: &TestApp) -> JwkSet {
    app.get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap()
}

/// A downstream service's check: the token's `kid` is in the JWKS it holds and the
/// signature verifies with that key.
fn verifies(token: &str, cached: &JwkSet, issuer: &str) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let key = cached
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} is not in the cached JWKS"))?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[TARGET]);
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<serde_json::Value>(
        token,
        &DecodingKey::from_jwk(key).map_err(|e| e.to_string())?,
        &validation,
    )
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// RFC 7638 section 3: SHA-256 over the required members in lexicographic order, no
/// whitespace; computed here from the published key's members, independently of the
/// service's code.
fn thumbprint(jwk: &serde_json::Value) -> String {
    let canonical = match jwk["kty"].as_str().unwrap() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["crv"].as_str().unwrap(),
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        ),
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            jwk["e"].as_str().unwrap(),
            jwk["n"].as_str().unwrap()
        ),
        other => panic!("unexpected kty {other}"),
    };
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[tokio::test]
async fn every_key_is_published_under_its_rfc7638_thumbprint_and_the_first_signs() {
    let op = FakeOp::start().await;
    let (ec, rsa) = (fixture_path("op-ec.pem"), fixture_path("op-rsa-2.pem"));
    for signing in [
        key_files(&[&ec, &rsa]),
        format!("key_file = \"{}\"", ec.display()),
    ] {
        let app = instance(&op, &signing).await;
        let document: serde_json::Value = app
            .get("/.well-known/jwks.json")
            .await
            .json()
            .await
            .unwrap();
        let keys = document["keys"].as_array().unwrap();
        let expected = if signing.starts_with("key_files") {
            2
        } else {
            1
        };
        assert_eq!(keys.len(), expected, "{document}");
        for key in keys {
            assert_eq!(key["kid"].as_str().unwrap(), thumbprint(key), "{key}");
            assert!(
                key.get("d").is_none(),
                "a private member is published: {key}"
            );
        }
        let token = token(&app).await;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(
            header.alg,
            jsonwebtoken::Algorithm::ES256,
            "the first key signs"
        );
        assert_eq!(header.kid.as_deref(), keys[0]["kid"].as_str());
    }
}

#[tokio::test]
async fn the_documented_rotation_keeps_every_token_verifiable_with_a_cached_jwks() {
    let op = FakeOp::start().await;
    let (current, next) = (fixture_path("op-ec.pem"), fixture_path("op-rsa-2.pem"));
    let steps = [
        ("start", key_files(&[&current])),
        ("add next", key_files(&[&current, &next])),
        ("promote", key_files(&[&next, &current])),
        ("drop previous", key_files(&[&next])),
    ];
    let mut cached: Option<JwkSet> = None;
    let mut previous_token: Option<String> = None;
    for (step, signing) in &steps {
        let app = instance(&op, signing).await;
        let token = token(&app).await;
        let published = jwks(&app).await;
        // A verifier that fetched the JWKS at the previous step still accepts this
        // step's token; the previous step's token still verifies against today's JWKS.
        if let Some(cached) = &cached {
            verifies(&token, cached, &app.address)
                .unwrap_or_else(|e| panic!("{step}: new token vs cached JWKS: {e}"));
        }
        if let Some(previous) = &previous_token {
            let header = jsonwebtoken::decode_header(previous).unwrap();
            assert!(
                published.find(header.kid.as_deref().unwrap()).is_some(),
                "{step}: the previous step's signing key is no longer published"
            );
        }
        verifies(&token, &published, &app.address).unwrap();
        cached = Some(published);
        previous_token = Some(token);
    }
}

#[tokio::test]
async fn swapping_the_key_in_one_step_is_what_the_rotation_avoids() {
    // The control: without the "add next" step a verifier's cached JWKS lacks the key
    // that signs, which the test above would catch.
    let op = FakeOp::start().await;
    let old = instance(&op, &key_files(&[&fixture_path("op-ec.pem")])).await;
    let cached = jwks(&old).await;
    let new = instance(&op, &key_files(&[&fixture_path("op-rsa-2.pem")])).await;
    let token = token(&new).await;
    let refused = verifies(&token, &cached, &new.address).unwrap_err();
    assert!(refused.contains("not in the cached JWKS"), "{refused}");
}

#[test]
fn key_file_and_key_files_together_exit_2_naming_both() {
    let path = temp_file(
        "toml",
        &format!(
            "[signing]\nkey_file = \"{ec}\"\nkey_files = [\"{ec}\"]\n",
            ec = fixture_path("op-ec.pem").display()
        ),
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_identity-service"))
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("key_file"), "{message}");
    assert!(message.contains("key_files"), "{message}");
    assert!(message.contains("signing"), "{message}");
}

#[test]
fn an_unreadable_key_in_key_files_exits_2_naming_its_index() {
    let path = temp_file(
        "toml",
        &format!(
            "[signing]\nkey_files = [\"{}\", \"/nonexistent/next.pem\"]\n",
            fixture_path("op-ec.pem").display()
        ),
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_identity-service"))
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("signing.key_files[1]"), "{message}");
}
