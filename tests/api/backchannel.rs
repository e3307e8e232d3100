//! `POST /backchannel-logout`: valid tokens end exactly the right sessions everywhere;
//! every malformed, forged or replayed token is 400 INVALID_LOGOUT_TOKEN.

use crate::fake_op::{FakeOp, LogoutTokenSpec, SigningKeyChoice, TestUser};
use crate::helpers::{TestApp, assert_error, browser, spawn_app, spawn_two_instances};

async fn post_logout_token(app: &TestApp, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/backchannel-logout"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap()
}

async fn assert_refused(app: &TestApp, token: &str) {
    let response = post_logout_token(app, token).await;
    assert_error(response, 400, "INVALID_LOGOUT_TOKEN").await;
}

/// An app with alice logged in; returns her browser and the provider sid.
async fn alice_logged_in() -> (TestApp, reqwest::Client, String) {
    let app = spawn_app().await;
    let client = browser();
    assert_eq!(
        app.login_with(&client, &TestUser::alice()).await.status(),
        302
    );
    let sid = app.op.sid_of_last_login().unwrap();
    (app, client, sid)
}

#[tokio::test]
async fn a_valid_token_ends_the_sessions_of_that_sid_only() {
    let (app, alice_here, sid) = alice_logged_in().await;
    let alice_elsewhere = browser();
    app.login_with(&alice_elsewhere, &TestUser::alice()).await;
    let bob = browser();
    app.login_with(&bob, &TestUser::bob()).await;

    let response = post_logout_token(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_session("alice", &sid)),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"success": true})
    );

    assert_eq!(app.userinfo_with(&alice_here).await["authenticated"], false);
    assert_eq!(
        app.userinfo_with(&alice_elsewhere).await["authenticated"],
        true
    );
    assert_eq!(app.userinfo_with(&bob).await["authenticated"], true);
}

#[tokio::test]
async fn a_sub_only_token_ends_every_session_of_that_user() {
    let app = spawn_app().await;
    let alice = TestUser::alice();
    let browsers: Vec<_> = (0..3).map(|_| browser()).collect();
    for client in &browsers {
        app.login_with(client, &alice).await;
    }
    let bob = browser();
    app.login_with(&bob, &TestUser::bob()).await;
    let response = post_logout_token(
        &app,
        &app.op.logout_token(LogoutTokenSpec::for_sub(&alice.sub)),
    )
    .await;
    assert_eq!(response.status(), 200);
    for client in &browsers {
        assert_eq!(app.userinfo_with(client).await["authenticated"], false);
    }
    assert_eq!(app.userinfo_with(&bob).await["authenticated"], true);
}

#[tokio::test]
async fn a_logout_on_one_instance_ends_the_session_on_the_other() {
    let op = FakeOp::start().await;
    let (a, b) = spawn_two_instances(&op, "").await;
    let client = browser();
    a.login_with(&client, &TestUser::alice()).await;
    let sid = op.sid_of_last_login().unwrap();
    assert_eq!(
        post_logout_token(&b, &op.logout_token(LogoutTokenSpec::for_sid(&sid)))
            .await
            .status(),
        200
    );
    assert_eq!(a.userinfo_with(&client).await["authenticated"], false);
}

