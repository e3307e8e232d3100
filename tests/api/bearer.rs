//! Bearer callers (SPEC 5): JWT access tokens and introspected opaque tokens.

use std::time::Duration;

use crate::fake_op::{SigningKeyChoice, TestUser};
use crate::helpers::{AppOptions, TestApp, assert_error, spawn_app, spawn_app_with};

async fn bearer_app(extra: &str) -> TestApp {
    spawn_app_with(AppOptions {
        provider_extra: format!("accept_bearer = true\nbearer_audience = \"identity\"\n{extra}"),
        ..AppOptions::default()
    })
    .await
}

async fn userinfo_with_token(app: &TestApp, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_valid_jwt_access_token_identifies_the_caller() {
    let app = bearer_app("").await;
    let alice = TestUser::alice();
    let token = app.op.access_token_for(&alice, "identity", 300);
    let response = userinfo_with_token(&app, &token).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["authenticated"], true);
    assert_eq!(body["subject"], alice.sub);
    assert_eq!(body["provider"], "local");
    assert_eq!(body["roles"], serde_json::json!(alice.roles));
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(body["expiresAt"].as_str().unwrap()).unwrap();
    assert!((expires_at.timestamp() - (chrono::Utc::now().timestamp() + 300)).abs() <= 5);
}

#[tokio::test]
async fn bad_bearer_tokens_are_401() {
    let app = bearer_app("").await;
    let alice = TestUser::alice();
    let now = chrono::Utc::now().timestamp();
    let bad = [
        "garbage".to_owned(),
        app.op.access_token_for(&alice, "identity", -60),
        app.op.access_token_for(&alice, "someone-else", 300),
        app.op.sign(
            serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300}),
            SigningKeyChoice::Attacker,
            serde_json::Value::Null,
        ),
        app.op.sign(
            serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300}),
            SigningKeyChoice::Current,
            serde_json::json!({"alg": "none"}),
        ),
        app.op.sign(
            serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300}),
            SigningKeyChoice::Current,
            serde_json::json!({"alg": "HS256"}),
        ),
        app.op.sign(
            serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300, "nbf": now + 200}),
            SigningKeyChoice::Current,
            serde_json::Value::Null,
        ),
        app.op.sign(
            serde_json::json!({"iss": "https://evil.example", "sub": "x", "aud": "identity", "exp": now + 300}),
            SigningKeyChoice::Attacker,
            serde_json::Value::Null,
        ),
    ];
    for token in bad {
        assert_error(userinfo_with_token(&app, &token).await, 401, "UNAUTHORIZED").await;
    }
}

#[tokio::test]
async fn a_bad_bearer_token_is_401_even_with_a_valid_cookie() {
    let app = bearer_app("").await;
    app.login(&TestUser::alice()).await;
    let response = app
        .client
        .get(app.url("/userinfo"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "UNAUTHORIZED").await;
    let other_scheme = app
        .client
        .get(app.url("/userinfo"))
        .header("Authorization", "Basic Zm9vOmJhcg==")
        .send()
        .await
        .unwrap();
    assert_eq!(
        other_scheme.json::<serde_json::Value>().await.unwrap()["authenticated"],
        true
    );
}

#[tokio::test]
async fn without_a_provider_accepting_bearer_tokens_a_bearer_header_is_401() {
    let app = spawn_app().await;
    let token = app.op.access_token_for(&TestUser::alice(), "identity", 300);
    assert_error(userinfo_with_token(&app, &token).await, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn opaque_tokens_are_introspected_and_cached_within_their_lifetime() {
    let app = bearer_app("introspection = true").await;
    let alice = TestUser::alice();
    let token = app.op.opaque_token_for(&alice, "identity", 300);
    for _ in 0..5 {
        let response = userinfo_with_token(&app, &token).await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["subject"],
            alice.sub
        );
    }
    assert_eq!(app.op.introspection_calls(), 1, "answers are cached");
}

#[tokio::test]
async fn the_introspection_cache_never_outlives_the_token() {
    let app = bearer_app("introspection = true").await;
    let token = app.op.opaque_token_for(&TestUser::alice(), "identity", 2);
    assert_eq!(userinfo_with_token(&app, &token).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_error(userinfo_with_token(&app, &token).await, 401, "UNAUTHORIZED").await;
    assert_eq!(app.op.introspection_calls(), 2);
}

#[tokio::test]
async fn inactive_or_foreign_audience_introspection_answers_are_401() {
    let app = bearer_app("introspection = true").await;
    let token = app.op.opaque_token_for(&TestUser::alice(), "identity", 300);
    app.op.revoke_access_token(&token);
    assert_error(userinfo_with_token(&app, &token).await, 401, "UNAUTHORIZED").await;
    let foreign = app
        .op
        .opaque_token_for(&TestUser::alice(), "someone-else", 300);
    assert_error(
        userinfo_with_token(&app, &foreign).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_error(
        userinfo_with_token(&app, "opaque-garbage").await,
        401,
        "UNAUTHORIZED",
    )
    .await;
}

#[tokio::test]
async fn an_id_token_is_not_accepted_as_a_bearer_token() {
    let app = bearer_app("").await;
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300, "iat": now, "nonce": "n"});
    let id_token = app
        .op
        .sign(claims, SigningKeyChoice::Current, serde_json::Value::Null);
    assert_error(
        userinfo_with_token(&app, &id_token).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let keycloak_style = app.op.sign(
        serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300, "typ": "ID"}),
        SigningKeyChoice::Current,
        serde_json::Value::Null,
    );
    assert_error(
        userinfo_with_token(&app, &keycloak_style).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let logout_typed = app.op.sign(
        serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300}),
        SigningKeyChoice::Current,
        serde_json::json!({"typ": "logout+jwt"}),
    );
    assert_error(
        userinfo_with_token(&app, &logout_typed).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    let access_typed = app.op.sign(
        serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300}),
        SigningKeyChoice::Current,
        serde_json::json!({"typ": "at+jwt"}),
    );
    assert_eq!(userinfo_with_token(&app, &access_typed).await.status(), 200);
}

