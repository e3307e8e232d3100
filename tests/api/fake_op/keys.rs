//! Signing keys: the fixtures, the published JWKS, rotation, and tokens signed on
//! demand (arbitrary claims, access tokens, back-channel logout tokens).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey};
use serde_json::{Map, Value, json};

use super::*;

/// Which key signs a token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SigningKeyChoice {
    /// The provider's current signing key (RSA key 1 until rotated).
    #[default]
    Current,
    /// RSA key 2 (`kid` "op-rsa-2"), current after [`FakeOp::rotate_keys`].
    Rotated,
    /// A key never published; by default its tokens carry the current `kid`.
    Attacker,
    /// The provider's P-256 key (`kid` "op-ec", ES256), in the JWKS after
    /// [`FakeOp::publish_ec_key`].
    Ec,
}

/// Describes a back-channel logout token; defaults make a valid one.
///
/// Defaults: header `{alg: RS256, kid: <current>, typ: "logout+jwt"}`; claims
/// `iss`, `aud` = client id, `iat` = now, `exp` = now + 120, random `jti`,
/// `events`, and `sid` / `sub` when given. Overrides replace a claim or header
/// field; [`Value::Null`] (or `remove_*`) removes it.
#[derive(Clone, Debug, Default)]
pub struct LogoutTokenSpec {
    /// `sub` claim.
    pub sub: Option<String>,
    /// `sid` claim.
    pub sid: Option<String>,
    /// Claim overrides (`null` removes).
    pub claims: Map<String, Value>,
    /// Header overrides (`null` removes).
    pub header: Map<String, Value>,
    /// Signing key.
    pub key: SigningKeyChoice,
}

impl LogoutTokenSpec {
    /// A token naming only a provider session id.
    pub fn for_sid(sid: &str) -> Self {
        Self {
            sid: Some(sid.to_owned()),
            ..Self::default()
        }
    }

    /// A token naming only a subject.
    pub fn for_sub(sub: &str) -> Self {
        Self {
            sub: Some(sub.to_owned()),
            ..Self::default()
        }
    }

    /// A token naming both subject and session id.
    pub fn for_session(sub: &str, sid: &str) -> Self {
        Self {
            sub: Some(sub.to_owned()),
            sid: Some(sid.to_owned()),
            ..Self::default()
        }
    }

    /// Sets (or with `Value::Null` removes) a claim.
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim (also a default one like `exp`).
    pub fn remove_claim(self, name: &str) -> Self {
        self.claim(name, Value::Null)
    }

    /// Sets (or with `Value::Null` removes) a header field, e.g. `alg`, `kid`, `typ`.
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header field.
    pub fn remove_header(self, name: &str) -> Self {
        self.header(name, Value::Null)
    }

    /// Signs with another key.
    pub fn signed_with(mut self, key: SigningKeyChoice) -> Self {
        self.key = key;
        self
    }
}
pub(super) struct KeyMaterial {
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
    public_pem: &'static str,
    jwk: Value,
}

impl KeyMaterial {
    pub(super) fn load(
        kid: &'static str,
        alg: Algorithm,
        private_pem: &'static str,
        public_pem: &'static str,
    ) -> Self {
        let encoding = match alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(private_pem.as_bytes()),
        }
        .unwrap_or_else(|e| panic!("fixture key {kid}: {e}"));
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Self {
            kid,
            alg,
            encoding,
            public_pem,
            jwk: serde_json::to_value(&jwk).unwrap(),
        }
    }
}

impl Inner {
    pub(super) fn key(&self, id: KeyId) -> &KeyMaterial {
        &self.keys[&id]
    }

    pub(super) fn resolve(&self, st: &State, choice: SigningKeyChoice) -> KeyId {
        match choice {
            SigningKeyChoice::Current => st.current_key,
            SigningKeyChoice::Rotated => KeyId::Rsa2,
            SigningKeyChoice::Attacker => KeyId::Attacker,
            SigningKeyChoice::Ec => KeyId::Ec,
        }
    }

    /// Default header for a key: its alg, its kid (the attacker borrows the current kid).
    pub(super) fn default_header(&self, st: &State, key: KeyId, typ: &str) -> Map<String, Value> {
        let km = self.key(key);
        let kid = if key == KeyId::Attacker {
            self.key(st.current_key).kid
        } else {
            km.kid
        };
        let mut h = Map::new();
        h.insert("alg".into(), json!(format!("{:?}", km.alg)));
        h.insert("typ".into(), json!(typ));
        h.insert("kid".into(), json!(kid));
        h
    }

    /// Encodes with full control: `alg` none = unsigned, HS* = HMAC keyed with
    /// the key's public PEM (key confusion), anything else signs with the key.
    pub(super) fn encode(&self, header: &Map<String, Value>, claims: &Value, key: KeyId) -> String {
        let km = self.key(key);
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("none");
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap()),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap())
        );
        let signature = if alg.eq_ignore_ascii_case("none") {
            String::new()
        } else {
            let algorithm: Algorithm = alg
                .parse()
                .unwrap_or_else(|e| panic!("FakeOp: unsupported alg {alg:?}: {e}"));
            let signing_key = if algorithm.family() == AlgorithmFamily::Hmac {
                EncodingKey::from_secret(km.public_pem.as_bytes())
            } else {
                km.encoding.clone()
            };
            jsonwebtoken::crypto::sign(message.as_bytes(), &signing_key, algorithm)
                .unwrap_or_else(|e| panic!("FakeOp: cannot sign {alg} with key {}: {e}", km.kid))
        };
        format!("{message}.{signature}")
    }
    pub(super) fn jwks(&self, st: &State) -> Value {
        let keys: Vec<Value> = st
            .published
            .iter()
            .map(|k| self.key(*k).jwk.clone())
            .collect();
        json!({ "keys": keys })
    }
}

