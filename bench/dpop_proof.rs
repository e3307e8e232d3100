//! What one DPoP proof costs against one ES256 signature (SPEC 12, issue 20: "a DPoP
//! proof costs one signature"), in one process on one core:
//!
//! - **signature**: aws-lc-rs signs 64 bytes with an already parsed P-256 key pair;
//! - **proof**: what the proxy does per request with a `DPOP` target: the session's key
//!   from its stored form (`DpopKey::from_stored`) and a fresh proof with `ath`;
//! - **parse + signature**: the PKCS#8 parse jsonwebtoken's stock signer repeats on every
//!   `encode`, then the signature (what each proof paid twice over before
//!   `crypto::jose` kept parsed key pairs).
//!
//! Prints µs per operation and the proof's cost in signatures. Run it (release mode):
//!
//! ```sh
//! cargo bench --bench dpop_proof
//! ```
//!
//! `bench/run --proxy-dpop` runs it and puts its lines in the report. Under
//! `cargo test --all-targets` it only prints this note: it is a measurement, not a check.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use identity_service::oidc::dpop::DpopKey;
use url::Url;

const RUN: Duration = Duration::from_secs(2);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not.
    if !std::env::args().any(|arg| arg == "--bench") {
        eprintln!("dpop_proof: a measurement; run it with `cargo bench --bench dpop_proof`");
        return;
    }
    assert!(
        identity_service::crypto::jose::install(),
        "the service's jsonwebtoken provider must be the one in use"
    );
    let key = DpopKey::generate().unwrap();
    let stored = key.stored().to_owned();
    let pkcs8 = identity_service::crypto::b64_decode(&stored).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
    let rng = SystemRandom::new();
    let url = Url::parse("https://api.example/orders/42?page=2").unwrap();
    let message = [7u8; 64];

    let signature = per_operation(|| {
        black_box(pair.sign(&rng, black_box(&message)).unwrap());
    });
    let proof = per_operation(|| {
        let key = DpopKey::from_stored(black_box(&stored)).unwrap();
        black_box(
            key.proof("GET", &url, Some("an-access-token"), None)
                .unwrap(),
        );
    });
    let parse_and_sign = per_operation(|| {
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, black_box(&pkcs8)).unwrap();
        black_box(pair.sign(&rng, &message).unwrap());
    });
    println!("one ES256 signature (parsed key pair): {signature:.1} µs");
    println!("one DPoP proof as the proxy makes it: {proof:.1} µs");
    println!("PKCS#8 parse + signature (the stock signer's per-call cost): {parse_and_sign:.1} µs");
    println!("proof / signature: {:.2}", proof / signature);
}

/// Microseconds per call of `operation`, run for [`RUN`] after a short warm-up.
fn per_operation(mut operation: impl FnMut()) -> f64 {
    for _ in 0..200 {
        operation();
    }
    let started = Instant::now();
    let mut calls = 0u64;
    while started.elapsed() < RUN {
        for _ in 0..100 {
            operation();
        }
        calls += 100;
    }
    started.elapsed().as_secs_f64() * 1e6 / calls as f64
}
