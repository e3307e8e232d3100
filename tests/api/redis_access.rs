//! Issue 17 point 8 (SPEC 3 `key_prefix`, `redis_url`, `[tls] ca_file`): the service works
//! with a Redis ACL user limited to `~<key_prefix>*` without `@dangerous` (every key it
//! touches, the readiness probe's included, is under the prefix), and trusts
//! `[tls] ca_file` for `rediss://`. Each test runs a `redis-server` of its own.

use std::time::Duration;

use crate::fake_op::{FakeOp, LogoutTokenSpec, TestUser};
use crate::helpers::{AppOptions, TestApp, browser, spawn_app_for, temp_file, unique_prefix};
use crate::private_redis::{PrivateRedis, free_port, send_inline};

/// Whether `/health/ready` says 200 within ~5 s; the last body.
async fn becomes_ready(app: &TestApp) -> (bool, String) {
    let mut body = String::new();
    for _ in 0..100 {
        let response = app.get("/health/ready").await;
        let ready = response.status() == 200;
        body = response.text().await.unwrap_or_default();
        if ready {
            return (true, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (false, body)
}

#[tokio::test]
async fn an_acl_user_limited_to_the_key_prefix_is_enough() {
    let Some(redis) = PrivateRedis::start_free() else {
        return;
    };
    let prefix = unique_prefix();
    let reply = send_inline(
        redis.port,
        format!("ACL SETUSER identity on >identity-pass resetkeys ~{prefix}* resetchannels +@all -@dangerous\r\n")
            .as_bytes(),
    )
    .unwrap();
    assert!(reply.starts_with("+OK"), "{reply}");
    // Nobody else gets in: only that user can do anything.
    let reply = send_inline(redis.port, b"ACL SETUSER default off\r\n").unwrap();
    assert!(reply.starts_with("+OK"), "{reply}");

    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            redis_url: format!("redis://identity:identity-pass@127.0.0.1:{}", redis.port),
            prefix: prefix.clone(),
            ..AppOptions::default()
        },
    )
    .await;
    let (ready, body) = becomes_ready(&app).await;
    assert!(ready, "not ready with the ACL user: {body}");

    // Login, userinfo, logout.
    let alice = browser();
    assert_eq!(
        app.login_with(&alice, &TestUser::alice()).await.status(),
        302
    );
    assert_eq!(app.userinfo_with(&alice).await["authenticated"], true);
    let logout = alice.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(logout.status(), 200);
    assert_eq!(app.userinfo_with(&alice).await["authenticated"], false);

    // Back-channel logout ends the session of that sid.
    let bob = browser();
    app.login_with(&bob, &TestUser::bob()).await;
    assert_eq!(app.userinfo_with(&bob).await["authenticated"], true);
    let sid = op.sid_of_last_login().unwrap();
    let response = reqwest::Client::new()
        .post(app.url("/backchannel-logout"))
        .form(&[(
            "logout_token",
            op.logout_token(LogoutTokenSpec::for_session("bob", &sid)),
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(app.userinfo_with(&bob).await["authenticated"], false);
    assert!(becomes_ready(&app).await.0);
}

/// A private CA, and a server certificate and key from it for 127.0.0.1 (PEM files).
struct PrivateCa {
    ca: std::path::PathBuf,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn private_ca() -> PrivateCa {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "identity-service redis test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    PrivateCa {
        ca: temp_file("pem", &ca.pem()),
        cert: temp_file("pem", &cert.pem()),
        key: temp_file("pem", &key.serialize_pem()),
    }
}

#[tokio::test]
async fn rediss_with_a_private_ca_in_ca_file_is_ready() {
    let ca = private_ca();
    let tls_port = free_port();
    let Some(_redis) = PrivateRedis::start(
        free_port(),
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            ca.cert.to_str().unwrap(),
            "--tls-key-file",
            ca.key.to_str().unwrap(),
            "--tls-ca-cert-file",
            ca.ca.to_str().unwrap(),
            "--tls-auth-clients",
            "no",
        ],
    ) else {
        return;
    };
    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            redis_url: format!("rediss://127.0.0.1:{tls_port}"),
            tail: format!("[tls]\nca_file = \"{}\"\n", ca.ca.display()),
            ..AppOptions::default()
        },
    )
    .await;
    let (ready, body) = becomes_ready(&app).await;
    assert!(ready, "not ready over rediss:// with ca_file: {body}");
    let alice = browser();
    assert_eq!(
        app.login_with(&alice, &TestUser::alice()).await.status(),
        302
    );
    assert_eq!(app.userinfo_with(&alice).await["authenticated"], true);
}