async fn userinfo_with_raw_authorization(app: &TestApp, value: &[u8]) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/userinfo"))
        .header(
            "Authorization",
            reqwest::header::HeaderValue::from_bytes(value).unwrap(),
        )
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_bearer_header_that_is_not_ascii_is_401() {
    for app in [bearer_app("").await, spawn_app().await] {
        for value in [
            &b"Bearer caf\xe9"[..],
            b"bearer \xe9t\xe9",
            b"Bearer",
            b"Bearer   ",
        ] {
            let response = userinfo_with_raw_authorization(&app, value).await;
            assert_error(response, 401, "UNAUTHORIZED").await;
        }
        // Other schemes stay ignored, whatever their bytes.
        let response = userinfo_with_raw_authorization(&app, b"Basic caf\xe9").await;
        assert_eq!(response.status(), 200);
    }
}

#[tokio::test]
async fn a_refreshed_id_token_without_nonce_is_not_a_bearer_token() {
    let app = bearer_app("").await;
    let now = chrono::Utc::now().timestamp();
    // What a refresh returns: aud = our client id (= bearer_audience), no nonce.
    let refreshed_id_token = app.op.sign(
        serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300,
            "iat": now, "auth_time": now - 60, "sid": "s"}),
        SigningKeyChoice::Current,
        serde_json::Value::Null,
    );
    assert_error(
        userinfo_with_token(&app, &refreshed_id_token).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    for marker in ["at_hash", "c_hash"] {
        let token = app.op.sign(
            serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "api", "exp": now + 300, marker: "h"}),
            SigningKeyChoice::Current,
            serde_json::json!({"typ": "at+jwt"}),
        );
        assert_error(userinfo_with_token(&app, &token).await, 401, "UNAUTHORIZED").await;
    }
    // An access token addressed to us that says what it is still passes.
    let access_token = app.op.sign(
        serde_json::json!({"iss": app.op.issuer(), "sub": "x", "aud": "identity", "exp": now + 300,
            "scope": "openid", "client_id": "identity"}),
        SigningKeyChoice::Current,
        serde_json::Value::Null,
    );
    assert_eq!(userinfo_with_token(&app, &access_token).await.status(), 200);
}

#[tokio::test]
async fn fifty_concurrent_requests_with_one_unknown_token_cause_one_introspection() {
    let app = bearer_app("introspection = true").await;
    let responses = futures_util::future::join_all(
        (0..50).map(|_| userinfo_with_token(&app, "an-unknown-opaque-token")),
    )
    .await;
    for response in responses {
        assert_error(response, 401, "UNAUTHORIZED").await;
    }
    assert_eq!(app.op.introspection_calls(), 1);
    // The refusal is remembered: more requests with the same token stay off the provider.
    for _ in 0..5 {
        let response = userinfo_with_token(&app, "an-unknown-opaque-token").await;
        assert_error(response, 401, "UNAUTHORIZED").await;
    }
    assert_eq!(app.op.introspection_calls(), 1);
    // Another token is its own question.
    let response = userinfo_with_token(&app, "another-unknown-token").await;
    assert_error(response, 401, "UNAUTHORIZED").await;
    assert_eq!(app.op.introspection_calls(), 2);
}