impl FakeOp {
    // ---- keys and minting ----

    /// Signs arbitrary claims. Default header `{alg, typ: "JWT", kid}` of the key
    /// (the attacker key borrows the current kid); `header_overrides` (a JSON
    /// object or `Value::Null`) replaces fields, `null` removes. `alg: "none"`
    /// gives an unsigned token; `alg: "HS256"` signs with the key's public PEM
    /// as HMAC secret (key confusion).
    pub fn sign(&self, claims: Value, key: SigningKeyChoice, header_overrides: Value) -> String {
        let st = self.st();
        let key = self.inner.resolve(&st, key);
        let mut header = self.inner.default_header(&st, key, "JWT");
        if let Some(o) = header_overrides.as_object() {
            merge(&mut header, o);
        }
        self.inner.encode(&header, &claims, key)
    }

    /// A back-channel logout token per `spec` (valid unless the spec breaks it).
    pub fn logout_token(&self, spec: LogoutTokenSpec) -> String {
        let st = self.st();
        let key = self.inner.resolve(&st, spec.key);
        let iat = now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.inner.issuer));
        claims.insert("aud".into(), json!(DEFAULT_CLIENT_ID));
        claims.insert("iat".into(), json!(iat));
        claims.insert("exp".into(), json!(iat + 120));
        claims.insert("jti".into(), json!(random_string(16)));
        claims.insert("events".into(), json!({ BACKCHANNEL_LOGOUT_EVENT: {} }));
        if let Some(sub) = &spec.sub {
            claims.insert("sub".into(), json!(sub));
        }
        if let Some(sid) = &spec.sid {
            claims.insert("sid".into(), json!(sid));
        }
        merge(&mut claims, &spec.claims);
        let mut header = self.inner.default_header(&st, key, "logout+jwt");
        merge(&mut header, &spec.header);
        self.inner.encode(&header, &Value::Object(claims), key)
    }

    /// A JWT access token for `user` (client "identity", no sid) accepted by
    /// userinfo, introspection and token exchange; `ttl_secs` may be negative.
    pub fn access_token_for(&self, user: &TestUser, aud: &str, ttl_secs: i64) -> String {
        let mut st = self.st();
        self.inner.mint_access(
            &mut st,
            Some(user),
            &user.sub,
            DEFAULT_CLIENT_ID,
            json!(aud),
            Some("openid profile email"),
            None,
            ttl_secs,
        )
    }

    /// An opaque (non-JWT) access token for `user`, known to introspection and userinfo.
    pub fn opaque_token_for(&self, user: &TestUser, aud: &str, ttl_secs: i64) -> String {
        let token = random_string(32);
        let iat = now();
        self.st().access_tokens.insert(
            token.clone(),
            IssuedToken {
                user: Some(user.clone()),
                sub: user.sub.clone(),
                client_id: DEFAULT_CLIENT_ID.to_owned(),
                aud: json!(aud),
                scope: Some("openid profile email".to_owned()),
                sid: None,
                iat,
                exp: iat + ttl_secs,
            },
        );
        token
    }

    /// Makes an issued access token inactive (introspection, userinfo, exchange).
    pub fn revoke_access_token(&self, token: &str) {
        self.st().revoked_access.insert(token.to_owned());
    }

    /// Adds the P-256 key (`kid` "op-ec") to the JWKS, beside the RSA key(s).
    pub fn publish_ec_key(&self) {
        let mut st = self.st();
        if !st.published.contains(&KeyId::Ec) {
            st.published.push(KeyId::Ec);
        }
    }

    /// Signs the ID tokens of following code exchanges and refreshes with `key` (its own
    /// algorithm, e.g. ES256 for [`SigningKeyChoice::Ec`]) instead of the current key.
    pub fn sign_id_tokens_with(&self, key: SigningKeyChoice) {
        let mut st = self.st();
        let id = self.inner.resolve(&st, key);
        st.id_token_key = Some(id);
    }

    /// Publishes the EC P-256 key and signs the ID tokens with it (ES256) from now on.
    pub fn use_ec_signing_key(&self) {
        self.publish_ec_key();
        self.sign_id_tokens_with(SigningKeyChoice::Ec);
    }

    /// Publishes RSA key 2 and signs with it from now on; `keep_old` keeps key 1 in the JWKS.
    pub fn rotate_keys(&self, keep_old: bool) {
        let mut st = self.st();
        st.current_key = KeyId::Rsa2;
        st.published = if keep_old {
            vec![KeyId::Rsa2, KeyId::Rsa1]
        } else {
            vec![KeyId::Rsa2]
        };
    }
}
