//! Each token strategy against the fake provider's real token endpoint, counting calls.

use std::time::Duration;

use futures_util::future::join_all;

use crate::fake_op::{CLIENT_RSA_PUBLIC_PEM, ClientAuthMethod, FakeOp, TestUser, fixture_path};
use crate::helpers::{AppOptions, TestApp, assert_error, spawn_app_for, spawn_two_instances};
use crate::targets::post_token;

/// The claims of a JWT (no verification; the tests check the signature separately).
pub fn claims_of(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&identity_service::crypto::b64_decode(payload).unwrap()).unwrap()
}

async fn app_with(op: &FakeOp, targets: &str) -> TestApp {
    spawn_app_for(
        op,
        AppOptions {
            tail: targets.to_owned(),
            ..AppOptions::default()
        },
    )
    .await
}

async fn token_value(app: &TestApp, target: &str) -> String {
    let response = post_token(app, target).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let body: serde_json::Value = response.json().await.unwrap();
    body["token"]["value"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn access_token_returns_the_sessions_own_token() {
    let op = FakeOp::start().await;
    let app = app_with(
        &op,
        "[[targets]]\nurl = \"https://api.example.com/\"\nstrategy = \"access_token\"\n",
    )
    .await;
    app.login(&TestUser::alice()).await;
    let token = token_value(&app, "https://api.example.com/x").await;
    let claims = claims_of(&token);
    assert_eq!(claims["iss"], op.issuer());
    assert_eq!(claims["sub"], TestUser::alice().sub);
    assert_eq!(op.token_calls("refresh_token"), 0);
}

#[tokio::test]
async fn exchange_asks_the_session_provider_with_the_users_token() {
    let op = FakeOp::start().await;
    let app = app_with(
        &op,
        "[[targets]]\nurl = \"https://maps.example.com/\"\nstrategy = \"exchange\"\naudience = \"maps\"\nscope = \"read\"\nresource = \"https://maps.example.com/\"\n",
    )
    .await;
    app.login(&TestUser::alice()).await;
    let token = token_value(&app, "https://maps.example.com/tiles").await;
    assert_eq!(claims_of(&token)["aud"], "maps");
    let request = op
        .last_token_request("urn:ietf:params:oauth:grant-type:token-exchange")
        .unwrap();
    assert_eq!(
        request.get("subject_token_type"),
        Some("urn:ietf:params:oauth:token-type:access_token")
    );
    assert_eq!(request.get("audience"), Some("maps"));
    assert_eq!(request.get("scope"), Some("read"));
    assert_eq!(request.get("resource"), Some("https://maps.example.com/"));
    // Cached per session: a second request makes no upstream call.
    token_value(&app, "https://maps.example.com/tiles").await;
    assert_eq!(
        op.token_calls("urn:ietf:params:oauth:grant-type:token-exchange"),
        1
    );
    // Another session gets its own.
    let bob = crate::helpers::browser();
    app.login_with(&bob, &TestUser::bob()).await;
    let response = bob
        .post(app.url("/token"))
        .header("X-Requested-With", "x")
        .form(&[("target", "https://maps.example.com/")])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        claims_of(body["token"]["value"].as_str().unwrap())["sub"],
        TestUser::bob().sub
    );
    assert_eq!(
        op.token_calls("urn:ietf:params:oauth:grant-type:token-exchange"),
        2
    );
}

fn client_credentials_target(op: &FakeOp, auth: &str) -> String {
    format!(
        "[[targets]]\nurl = \"https://meters.example.com/\"\nstrategy = \"client_credentials\"\ntoken_url = \"{}\"\nclient_id = \"service-a\"\n{auth}\nscope = \"read write\"\naudience = \"meters\"\n",
        op.token_endpoint()
    )
}

/// A provider with the client `service-a`, and an app whose client_credentials target
/// (`https://meters.example.com/`) uses it with client_secret_basic.
async fn client_credentials_app() -> (FakeOp, TestApp) {
    let op = FakeOp::start().await;
    op.add_client("service-a", Some("service-a-secret"));
    let app = app_with(
        &op,
        &client_credentials_target(&op, "client_secret = \"service-a-secret\""),
    )
    .await;
    (op, app)
}

#[tokio::test]
async fn client_credentials_with_client_secret_basic() {
    let op = FakeOp::start().await;
    op.add_client("service-a", Some("service-a-secret"));
    op.restrict_client_auth("service-a", &[ClientAuthMethod::ClientSecretBasic]);
    let app = app_with(
        &op,
        &client_credentials_target(&op, "client_secret = \"service-a-secret\""),
    )
    .await;
    app.login(&TestUser::alice()).await;
    let token = token_value(&app, "https://meters.example.com/").await;
    assert_eq!(claims_of(&token)["aud"], "meters");
    assert_eq!(
        op.last_client_auth().unwrap(),
        ("service-a".to_owned(), ClientAuthMethod::ClientSecretBasic)
    );
    assert_eq!(
        op.last_token_request("client_credentials")
            .unwrap()
            .get("scope"),
        Some("read write")
    );
}

#[tokio::test]
async fn client_credentials_with_client_secret_post() {
    let op = FakeOp::start().await;
    op.add_client("service-a", Some("service-a-secret"));
    op.restrict_client_auth("service-a", &[ClientAuthMethod::ClientSecretPost]);
    let app = app_with(
        &op,
        &client_credentials_target(
            &op,
            "client_secret = \"service-a-secret\"\nauth_method = \"client_secret_post\"",
        ),
    )
    .await;
    app.login(&TestUser::alice()).await;
    token_value(&app, "https://meters.example.com/").await;
    let request = op.last_token_request("client_credentials").unwrap();
    assert_eq!(request.get("client_id"), Some("service-a"));
    assert_eq!(request.get("client_secret"), Some("service-a-secret"));
}

#[tokio::test]
async fn client_credentials_with_private_key_jwt() {
    let op = FakeOp::start().await;
    op.add_client("service-k", None);
    op.register_client_key("service-k", CLIENT_RSA_PUBLIC_PEM);
    op.restrict_client_auth("service-k", &[ClientAuthMethod::PrivateKeyJwt]);
    let key_file = fixture_path("client-rsa.pem");
    let targets = format!(
        "[[targets]]\nurl = \"https://sg.example.com/\"\nstrategy = \"client_credentials\"\ntoken_url = \"{}\"\nclient_id = \"service-k\"\nauth_method = \"private_key_jwt\"\nprivate_key_file = \"{}\"\n",
        op.token_endpoint(),
        key_file.display()
    );
    let app = app_with(&op, &targets).await;
    app.login(&TestUser::alice()).await;
    token_value(&app, "https://sg.example.com/").await;
    assert_eq!(
        op.last_client_auth().unwrap(),
        ("service-k".to_owned(), ClientAuthMethod::PrivateKeyJwt)
    );
}

#[tokio::test]
async fn service_tokens_are_shared_by_callers_and_cached() {
    let (op, app) = client_credentials_app().await;
    app.login(&TestUser::alice()).await;
    let first = token_value(&app, "https://meters.example.com/").await;
    let bob = crate::helpers::browser();
    app.login_with(&bob, &TestUser::bob()).await;
    let response = bob
        .post(app.url("/token"))
        .header("X-Requested-With", "x")
        .form(&[("target", "https://meters.example.com/")])
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["token"]["value"], first.as_str());
    assert_eq!(op.token_calls("client_credentials"), 1);
}