/// Counts introspection requests as they arrive and answers each after a pause.
struct SlowIntrospection(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl wiremock::Respond for SlowIntrospection {
    fn respond(&self, _request: &wiremock::Request) -> wiremock::ResponseTemplate {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        wiremock::ResponseTemplate::new(200)
            .set_body_json(serde_json::json!({"active": false}))
            .set_delay(Duration::from_millis(1500))
    }
}

#[tokio::test]
async fn concurrent_introspection_calls_are_bounded() {
    let app = bearer_app("introspection = true").await;
    let arrived = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    wiremock::Mock::given(wiremock::matchers::path("/introspect"))
        .respond_with(SlowIntrospection(arrived.clone()))
        .with_priority(1)
        .mount(app.op.server())
        .await;
    let requests = futures_util::future::join_all((0..40).map(|index| {
        let app = &app;
        async move { userinfo_with_token(app, &format!("distinct-token-{index}")).await }
    }));
    let watch = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        arrived.load(std::sync::atomic::Ordering::SeqCst)
    };
    let (responses, in_first_second) = tokio::join!(requests, watch);
    assert!(
        in_first_second <= identity_service::oidc::bearer::MAX_CONCURRENT_INTROSPECTIONS,
        "{in_first_second} calls at once"
    );
    for response in responses {
        assert_error(response, 401, "UNAUTHORIZED").await;
    }
    assert_eq!(arrived.load(std::sync::atomic::Ordering::SeqCst), 40);
}

#[tokio::test]
async fn opaque_tokens_go_only_to_the_pinned_provider() {
    let other = crate::fake_op::FakeOp::start().await;
    let tail = format!(
        "[[providers]]\nid = \"other\"\nissuer = \"{}\"\nclient_id = \"identity\"\nclient_secret = \"identity-secret\"\naccept_bearer = true\nintrospection = true\n",
        other.issuer()
    );
    let app = spawn_app_with(AppOptions {
        provider_extra:
            "accept_bearer = true\nintrospection = true\nintrospection_for_opaque = true\n"
                .to_owned(),
        tail,
        ..AppOptions::default()
    })
    .await;
    let others_token = other.opaque_token_for(&TestUser::alice(), "identity", 300);
    assert_error(
        userinfo_with_token(&app, &others_token).await,
        401,
        "UNAUTHORIZED",
    )
    .await;
    assert_eq!(app.op.introspection_calls(), 1);
    assert_eq!(
        other.introspection_calls(),
        0,
        "the other provider never sees it"
    );
    let own = app.op.opaque_token_for(&TestUser::alice(), "identity", 300);
    assert_eq!(userinfo_with_token(&app, &own).await.status(), 200);
}

#[tokio::test]
async fn without_a_pin_opaque_tokens_go_to_each_introspecting_provider_in_order() {
    let other = crate::fake_op::FakeOp::start().await;
    let tail = format!(
        "[[providers]]\nid = \"other\"\nissuer = \"{}\"\nclient_id = \"identity\"\nclient_secret = \"identity-secret\"\naccept_bearer = true\nintrospection = true\n",
        other.issuer()
    );
    let app = spawn_app_with(AppOptions {
        provider_extra: "accept_bearer = true\nintrospection = true\n".to_owned(),
        tail,
        ..AppOptions::default()
    })
    .await;
    let others_token = other.opaque_token_for(&TestUser::alice(), "identity", 300);
    let response = userinfo_with_token(&app, &others_token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["provider"],
        "other"
    );
    assert_eq!(
        (app.op.introspection_calls(), other.introspection_calls()),
        (1, 1)
    );
}

#[tokio::test]
async fn introspection_for_opaque_needs_introspection() {
    let op = crate::fake_op::FakeOp::start().await;
    let options = AppOptions {
        provider_extra: "accept_bearer = true\nintrospection_for_opaque = true\n".to_owned(),
        ..AppOptions::default()
    };
    let error = crate::helpers::load_config_text(&crate::helpers::config_text(&op, 1, &options))
        .err()
        .unwrap();
    assert!(error.contains("introspection_for_opaque"), "{error}");
}
