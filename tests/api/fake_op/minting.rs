//! Minting: access tokens (JWT or opaque), ID tokens (with the configured
//! defects) and refresh tokens, as the grants hand them out.

use serde_json::{Value, json};

use super::*;

impl Inner {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mint_access(
        &self,
        st: &mut State,
        user: Option<&TestUser>,
        sub: &str,
        client_id: &str,
        aud: Value,
        scope: Option<&str>,
        sid: Option<&str>,
        ttl: i64,
    ) -> String {
        let iat = now();
        let mut claims = user.map(TestUser::claims).unwrap_or_default();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(sub));
        claims.insert("aud".into(), aud.clone());
        claims.insert("iat".into(), json!(iat));
        claims.insert("exp".into(), json!(iat + ttl));
        claims.insert("jti".into(), json!(random_string(16)));
        claims.insert("client_id".into(), json!(client_id));
        claims.insert("azp".into(), json!(client_id));
        if let Some(scope) = scope {
            claims.insert("scope".into(), json!(scope));
        }
        if let Some(sid) = sid {
            claims.insert("sid".into(), json!(sid));
        }
        let header = self.default_header(st, st.current_key, "at+jwt");
        let token = self.encode(&header, &Value::Object(claims), st.current_key);
        st.access_tokens.insert(
            token.clone(),
            IssuedToken {
                user: user.cloned(),
                sub: sub.to_owned(),
                client_id: client_id.to_owned(),
                aud,
                scope: scope.map(str::to_owned),
                sid: sid.map(str::to_owned),
                iat,
                exp: iat + ttl,
            },
        );
        token
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn mint_id_token(
        &self,
        st: &State,
        user: &TestUser,
        client_id: &str,
        nonce: Option<&str>,
        sid: Option<&str>,
        auth_time: i64,
        fault: Option<IdTokenFault>,
    ) -> String {
        let iat = now();
        let mut c = user.claims();
        c.insert("iss".into(), json!(self.issuer));
        c.insert("aud".into(), json!(client_id));
        c.insert("iat".into(), json!(iat));
        c.insert("exp".into(), json!(iat + ID_TOKEN_TTL));
        c.insert("auth_time".into(), json!(auth_time));
        if let Some(nonce) = nonce {
            c.insert("nonce".into(), json!(nonce));
        }
        if let Some(sid) = sid {
            c.insert("sid".into(), json!(sid));
        }
        if st.id_token_azp {
            c.insert("azp".into(), json!(client_id));
        }
        let mut key = st.id_token_key.unwrap_or(st.current_key);
        let mut header = self.default_header(st, key, "JWT");
        match fault {
            None => {}
            Some(IdTokenFault::WrongNonce) => {
                c.insert("nonce".into(), json!("not-the-nonce-you-sent"));
            }
            Some(IdTokenFault::NoNonce) => {
                c.remove("nonce");
            }
            Some(IdTokenFault::WrongAudience) => {
                c.insert("aud".into(), json!("someone-else"));
            }
            Some(IdTokenFault::WrongIssuer) => {
                c.insert("iss".into(), json!("https://evil.example.com"));
            }
            Some(IdTokenFault::Expired) => {
                c.insert("iat".into(), json!(iat - 7200));
                c.insert("exp".into(), json!(iat - 3600));
            }
            Some(IdTokenFault::IssuedInFuture) => {
                c.insert("iat".into(), json!(iat + 3600));
                c.insert("exp".into(), json!(iat + 7200));
            }
            Some(IdTokenFault::BadSignature) => {
                key = KeyId::Attacker;
            }
            Some(IdTokenFault::UnknownKid) => {
                key = KeyId::Attacker;
                header.insert("kid".into(), json!("unknown-kid"));
            }
            Some(IdTokenFault::AlgNone) => {
                header.insert("alg".into(), json!("none"));
            }
            Some(IdTokenFault::HmacKeyConfusion) => {
                header.insert("alg".into(), json!("HS256"));
            }
            Some(IdTokenFault::MultipleAudNoAzp) => {
                c.insert("aud".into(), json!([client_id, "other-client"]));
                c.remove("azp");
            }
            Some(IdTokenFault::WrongAzp) => {
                c.insert("azp".into(), json!("other-client"));
            }
        }
        self.encode(&header, &Value::Object(c), key)
    }

    pub(super) fn new_refresh(
        &self,
        st: &mut State,
        grant_id: Option<u64>,
        client_id: &str,
        subject: GrantSubject,
        scope: Option<&str>,
        aud: Value,
    ) -> String {
        let grant_id = grant_id.unwrap_or_else(|| {
            st.next_grant += 1;
            st.next_grant
        });
        let token = random_string(32);
        st.refresh.insert(
            token.clone(),
            RefreshGrant {
                grant_id,
                client_id: client_id.to_owned(),
                subject,
                scope: scope.map(str::to_owned),
                aud,
                used: false,
            },
        );
        token
    }
}