#[tokio::test]
async fn a_service_token_is_renewed_by_its_refresh_token_before_new_credentials() {
    let op = FakeOp::start().await;
    op.add_client("service-a", Some("service-a-secret"));
    op.set_client_credentials_refresh(true);
    op.set_access_token_ttl(2);
    let app = app_with(
        &op,
        &client_credentials_target(&op, "client_secret = \"service-a-secret\""),
    )
    .await;
    app.login(&TestUser::alice()).await;
    let first = token_value(&app, "https://meters.example.com/").await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let second = token_value(&app, "https://meters.example.com/").await;
    assert_ne!(first, second);
    assert_eq!(op.token_calls("client_credentials"), 1);
    assert_eq!(op.token_calls("refresh_token"), 1);
}

#[tokio::test]
async fn password_grant_for_a_technical_account() {
    let op = FakeOp::start().await;
    let technical = TestUser::new("svc-1", "svc-account");
    op.add_technical_account(&technical, "tech-password");
    let targets = format!(
        "[[targets]]\nurl = \"https://oneportal.example.com/\"\nstrategy = \"password\"\ntoken_url = \"{}\"\nclient_id = \"identity\"\nclient_secret = \"identity-secret\"\nusername = \"svc-account\"\npassword = \"tech-password\"\nscope = \"portal\"\n",
        op.token_endpoint()
    );
    let app = app_with(&op, &targets).await;
    app.login(&TestUser::alice()).await;
    let token = token_value(&app, "https://oneportal.example.com/x").await;
    assert_eq!(claims_of(&token)["sub"], "svc-1");
    assert_eq!(
        op.last_client_auth().unwrap(),
        ("identity".to_owned(), ClientAuthMethod::ClientSecretBasic)
    );
}

#[tokio::test]
async fn an_upstream_failure_is_502_token_unavailable_with_the_upstream_code() {
    let (op, app) = client_credentials_app().await;
    app.login(&TestUser::alice()).await;
    op.fail_token_endpoint(Some((400, "invalid_scope")));
    let body = assert_error(
        post_token(&app, "https://meters.example.com/").await,
        502,
        "TOKEN_UNAVAILABLE",
    )
    .await;
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("invalid_scope"), "{message}");
    assert!(!message.contains("service-a-secret"));
}