#[tokio::test]
async fn a_token_matching_no_session_is_still_success() {
    let app = spawn_app().await;
    let response = post_logout_token(
        &app,
        &app.op.logout_token(LogoutTokenSpec::for_sid("no-such-sid")),
    )
    .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn lemonldap_style_tokens_with_typ_jwt_and_no_exp_are_accepted() {
    let (app, client, sid) = alice_logged_in().await;
    let token = app.op.logout_token(
        LogoutTokenSpec::for_sid(&sid)
            .header("typ", "JWT")
            .remove_claim("exp"),
    );
    assert_eq!(post_logout_token(&app, &token).await.status(), 200);
    assert_eq!(app.userinfo_with(&client).await["authenticated"], false);
}

#[tokio::test]
async fn a_token_without_typ_is_accepted() {
    let (app, client, sid) = alice_logged_in().await;
    let token = app
        .op
        .logout_token(LogoutTokenSpec::for_sid(&sid).remove_header("typ"));
    assert_eq!(post_logout_token(&app, &token).await.status(), 200);
    assert_eq!(app.userinfo_with(&client).await["authenticated"], false);
}

#[tokio::test]
async fn a_replayed_token_is_refused_and_the_first_use_counts() {
    let (app, client, sid) = alice_logged_in().await;
    let token = app.op.logout_token(LogoutTokenSpec::for_sid(&sid));
    assert_eq!(post_logout_token(&app, &token).await.status(), 200);
    assert_eq!(app.userinfo_with(&client).await["authenticated"], false);
    assert_refused(&app, &token).await;
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_once_and_then_verifies() {
    let (app, client, sid) = alice_logged_in().await;
    app.op.rotate_keys(false);
    let before = app.op.jwks_calls();
    let token = app
        .op
        .logout_token(LogoutTokenSpec::for_sid(&sid).signed_with(SigningKeyChoice::Rotated));
    assert_eq!(post_logout_token(&app, &token).await.status(), 200);
    assert_eq!(app.userinfo_with(&client).await["authenticated"], false);
    assert_eq!(app.op.jwks_calls(), before + 1);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_causes_at_most_one_jwks_fetch() {
    let app = spawn_app().await;
    let before = app.op.jwks_calls();
    for index in 0..20 {
        let token = app.op.logout_token(
            LogoutTokenSpec::for_sid("x")
                .signed_with(SigningKeyChoice::Attacker)
                .header("kid", format!("junk-{index}")),
        );
        assert_refused(&app, &token).await;
    }
    assert!(
        app.op.jwks_calls() <= before + 1,
        "{} fetches",
        app.op.jwks_calls() - before
    );
}

// One test per refusal class (Back-Channel Logout 1.0 section 2.6 and SPEC 2).

#[tokio::test]
async fn refuses_a_bad_signature() {
    let app = spawn_app().await;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").signed_with(SigningKeyChoice::Attacker)),
    )
    .await;
}

#[tokio::test]
async fn refuses_a_key_the_provider_never_published() {
    let app = spawn_app().await;
    let token = app.op.logout_token(
        LogoutTokenSpec::for_sid("s")
            .signed_with(SigningKeyChoice::Attacker)
            .header("kid", "never-published"),
    );
    assert_refused(&app, &token).await;
}

#[tokio::test]
async fn refuses_alg_none() {
    let app = spawn_app().await;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").header("alg", "none")),
    )
    .await;
}

#[tokio::test]
async fn refuses_hmac_signed_with_the_public_key() {
    let app = spawn_app().await;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").header("alg", "HS256")),
    )
    .await;
}

#[tokio::test]
async fn refuses_a_wrong_issuer() {
    let app = spawn_app().await;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").claim("iss", "https://evil.example")),
    )
    .await;
}

#[tokio::test]
async fn refuses_an_audience_without_our_client_id() {
    let app = spawn_app().await;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").claim("aud", "someone-else")),
    )
    .await;
    assert_refused(
        &app,
        &app.op.logout_token(
            LogoutTokenSpec::for_sid("s").claim("aud", serde_json::json!(["a", "b"])),
        ),
    )
    .await;
}

#[tokio::test]
async fn accepts_an_audience_array_with_our_client_id() {
    let app = spawn_app().await;
    let token = app.op.logout_token(
        LogoutTokenSpec::for_sid("s").claim("aud", serde_json::json!(["other", "identity"])),
    );
    assert_eq!(post_logout_token(&app, &token).await.status(), 200);
}

#[tokio::test]
async fn refuses_a_missing_iat() {
    let app = spawn_app().await;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").remove_claim("iat")),
    )
    .await;
}

#[tokio::test]
async fn refuses_an_iat_in_the_future_beyond_the_skew() {
    let app = spawn_app().await;
    let future = chrono::Utc::now().timestamp() + 120;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").claim("iat", future)),
    )
    .await;
}

#[tokio::test]
async fn accepts_an_iat_within_the_skew() {
    let app = spawn_app().await;
    let near_future = chrono::Utc::now().timestamp() + 30;
    let token = app
        .op
        .logout_token(LogoutTokenSpec::for_sid("s").claim("iat", near_future));
    assert_eq!(post_logout_token(&app, &token).await.status(), 200);
}

#[tokio::test]
async fn refuses_an_iat_older_than_max_age() {
    let app = spawn_app().await;
    let old = chrono::Utc::now().timestamp() - 6 * 60;
    assert_refused(
        &app,
        &app.op.logout_token(
            LogoutTokenSpec::for_sid("s")
                .claim("iat", old)
                .claim("exp", old + 3600),
        ),
    )
    .await;
}

#[tokio::test]
async fn refuses_an_exp_in_the_past() {
    let app = spawn_app().await;
    let past = chrono::Utc::now().timestamp() - 10;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").claim("exp", past)),
    )
    .await;
}

#[tokio::test]
async fn refuses_a_missing_jti() {
    let app = spawn_app().await;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").remove_claim("jti")),
    )
    .await;
}

#[tokio::test]
async fn refuses_missing_events() {
    let app = spawn_app().await;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").remove_claim("events")),
    )
    .await;
    assert_refused(
        &app,
        &app.op.logout_token(
            LogoutTokenSpec::for_sid("s").claim("events", serde_json::json!({"other": {}})),
        ),
    )
    .await;
}

