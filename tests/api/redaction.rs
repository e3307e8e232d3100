//! `Debug` of every type that holds a token, verifier, nonce or secret prints `***`
//! in their place, so a `{:?}` in a log line cannot leak one.

use identity_service::oidc::flow::PendingLogin;
use identity_service::oidc::token_endpoint::TokenAnswer;
use identity_service::session::{
    LoadedSession, Profile, ProviderTokens, SessionRecord, SessionTicket, StoredProfile,
};
use identity_service::targets::{CachedToken, IssuedToken};
use serde_json::json;

const SECRETS: &[&str] = &[
    "access-SECRET",
    "refresh-SECRET",
    "id-token-SECRET",
    "verifier-SECRET",
    "nonce-SECRET",
    "binding-SECRET",
    "issued-SECRET",
];

fn assert_redacted(debug: &str) {
    for secret in SECRETS {
        assert!(!debug.contains(secret), "{secret} appears in {debug}");
    }
    assert!(debug.contains("***"), "nothing redacted in {debug}");
}

#[test]
fn debug_of_token_holding_types_shows_no_secret() {
    let answer: TokenAnswer = serde_json::from_value(json!({
        "access_token": "access-SECRET",
        "refresh_token": "refresh-SECRET",
        "id_token": "id-token-SECRET",
        "expires_in": 60,
    }))
    .unwrap();
    assert_redacted(&format!("{answer:?}"));

    let cached = CachedToken {
        value: "access-SECRET".to_owned(),
        issued_at: 1,
        expires_at: 2,
        refresh_token: Some("refresh-SECRET".to_owned()),
    };
    assert_redacted(&format!("{cached:?}"));
    assert_redacted(&format!("{:?}", IssuedToken::from(cached)));
    assert_redacted(&format!(
        "{:?}",
        IssuedToken {
            value: "issued-SECRET".to_owned(),
            expires_at: 2,
        }
    ));

    let pending: PendingLogin = serde_json::from_value(json!({
        "provider": "op",
        "pkce_verifier": "verifier-SECRET",
        "nonce": "nonce-SECRET",
        "return_url": "https://app.example.com/",
    }))
    .unwrap();
    assert_redacted(&format!("{pending:?}"));

    let record = SessionRecord {
        provider: "op".to_owned(),
        subject: "alice".to_owned(),
        sid: None,
        profile: StoredProfile::new(Profile {
            name: "Alice".to_owned(),
            ..Profile::default()
        })
        .unwrap(),
        created_at_ms: 1,
        last_touch_ms: 1,
        tokens: ProviderTokens {
            id_token: Some("id-token-SECRET".to_owned()),
            access_token: Some("access-SECRET".to_owned()),
            refresh_token: Some("refresh-SECRET".to_owned()),
            ..ProviderTokens::default()
        }
        .into(),
    };
    assert_redacted(&format!("{record:?}"));

    let ticket = SessionTicket::generate().unwrap();
    let cookie = ticket.cookie_value();
    let session = LoadedSession {
        ticket,
        record,
        expires_at: 2,
    };
    let debug = format!("{session:?}");
    assert_redacted(&debug);
    assert!(
        !debug.contains(&cookie),
        "the session cookie appears in {debug}"
    );
}