#[tokio::test]
async fn jwt_targets_get_tokens_we_sign_and_publish_keys_for() {
    let op = FakeOp::start().await;
    let app = app_with(
        &op,
        "[[targets]]\nurl = \"https://gis.example.com/\"\nstrategy = \"jwt\"\nlifetime = \"2m\"\n",
    )
    .await;
    let alice = TestUser::alice();
    app.login(&alice).await;
    let token = token_value(&app, "https://gis.example.com/layers").await;
    let jwks: jsonwebtoken::jwk::JwkSet = app
        .get("/.well-known/jwks.json")
        .await
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    let key = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("the kid is published");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["https://gis.example.com/"]);
    validation.set_issuer(&[app.address.as_str()]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        &token,
        &jsonwebtoken::DecodingKey::from_jwk(key).unwrap(),
        &validation,
    )
    .unwrap();
    let claims = data.claims;
    assert_eq!(claims["sub"], alice.sub);
    assert_eq!(claims["name"], alice.preferred_username);
    assert_eq!(claims["roles"], serde_json::json!(alice.roles));
    assert_eq!(claims["groups"], serde_json::json!(alice.groups));
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 120);
}

#[tokio::test]
async fn a_configured_rsa_signing_key_signs_rs256() {
    let op = FakeOp::start().await;
    let targets = format!(
        "[signing]\nkey_file = \"{}\"\n[[targets]]\nurl = \"https://gis.example.com/\"\nstrategy = \"jwt\"\naudience = \"gis\"\n",
        fixture_path("op-rsa-2.pem").display()
    );
    let app = app_with(&op, &targets).await;
    app.login(&TestUser::alice()).await;
    let token = token_value(&app, "https://gis.example.com/").await;
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    assert_eq!(claims_of(&token)["aud"], "gis");
}

#[tokio::test]
async fn fifty_concurrent_requests_for_a_cold_target_make_one_upstream_call() {
    let op = FakeOp::start().await;
    op.add_client("service-a", Some("service-a-secret"));
    op.set_token_delay(300);
    let app = app_with(
        &op,
        &client_credentials_target(&op, "client_secret = \"service-a-secret\""),
    )
    .await;
    app.login(&TestUser::alice()).await;
    let requests = (0..50).map(|_| post_token(&app, "https://meters.example.com/"));
    let responses = join_all(requests).await;
    assert!(responses.iter().all(|response| response.status() == 200));
    assert_eq!(op.token_calls("client_credentials"), 1);
}

#[tokio::test]
async fn two_instances_share_one_upstream_call() {
    let op = FakeOp::start().await;
    op.add_client("service-a", Some("service-a-secret"));
    op.set_token_delay(300);
    let (a, b) = spawn_two_instances(
        &op,
        &client_credentials_target(&op, "client_secret = \"service-a-secret\""),
    )
    .await;
    let client = crate::helpers::browser();
    a.login_with(&client, &TestUser::alice()).await;
    let call = |app: &TestApp| {
        client
            .post(app.url("/token"))
            .header("X-Requested-With", "x")
            .form(&[("target", "https://meters.example.com/")])
            .send()
    };
    let requests = (0..50).map(|index| call(if index % 2 == 0 { &a } else { &b }));
    let responses = join_all(requests).await;
    assert!(
        responses
            .into_iter()
            .all(|response| response.unwrap().status() == 200)
    );
    assert_eq!(op.token_calls("client_credentials"), 1);
}

#[tokio::test]
async fn fifty_concurrent_exchanges_for_one_session_make_one_upstream_call() {
    let op = FakeOp::start().await;
    op.set_token_delay(300);
    let app = app_with(&op, "[[targets]]\nurl = \"https://maps.example.com/\"\nstrategy = \"exchange\"\naudience = \"maps\"\n").await;
    app.login(&TestUser::alice()).await;
    let responses = join_all((0..50).map(|_| post_token(&app, "https://maps.example.com/"))).await;
    assert!(responses.iter().all(|response| response.status() == 200));
    assert_eq!(
        op.token_calls("urn:ietf:params:oauth:grant-type:token-exchange"),
        1
    );
}

#[tokio::test]
async fn cached_tokens_are_sealed_in_redis() {
    let (_op, app) = client_credentials_app().await;
    app.login(&TestUser::alice()).await;
    let token = token_value(&app, "https://meters.example.com/").await;
    let mut redis = redis::Client::open(crate::helpers::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", app.prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut redis)
            .await
            .unwrap();
        if kind == "string" {
            let value: Vec<u8> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut redis)
                .await
                .unwrap();
            assert!(
                !String::from_utf8_lossy(&value).contains(&token[..40]),
                "{key} holds the token in clear"
            );
        }
    }
}