#[tokio::test]
async fn refuses_an_event_member_that_is_not_an_object() {
    let app = spawn_app().await;
    let events = serde_json::json!({"http://schemas.openid.net/event/backchannel-logout": "yes"});
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").claim("events", events)),
    )
    .await;
}

#[tokio::test]
async fn refuses_a_nonce() {
    let app = spawn_app().await;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").claim("nonce", "n")),
    )
    .await;
}

#[tokio::test]
async fn refuses_neither_sid_nor_sub() {
    let app = spawn_app().await;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").remove_claim("sid")),
    )
    .await;
}

#[tokio::test]
async fn refuses_a_foreign_typ() {
    let app = spawn_app().await;
    assert_refused(
        &app,
        &app.op
            .logout_token(LogoutTokenSpec::for_sid("s").header("typ", "at+jwt")),
    )
    .await;
}

#[tokio::test]
async fn refuses_two_logout_token_fields() {
    let app = spawn_app().await;
    let token = app.op.logout_token(LogoutTokenSpec::for_sid("s"));
    let response = reqwest::Client::new()
        .post(app.url("/backchannel-logout"))
        .form(&[
            ("logout_token", token.as_str()),
            ("logout_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "INVALID_LOGOUT_TOKEN").await;
}

#[tokio::test]
async fn refuses_a_body_that_is_not_a_jwt_or_has_no_token() {
    let app = spawn_app().await;
    for token in ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.", ""] {
        assert_refused(&app, token).await;
    }
    let client = reqwest::Client::new();
    let no_field = client
        .post(app.url("/backchannel-logout"))
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();
    assert_error(no_field, 400, "INVALID_LOGOUT_TOKEN").await;
    let json_body = client
        .post(app.url("/backchannel-logout"))
        .json(&serde_json::json!({"logout_token": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(json_body, 400, "INVALID_LOGOUT_TOKEN").await;
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let app = spawn_app().await;
    let huge = "a".repeat(70 * 1024);
    let response = reqwest::Client::new()
        .post(app.url("/backchannel-logout"))
        .form(&[("logout_token", huge.as_str())])
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "PAYLOAD_TOO_LARGE").await;
}

/// Serves `body` instead of the provider's own answer at `path`.
async fn override_endpoint(op: &FakeOp, path: &str, body: serde_json::Value) {
    wiremock::Mock::given(wiremock::matchers::path(path))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(body))
        .with_priority(1)
        .mount(op.server())
        .await;
}

#[tokio::test]
async fn refuses_an_algorithm_the_provider_does_not_list_for_id_tokens() {
    // The provider publishes a P-256 key of its own, but its discovery lists only RS256.
    let op = FakeOp::start().await;
    let discovery_url = format!("{}/.well-known/openid-configuration", op.issuer());
    let mut discovery: serde_json::Value = reqwest::get(&discovery_url)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    discovery["id_token_signing_alg_values_supported"] = serde_json::json!(["RS256"]);
    override_endpoint(&op, "/.well-known/openid-configuration", discovery).await;
    let ec_pem = std::fs::read(crate::fake_op::fixture_path("op-ec.pem")).unwrap();
    let ec_key = jsonwebtoken::EncodingKey::from_ec_pem(&ec_pem).unwrap();
    let mut ec_jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&ec_key, jsonwebtoken::Algorithm::ES256).unwrap();
    ec_jwk.common.key_id = Some("op-ec".to_owned());
    let mut jwks: serde_json::Value = reqwest::get(format!("{}/jwks", op.issuer()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::to_value(&ec_jwk).unwrap());
    override_endpoint(&op, "/jwks", jwks).await;
    let app = crate::helpers::spawn_app_for(&op, crate::helpers::AppOptions::default()).await;
    let client = browser();
    assert_eq!(
        app.login_with(&client, &TestUser::alice()).await.status(),
        302
    );
    let sid = op.sid_of_last_login().unwrap();
    let now = chrono::Utc::now().timestamp();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("op-ec".to_owned());
    header.typ = Some("logout+jwt".to_owned());
    let claims = serde_json::json!({"iss": op.issuer(), "aud": "identity", "iat": now, "exp": now + 120,
        "jti": format!("jti-{now}"), "sid": sid,
        "events": {crate::fake_op::BACKCHANNEL_LOGOUT_EVENT: {}}});
    let es256 = jsonwebtoken::encode(&header, &claims, &ec_key).unwrap();
    assert_refused(&app, &es256).await;
    assert_eq!(app.userinfo_with(&client).await["authenticated"], true);
    // The same provider's RS256 logout token is fine.
    let rs256 = op.logout_token(LogoutTokenSpec::for_sid(&sid));
    assert_eq!(post_logout_token(&app, &rs256).await.status(), 200);
    assert_eq!(app.userinfo_with(&client).await["authenticated"], false);
}
