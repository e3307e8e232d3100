//! An in-process, controllable fake OpenID provider for the integration tests.
//!
//! It runs on a wiremock `MockServer` bound to 127.0.0.1 (random port) and
//! serves discovery, JWKS, token, userinfo, introspection and end-session
//! endpoints. The login page is replaced by [`FakeOp::authorize`], which takes
//! the provider URL our `/login` redirected to and returns the callback URL a
//! browser would be sent back to. Keys come from `tests/fixtures/*.pem`.
//!
//! ```ignore
//! let op = FakeOp::start().await;               // client "identity" / "identity-secret"
//! // config: issuer = op.issuer(), client_id = "identity", client_secret = "identity-secret"
//! let login = client.get(format!("{svc}/login?returnURL=/")).send().await?;   // 302
//! let authorize_url = login.headers()["location"].to_str()?;
//! let callback = op.authorize(authorize_url, &TestUser::alice());         // "<redirect_uri>?code=..&state=..&iss=.."
//! client.get(callback).send().await?;                                      // service exchanges the code
//! let sid = op.sid_of_last_login().unwrap();
//! let logout = op.logout_token(LogoutTokenSpec::for_sid(&sid));            // valid back-channel logout token
//! op.set_id_token_fault(Some(IdTokenFault::WrongNonce));                  // next logins get a bad ID token
//! op.set_access_token_ttl(1); op.set_token_delay(200);                     // refresh / concurrency tests
//! assert_eq!(op.token_calls("refresh_token"), 1);
//! ```
//!
//! Everything panics with a clear message on misuse: this is test code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Validation};
use serde_json::{Map, Value, json};
use url::Url;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Client id registered by default.
pub const DEFAULT_CLIENT_ID: &str = "identity";
/// Client secret of [`DEFAULT_CLIENT_ID`].
pub const DEFAULT_CLIENT_SECRET: &str = "identity-secret";
/// `aud` of access tokens unless changed with [`FakeOp::set_audience`].
pub const DEFAULT_AUDIENCE: &str = "identity";
/// RFC 8693 grant type.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 token type of access tokens.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The event member of a back-channel logout token.
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ID_TOKEN_TTL: i64 = 3600;

/// Private key (PKCS#8 PEM) of a client for `private_key_jwt` tests; its
/// public half is [`CLIENT_RSA_PUBLIC_PEM`]. Path: `fixture_path("client-rsa.pem")`.
pub const CLIENT_RSA_PEM: &str = include_str!("../fixtures/client-rsa.pem");
/// Public key (SPKI PEM) matching [`CLIENT_RSA_PEM`].
pub const CLIENT_RSA_PUBLIC_PEM: &str = include_str!("../fixtures/client-rsa.pub.pem");

const RSA1_PEM: &str = include_str!("../fixtures/op-rsa-1.pem");
const RSA1_PUB: &str = include_str!("../fixtures/op-rsa-1.pub.pem");
const RSA2_PEM: &str = include_str!("../fixtures/op-rsa-2.pem");
const RSA2_PUB: &str = include_str!("../fixtures/op-rsa-2.pub.pem");
const EC_PEM: &str = include_str!("../fixtures/op-ec.pem");
const EC_PUB: &str = include_str!("../fixtures/op-ec.pub.pem");
const ATTACKER_PEM: &str = include_str!("../fixtures/attacker-rsa.pem");
const ATTACKER_PUB: &str = include_str!("../fixtures/attacker-rsa.pub.pem");

/// Absolute path of a file in `tests/fixtures/` (e.g. for `private_key_file`).
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// A user who can log in at the fake provider.
#[derive(Clone, Debug, PartialEq)]
pub struct TestUser {
    /// `sub` claim.
    pub sub: String,
    /// `preferred_username` claim (also the technical-account user name).
    pub preferred_username: String,
    /// `name` claim.
    pub name: String,
    /// `email` claim.
    pub email: String,
    /// Emitted as `roles` and as `realm_access.roles`.
    pub roles: Vec<String>,
    /// `groups` claim.
    pub groups: Vec<String>,
    /// Further claims merged into ID token, access token and userinfo.
    pub extra: Map<String, Value>,
}

impl TestUser {
    /// A user with the given subject and user name, no roles or groups.
    pub fn new(sub: &str, username: &str) -> Self {
        Self {
            sub: sub.to_owned(),
            preferred_username: username.to_owned(),
            name: username.to_owned(),
            email: format!("{username}@example.com"),
            roles: Vec::new(),
            groups: Vec::new(),
            extra: Map::new(),
        }
    }

    /// Alice: roles `admin`, `gis`; group `staff`.
    pub fn alice() -> Self {
        Self {
            sub: "a1b2c3d4-0000-4000-8000-00000000a11c".to_owned(),
            preferred_username: "alice".to_owned(),
            name: "Alice Anderson".to_owned(),
            email: "alice@example.com".to_owned(),
            roles: vec!["admin".to_owned(), "gis".to_owned()],
            groups: vec!["staff".to_owned()],
            extra: Map::new(),
        }
    }

    /// Bob: role `user`; group `guests`.
    pub fn bob() -> Self {
        Self {
            sub: "b0b0b0b0-0000-4000-8000-000000000b0b".to_owned(),
            preferred_username: "bob".to_owned(),
            name: "Bob Builder".to_owned(),
            email: "bob@example.com".to_owned(),
            roles: vec!["user".to_owned()],
            groups: vec!["guests".to_owned()],
            extra: Map::new(),
        }
    }

    /// The profile claims of this user (sub, names, email, roles, groups, extra).
    pub fn claims(&self) -> Map<String, Value> {
        let mut c = Map::new();
        c.insert("sub".into(), json!(self.sub));
        c.insert("preferred_username".into(), json!(self.preferred_username));
        c.insert("name".into(), json!(self.name));
        c.insert("email".into(), json!(self.email));
        c.insert("roles".into(), json!(self.roles));
        c.insert("realm_access".into(), json!({ "roles": self.roles }));
        c.insert("groups".into(), json!(self.groups));
        for (k, v) in &self.extra {
            c.insert(k.clone(), v.clone());
        }
        c
    }
}

/// Which key signs a token.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SigningKeyChoice {
    /// The provider's current signing key (RSA key 1 until rotated).
    #[default]
    Current,
    /// RSA key 1 (`kid` "op-rsa-1").
    Original,
    /// RSA key 2 (`kid` "op-rsa-2"), current after [`FakeOp::rotate_keys`].
    Rotated,
    /// The EC P-256 key (`kid` "op-ec", ES256); published only on request.
    Ec,
    /// A key never published; by default its tokens carry the current `kid`.
    Attacker,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum KeyId {
    Rsa1,
    Rsa2,
    Ec,
    Attacker,
}

/// A defect put into the ID tokens of the following code exchanges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdTokenFault {
    /// `nonce` differs from the one in the authorization request.
    WrongNonce,
    /// No `nonce` at all.
    NoNonce,
    /// `aud` is another client.
    WrongAudience,
    /// `iss` is another issuer.
    WrongIssuer,
    /// `exp` (and `iat`) in the past.
    Expired,
    /// `iat` an hour in the future.
    IssuedInFuture,
    /// Signed by the attacker key with the published `kid`.
    BadSignature,
    /// Signed by the attacker key with a `kid` the JWKS never had.
    UnknownKid,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 with the provider's public key PEM as HMAC secret.
    HmacKeyConfusion,
    /// `aud: [client_id, "other-client"]` and no `azp`.
    MultipleAudNoAzp,
    /// `azp` is another client (single `aud`).
    WrongAzp,
}

/// How a client authenticated at the token or introspection endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClientAuthMethod {
    /// HTTP Basic with form-urlencoded id and secret (RFC 6749 2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// `client_assertion` JWT signed with a registered key (RFC 7523).
    PrivateKeyJwt,
}

/// What the `iss` parameter of the authorization response holds (RFC 9207).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CallbackIss {
    /// The issuer (default).
    #[default]
    Issuer,
    /// No `iss` parameter (a provider without RFC 9207).
    Omit,
    /// This value (mix-up attack).
    Value(String),
}

/// Form or query parameters of a request, in order, repeated names kept.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormParams(pub Vec<(String, String)>);

impl FormParams {
    fn parse(bytes: &[u8]) -> Self {
        Self(
            url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// First value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
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

struct KeyMaterial {
    kid: &'static str,
    alg: Algorithm,
    encoding: EncodingKey,
    private_pem: &'static str,
    public_pem: &'static str,
    jwk: Value,
}

impl KeyMaterial {
    fn load(
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
            private_pem,
            public_pem,
            jwk: serde_json::to_value(&jwk).unwrap(),
        }
    }
}

struct Client {
    secret: Option<String>,
    keys: Vec<DecodingKey>,
    allowed: Option<Vec<ClientAuthMethod>>,
}

#[derive(Clone)]
struct CodeGrant {
    client_id: String,
    user: TestUser,
    nonce: String,
    code_challenge: String,
    redirect_uri: String,
    sid: String,
    scope: String,
    auth_time: i64,
}

#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
enum GrantSubject {
    User {
        user: TestUser,
        sid: Option<String>,
        nonce: Option<String>,
        auth_time: i64,
        id_token: bool,
    },
    Client,
}

#[derive(Clone)]
struct RefreshGrant {
    grant_id: u64,
    client_id: String,
    subject: GrantSubject,
    scope: Option<String>,
    aud: Value,
    used: bool,
}

#[derive(Clone)]
struct IssuedToken {
    user: Option<TestUser>,
    sub: String,
    client_id: String,
    aud: Value,
    scope: Option<String>,
    sid: Option<String>,
    iat: i64,
    exp: i64,
}

struct State {
    clients: HashMap<String, Client>,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshGrant>,
    revoked_grants: HashSet<u64>,
    next_grant: u64,
    access_tokens: HashMap<String, IssuedToken>,
    revoked_access: HashSet<String>,
    technical: HashMap<String, (TestUser, String)>,
    sessions: Vec<(String, String)>,
    seen_assertion_jti: HashSet<String>,
    audience: String,
    access_ttl: i64,
    token_delay: Option<Duration>,
    rotate_refresh: bool,
    issue_refresh: bool,
    refresh_all_revoked: bool,
    cc_refresh: bool,
    token_failure: Option<(u16, String)>,
    id_token_fault: Option<IdTokenFault>,
    id_token_azp: bool,
    callback_iss: CallbackIss,
    current_key: KeyId,
    published: Vec<KeyId>,
    unavailable: bool,
    discovery_override: Map<String, Value>,
    userinfo_override: Map<String, Value>,
    introspection_override: Map<String, Value>,
    calls: HashMap<String, usize>,
    token_calls: HashMap<String, usize>,
    last_authorize: Option<FormParams>,
    last_token_request: HashMap<String, FormParams>,
    last_client_auth: Option<(String, ClientAuthMethod)>,
    last_end_session: Option<FormParams>,
    last_sid: Option<String>,
}

struct Inner {
    issuer: String,
    keys: HashMap<KeyId, KeyMaterial>,
    state: Mutex<State>,
}

/// The fake OpenID provider; cheap to clone (shared state).
#[derive(Clone)]
pub struct FakeOp {
    server: Arc<MockServer>,
    inner: Arc<Inner>,
}

/// An OAuth error answer (kept small; turned into a response at the end).
struct OAuthError {
    status: u16,
    error: String,
    description: &'static str,
}

impl OAuthError {
    fn response(self) -> ResponseTemplate {
        let r = json_response(
            self.status,
            json!({ "error": self.error, "error_description": self.description }),
        );
        match (self.status, self.error.as_str()) {
            (401, "invalid_client") => {
                r.insert_header("www-authenticate", "Basic realm=\"fake-op\"")
            }
            (401, "invalid_token") => {
                r.insert_header("www-authenticate", "Bearer error=\"invalid_token\"")
            }
            _ => r,
        }
    }
}

type Reply = Result<Value, OAuthError>;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn random_string(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buf).unwrap();
    URL_SAFE_NO_PAD.encode(buf)
}

fn json_response(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("cache-control", "no-store")
        .set_body_json(body)
}

fn oauth_error(status: u16, error: &str, description: &'static str) -> OAuthError {
    OAuthError {
        status,
        error: error.to_owned(),
        description,
    }
}

fn invalid_grant(description: &'static str) -> OAuthError {
    oauth_error(400, "invalid_grant", description)
}

fn invalid_request(description: &'static str) -> OAuthError {
    oauth_error(400, "invalid_request", description)
}

fn invalid_client(description: &'static str) -> OAuthError {
    oauth_error(401, "invalid_client", description)
}

/// Percent-decoding with `+` as space (application/x-www-form-urlencoded).
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Applies overrides to a JSON object: `null` removes, anything else replaces.
fn merge(target: &mut Map<String, Value>, overrides: &Map<String, Value>) {
    for (k, v) in overrides {
        if v.is_null() {
            target.remove(k);
        } else {
            target.insert(k.clone(), v.clone());
        }
    }
}

fn aud_contains(aud: Option<&Value>, wanted: &[&str]) -> bool {
    match aud {
        Some(Value::String(s)) => wanted.contains(&s.as_str()),
        Some(Value::Array(a)) => a
            .iter()
            .any(|v| v.as_str().is_some_and(|s| wanted.contains(&s))),
        _ => false,
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(&self, id: KeyId) -> &KeyMaterial {
        &self.keys[&id]
    }

    fn resolve(&self, st: &State, choice: SigningKeyChoice) -> KeyId {
        match choice {
            SigningKeyChoice::Current => st.current_key,
            SigningKeyChoice::Original => KeyId::Rsa1,
            SigningKeyChoice::Rotated => KeyId::Rsa2,
            SigningKeyChoice::Ec => KeyId::Ec,
            SigningKeyChoice::Attacker => KeyId::Attacker,
        }
    }

    /// Default header for a key: its alg, its kid (the attacker borrows the current kid).
    fn default_header(&self, st: &State, key: KeyId, typ: &str) -> Map<String, Value> {
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
    fn encode(&self, header: &Map<String, Value>, claims: &Value, key: KeyId) -> String {
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

    fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    fn discovery(&self, st: &State) -> Value {
        let i = &self.issuer;
        let mut doc = json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "userinfo_endpoint": format!("{i}/userinfo"),
            "jwks_uri": format!("{i}/jwks"),
            "end_session_endpoint": format!("{i}/logout"),
            "introspection_endpoint": format!("{i}/introspect"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "sid", "auth_time",
                "preferred_username", "name", "email", "roles", "realm_access", "groups"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                "password", TOKEN_EXCHANGE_GRANT],
            "token_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "PS256"],
            "introspection_endpoint_auth_methods_supported":
                ["client_secret_basic", "client_secret_post", "private_key_jwt"],
            "code_challenge_methods_supported": ["S256"],
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
            "authorization_response_iss_parameter_supported": true,
        });
        merge(doc.as_object_mut().unwrap(), &st.discovery_override);
        doc
    }

    fn jwks(&self, st: &State) -> Value {
        let keys: Vec<Value> = st
            .published
            .iter()
            .map(|k| self.key(*k).jwk.clone())
            .collect();
        json!({ "keys": keys })
    }

    fn handle(&self, req: &Request) -> ResponseTemplate {
        let path = req.url.path().to_owned();
        let mut st = self.lock();
        *st.calls.entry(path.clone()).or_default() += 1;
        if st.unavailable {
            return oauth_error(
                503,
                "temporarily_unavailable",
                "provider switched off by the test",
            )
            .response();
        }
        match (req.method.as_str(), path.as_str()) {
            ("GET", "/.well-known/openid-configuration") => json_response(200, self.discovery(&st)),
            ("GET", "/jwks") => json_response(200, self.jwks(&st)),
            ("POST", "/token") => self.token(req, &mut st),
            ("GET" | "POST", "/userinfo") => self.userinfo(req, &st),
            ("POST", "/introspect") => self.introspect(req, &mut st),
            ("GET", "/logout") => self.end_session(req, &mut st),
            ("GET", "/authorize") => ResponseTemplate::new(400)
                .set_body_string("fake OP has no login page: call FakeOp::authorize with this URL"),
            _ => oauth_error(404, "not_found", "no such endpoint on the fake OP").response(),
        }
    }

    // ---- client authentication ----

    fn authenticate_client(
        &self,
        req: &Request,
        form: &FormParams,
        st: &mut State,
    ) -> Result<String, OAuthError> {
        let basic = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.get(..6)
                    .filter(|p| p.eq_ignore_ascii_case("basic "))
                    .map(|_| v[6..].trim().to_owned())
            });
        let assertion = form.get("client_assertion");
        let post_secret = form.get("client_secret");
        let used = [basic.is_some(), assertion.is_some(), post_secret.is_some()]
            .iter()
            .filter(|b| **b)
            .count();
        if used > 1 {
            return Err(invalid_request(
                "more than one client authentication method",
            ));
        }
        let (client_id, method) = if let Some(b64) = basic {
            let decoded = STANDARD
                .decode(b64)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid_client("malformed Basic credentials"))?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or_else(|| invalid_client("malformed Basic credentials"))?;
            let id = form_decode(id).ok_or_else(|| invalid_client("bad encoding"))?;
            let secret = form_decode(secret).ok_or_else(|| invalid_client("bad encoding"))?;
            if form.get("client_id").is_some_and(|f| f != id) {
                return Err(invalid_request("client_id differs from Basic credentials"));
            }
            let client = st
                .clients
                .get(&id)
                .ok_or_else(|| invalid_client("unknown client"))?;
            if client.secret.as_deref() != Some(secret.as_str()) {
                return Err(invalid_client("wrong client secret"));
            }
            (id, ClientAuthMethod::ClientSecretBasic)
        } else if let Some(assertion) = assertion {
            let id = self.verify_client_assertion(assertion, form, st)?;
            (id, ClientAuthMethod::PrivateKeyJwt)
        } else if let Some(secret) = post_secret {
            let id = form
                .get("client_id")
                .ok_or_else(|| invalid_client("client_secret without client_id"))?
                .to_owned();
            let client = st
                .clients
                .get(&id)
                .ok_or_else(|| invalid_client("unknown client"))?;
            if client.secret.as_deref() != Some(secret) {
                return Err(invalid_client("wrong client secret"));
            }
            (id, ClientAuthMethod::ClientSecretPost)
        } else {
            return Err(invalid_client("no client authentication"));
        };
        if st.clients[&client_id]
            .allowed
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(&method))
        {
            return Err(invalid_client("client authentication method not allowed"));
        }
        st.last_client_auth = Some((client_id.clone(), method));
        Ok(client_id)
    }

    fn verify_client_assertion(
        &self,
        assertion: &str,
        form: &FormParams,
        st: &mut State,
    ) -> Result<String, OAuthError> {
        if form.get("client_assertion_type") != Some(JWT_BEARER_ASSERTION) {
            return Err(invalid_client("wrong client_assertion_type"));
        }
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|_| invalid_client("client_assertion header unreadable"))?;
        if header.alg.family() == AlgorithmFamily::Hmac {
            return Err(invalid_client("HMAC client assertions not supported"));
        }
        let unverified: Value = jsonwebtoken::dangerous::insecure_decode_claims(assertion)
            .map_err(|_| invalid_client("client_assertion unreadable"))?;
        let iss = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_client("client_assertion without iss"))?
            .to_owned();
        if form.get("client_id").is_some_and(|f| f != iss) {
            return Err(invalid_client("client_id differs from assertion iss"));
        }
        let client = st
            .clients
            .get(&iss)
            .ok_or_else(|| invalid_client("unknown client"))?;
        let mut validation = Validation::new(header.alg);
        validation.validate_aud = false;
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let claims: Value = client
            .keys
            .iter()
            .find_map(|k| {
                jsonwebtoken::decode::<Value>(assertion, k, &validation)
                    .ok()
                    .map(|d| d.claims)
            })
            .ok_or_else(|| invalid_client("client_assertion signature or exp invalid"))?;
        if claims.get("sub").and_then(Value::as_str) != Some(iss.as_str()) {
            return Err(invalid_client("client_assertion sub must equal iss"));
        }
        let token_url = self.token_endpoint();
        if !aud_contains(
            claims.get("aud"),
            &[token_url.as_str(), self.issuer.as_str()],
        ) {
            return Err(invalid_client(
                "client_assertion aud must be the token endpoint",
            ));
        }
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_client("client_assertion without jti"))?;
        if !st.seen_assertion_jti.insert(jti.to_owned()) {
            return Err(invalid_client("client_assertion jti replayed"));
        }
        Ok(iss)
    }

    // ---- token minting ----

    #[allow(clippy::too_many_arguments)]
    fn mint_access(
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
    fn mint_id_token(
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
        let mut key = st.current_key;
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

    fn new_refresh(
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

    // ---- endpoints ----

    fn token(&self, req: &Request, st: &mut State) -> ResponseTemplate {
        let form = FormParams::parse(&req.body);
        let grant = form.get("grant_type").unwrap_or_default().to_owned();
        *st.token_calls.entry(grant.clone()).or_default() += 1;
        st.last_token_request.insert(grant.clone(), form.clone());
        let response = match self.token_reply(req, &form, &grant, st) {
            Ok(body) => json_response(200, body).insert_header("pragma", "no-cache"),
            Err(error) => error.response(),
        };
        match st.token_delay {
            Some(d) => response.set_delay(d),
            None => response,
        }
    }

    fn token_reply(&self, req: &Request, form: &FormParams, grant: &str, st: &mut State) -> Reply {
        if let Some((status, code)) = &st.token_failure {
            return Err(oauth_error(
                *status,
                code,
                "failure switched on by the test",
            ));
        }
        let client_id = self.authenticate_client(req, form, st)?;
        match grant {
            "authorization_code" => self.grant_code(form, &client_id, st),
            "refresh_token" => self.grant_refresh(form, &client_id, st),
            "client_credentials" => self.grant_client_credentials(form, &client_id, st),
            "password" => self.grant_password(form, &client_id, st),
            TOKEN_EXCHANGE_GRANT => self.grant_exchange(form, &client_id, st),
            "" => Err(invalid_request("missing grant_type")),
            _ => Err(oauth_error(
                400,
                "unsupported_grant_type",
                "unsupported grant_type",
            )),
        }
    }

    fn grant_code(&self, form: &FormParams, client_id: &str, st: &mut State) -> Reply {
        let code = form
            .get("code")
            .ok_or_else(|| invalid_request("missing code"))?;
        let g = st
            .codes
            .remove(code)
            .ok_or_else(|| invalid_grant("unknown or used code"))?;
        if g.client_id != client_id {
            return Err(invalid_grant("code issued to another client"));
        }
        if form.get("redirect_uri") != Some(g.redirect_uri.as_str()) {
            return Err(invalid_grant("redirect_uri mismatch"));
        }
        let verifier = form
            .get("code_verifier")
            .ok_or_else(|| invalid_grant("missing code_verifier"))?;
        if !(43..=128).contains(&verifier.len()) {
            return Err(invalid_grant("code_verifier length"));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
        if URL_SAFE_NO_PAD.encode(digest.as_ref()) != g.code_challenge {
            return Err(invalid_grant("PKCE verification failed"));
        }
        let fault = st.id_token_fault;
        let id_token = self.mint_id_token(
            st,
            &g.user,
            client_id,
            Some(&g.nonce),
            Some(&g.sid),
            g.auth_time,
            fault,
        );
        let aud = json!(st.audience);
        let ttl = st.access_ttl;
        let access = self.mint_access(
            st,
            Some(&g.user),
            &g.user.sub,
            client_id,
            aud.clone(),
            Some(&g.scope),
            Some(&g.sid),
            ttl,
        );
        let mut body = json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": ttl,
            "id_token": id_token,
            "scope": g.scope,
        });
        if st.issue_refresh {
            let subject = GrantSubject::User {
                user: g.user.clone(),
                sid: Some(g.sid.clone()),
                nonce: Some(g.nonce.clone()),
                auth_time: g.auth_time,
                id_token: true,
            };
            let rt = self.new_refresh(st, None, client_id, subject, Some(&g.scope), aud);
            body["refresh_token"] = json!(rt);
        }
        Ok(body)
    }

    fn grant_refresh(&self, form: &FormParams, client_id: &str, st: &mut State) -> Reply {
        let rt = form
            .get("refresh_token")
            .ok_or_else(|| invalid_request("missing refresh_token"))?;
        if st.refresh_all_revoked {
            return Err(invalid_grant("refresh token revoked"));
        }
        let rec = st
            .refresh
            .get(rt)
            .cloned()
            .ok_or_else(|| invalid_grant("unknown refresh token"))?;
        if st.revoked_grants.contains(&rec.grant_id) {
            return Err(invalid_grant("grant revoked"));
        }
        if rec.client_id != client_id {
            return Err(invalid_grant("refresh token of another client"));
        }
        if rec.used {
            // Like oidc-provider: reuse of a rotated refresh token revokes the whole grant.
            st.revoked_grants.insert(rec.grant_id);
            return Err(invalid_grant("refresh token already used; grant revoked"));
        }
        let ttl = st.access_ttl;
        let scope = rec.scope.as_deref();
        let mut body = match &rec.subject {
            GrantSubject::User {
                user,
                sid,
                nonce,
                auth_time,
                id_token,
            } => {
                let access = self.mint_access(
                    st,
                    Some(user),
                    &user.sub,
                    client_id,
                    rec.aud.clone(),
                    scope,
                    sid.as_deref(),
                    ttl,
                );
                let mut body =
                    json!({ "access_token": access, "token_type": "Bearer", "expires_in": ttl });
                if *id_token {
                    body["id_token"] = json!(self.mint_id_token(
                        st,
                        user,
                        client_id,
                        nonce.as_deref(),
                        sid.as_deref(),
                        *auth_time,
                        None
                    ));
                }
                body
            }
            GrantSubject::Client => {
                let access = self.mint_access(
                    st,
                    None,
                    client_id,
                    client_id,
                    rec.aud.clone(),
                    scope,
                    None,
                    ttl,
                );
                json!({ "access_token": access, "token_type": "Bearer", "expires_in": ttl })
            }
        };
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        if st.rotate_refresh {
            if let Some(r) = st.refresh.get_mut(rt) {
                r.used = true;
            }
            let new_rt = self.new_refresh(
                st,
                Some(rec.grant_id),
                client_id,
                rec.subject.clone(),
                scope,
                rec.aud.clone(),
            );
            body["refresh_token"] = json!(new_rt);
        }
        Ok(body)
    }

    fn requested_aud(&self, form: &FormParams, st: &State) -> Value {
        let audiences = form.all("audience");
        let audiences = if audiences.is_empty() {
            form.all("resource")
        } else {
            audiences
        };
        match audiences.as_slice() {
            [] => json!(st.audience),
            [one] => json!(one),
            many => json!(many),
        }
    }

    fn grant_client_credentials(
        &self,
        form: &FormParams,
        client_id: &str,
        st: &mut State,
    ) -> Reply {
        let aud = self.requested_aud(form, st);
        let scope = form.get("scope");
        let ttl = st.access_ttl;
        let access = self.mint_access(
            st,
            None,
            client_id,
            client_id,
            aud.clone(),
            scope,
            None,
            ttl,
        );
        let mut body = json!({ "access_token": access, "token_type": "Bearer", "expires_in": ttl });
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        if st.cc_refresh {
            let rt = self.new_refresh(st, None, client_id, GrantSubject::Client, scope, aud);
            body["refresh_token"] = json!(rt);
        }
        Ok(body)
    }

    fn grant_password(&self, form: &FormParams, client_id: &str, st: &mut State) -> Reply {
        let username = form
            .get("username")
            .ok_or_else(|| invalid_request("missing username"))?;
        let password = form
            .get("password")
            .ok_or_else(|| invalid_request("missing password"))?;
        let user = match st.technical.get(username) {
            Some((user, pw)) if pw == password => user.clone(),
            _ => return Err(invalid_grant("invalid user credentials")),
        };
        let aud = self.requested_aud(form, st);
        let scope = form.get("scope");
        let ttl = st.access_ttl;
        let access = self.mint_access(
            st,
            Some(&user),
            &user.sub,
            client_id,
            aud.clone(),
            scope,
            None,
            ttl,
        );
        let mut body = json!({ "access_token": access, "token_type": "Bearer", "expires_in": ttl });
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        if st.issue_refresh {
            let subject = GrantSubject::User {
                user,
                sid: None,
                nonce: None,
                auth_time: now(),
                id_token: false,
            };
            let rt = self.new_refresh(st, None, client_id, subject, scope, aud);
            body["refresh_token"] = json!(rt);
        }
        Ok(body)
    }

    fn grant_exchange(&self, form: &FormParams, client_id: &str, st: &mut State) -> Reply {
        let subject_token = form
            .get("subject_token")
            .ok_or_else(|| invalid_request("missing subject_token"))?;
        if form.get("subject_token_type") != Some(ACCESS_TOKEN_TYPE) {
            return Err(invalid_request("unsupported subject_token_type"));
        }
        if form
            .get("requested_token_type")
            .is_some_and(|t| t != ACCESS_TOKEN_TYPE && t != "urn:ietf:params:oauth:token-type:jwt")
        {
            return Err(invalid_request("unsupported requested_token_type"));
        }
        let subject = st
            .access_tokens
            .get(subject_token)
            .cloned()
            .filter(|t| t.exp > now() && !st.revoked_access.contains(subject_token))
            .ok_or_else(|| invalid_request("subject_token invalid or expired"))?;
        let aud = self.requested_aud(form, st);
        let scope = form.get("scope");
        let ttl = st.access_ttl;
        let access = self.mint_access(
            st,
            subject.user.as_ref(),
            &subject.sub,
            client_id,
            aud,
            scope,
            subject.sid.as_deref(),
            ttl,
        );
        let mut body = json!({
            "access_token": access,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "token_type": "Bearer",
            "expires_in": ttl,
        });
        if let Some(scope) = scope {
            body["scope"] = json!(scope);
        }
        Ok(body)
    }

    fn active_token(&self, st: &State, token: &str) -> Option<IssuedToken> {
        st.access_tokens
            .get(token)
            .filter(|t| t.exp > now() && !st.revoked_access.contains(token))
            .cloned()
    }

    fn userinfo(&self, req: &Request, st: &State) -> ResponseTemplate {
        let token = req
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.get(..7)
                    .filter(|p| p.eq_ignore_ascii_case("bearer "))
                    .map(|_| v[7..].trim().to_owned())
            });
        match token
            .and_then(|t| self.active_token(st, &t))
            .and_then(|t| t.user)
        {
            Some(user) => {
                let mut claims = user.claims();
                merge(&mut claims, &st.userinfo_override);
                json_response(200, Value::Object(claims))
            }
            None => oauth_error(
                401,
                "invalid_token",
                "missing, unknown or expired access token",
            )
            .response(),
        }
    }

    fn introspect(&self, req: &Request, st: &mut State) -> ResponseTemplate {
        let form = FormParams::parse(&req.body);
        if let Err(e) = self.authenticate_client(req, &form, st) {
            return e.response();
        }
        let Some(token) = form.get("token") else {
            return invalid_request("missing token").response();
        };
        let Some(t) = self.active_token(st, token) else {
            return json_response(200, json!({ "active": false }));
        };
        let username = t
            .user
            .as_ref()
            .map_or_else(|| t.client_id.clone(), |u| u.preferred_username.clone());
        let mut body = Map::new();
        body.insert("active".into(), json!(true));
        body.insert("iss".into(), json!(self.issuer));
        body.insert("sub".into(), json!(t.sub));
        body.insert("username".into(), json!(username));
        body.insert("client_id".into(), json!(t.client_id));
        body.insert("aud".into(), t.aud.clone());
        body.insert("iat".into(), json!(t.iat));
        body.insert("exp".into(), json!(t.exp));
        body.insert("token_type".into(), json!("Bearer"));
        if let Some(scope) = &t.scope {
            body.insert("scope".into(), json!(scope));
        }
        if let Some(user) = &t.user {
            for key in ["name", "email", "roles", "realm_access", "groups"] {
                if let Some(v) = user.claims().get(key) {
                    body.insert(key.into(), v.clone());
                }
            }
        }
        merge(&mut body, &st.introspection_override);
        json_response(200, Value::Object(body))
    }

    fn end_session(&self, req: &Request, st: &mut State) -> ResponseTemplate {
        let params = FormParams::parse(req.url.query().unwrap_or_default().as_bytes());
        st.last_end_session = Some(params.clone());
        let sid = params.get("id_token_hint").and_then(|t| {
            jsonwebtoken::dangerous::insecure_decode_claims::<Value>(t)
                .ok()
                .and_then(|c| c.get("sid").and_then(Value::as_str).map(str::to_owned))
        });
        if let Some(sid) = sid {
            // Real providers end the grant with the session.
            let ids: Vec<u64> = st
                .refresh
                .values()
                .filter(
                    |g| matches!(&g.subject, GrantSubject::User { sid: Some(s), .. } if *s == sid),
                )
                .map(|g| g.grant_id)
                .collect();
            st.revoked_grants.extend(ids);
            st.sessions.retain(|(s, _)| *s != sid);
        }
        match params.get("post_logout_redirect_uri").map(Url::parse) {
            Some(Ok(mut target)) => {
                if let Some(state) = params.get("state") {
                    target.query_pairs_mut().append_pair("state", state);
                }
                ResponseTemplate::new(302).insert_header("location", target.as_str())
            }
            Some(Err(_)) => invalid_request("bad post_logout_redirect_uri").response(),
            None => ResponseTemplate::new(200).set_body_string("logged out"),
        }
    }
}

struct Router(Arc<Inner>);

impl Respond for Router {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.handle(request)
    }
}

impl FakeOp {
    /// Starts a fresh provider on 127.0.0.1 with a random port.
    ///
    /// Defaults: client `identity` / `identity-secret` (any auth method),
    /// JWKS = RSA key 1, access tokens live 300 s with `aud` "identity",
    /// refresh tokens issued and not rotated, no azp in ID tokens.
    pub async fn start() -> FakeOp {
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        let issuer = server.uri().trim_end_matches('/').to_owned();
        let mut keys = HashMap::new();
        keys.insert(
            KeyId::Rsa1,
            KeyMaterial::load("op-rsa-1", Algorithm::RS256, RSA1_PEM, RSA1_PUB),
        );
        keys.insert(
            KeyId::Rsa2,
            KeyMaterial::load("op-rsa-2", Algorithm::RS256, RSA2_PEM, RSA2_PUB),
        );
        keys.insert(
            KeyId::Ec,
            KeyMaterial::load("op-ec", Algorithm::ES256, EC_PEM, EC_PUB),
        );
        keys.insert(
            KeyId::Attacker,
            KeyMaterial::load("attacker-rsa", Algorithm::RS256, ATTACKER_PEM, ATTACKER_PUB),
        );
        let mut clients = HashMap::new();
        clients.insert(
            DEFAULT_CLIENT_ID.to_owned(),
            Client {
                secret: Some(DEFAULT_CLIENT_SECRET.to_owned()),
                keys: Vec::new(),
                allowed: None,
            },
        );
        let state = State {
            clients,
            codes: HashMap::new(),
            refresh: HashMap::new(),
            revoked_grants: HashSet::new(),
            next_grant: 0,
            access_tokens: HashMap::new(),
            revoked_access: HashSet::new(),
            technical: HashMap::new(),
            sessions: Vec::new(),
            seen_assertion_jti: HashSet::new(),
            audience: DEFAULT_AUDIENCE.to_owned(),
            access_ttl: 300,
            token_delay: None,
            rotate_refresh: false,
            issue_refresh: true,
            refresh_all_revoked: false,
            cc_refresh: false,
            token_failure: None,
            id_token_fault: None,
            id_token_azp: false,
            callback_iss: CallbackIss::Issuer,
            current_key: KeyId::Rsa1,
            published: vec![KeyId::Rsa1],
            unavailable: false,
            discovery_override: Map::new(),
            userinfo_override: Map::new(),
            introspection_override: Map::new(),
            calls: HashMap::new(),
            token_calls: HashMap::new(),
            last_authorize: None,
            last_token_request: HashMap::new(),
            last_client_auth: None,
            last_end_session: None,
            last_sid: None,
        };
        let inner = Arc::new(Inner {
            issuer,
            keys,
            state: Mutex::new(state),
        });
        // Lowest priority: tests may mount their own mocks on `server()` to override an endpoint.
        Mock::given(any())
            .respond_with(Router(inner.clone()))
            .with_priority(u8::MAX)
            .mount(&server)
            .await;
        FakeOp {
            server: Arc::new(server),
            inner,
        }
    }

    /// The issuer, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn issuer(&self) -> String {
        self.inner.issuer.clone()
    }

    /// `<issuer>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.inner.issuer)
    }

    /// `<issuer>/token`.
    pub fn token_endpoint(&self) -> String {
        self.inner.token_endpoint()
    }

    /// The underlying wiremock server (mount higher-priority mocks to override endpoints).
    pub fn server(&self) -> &MockServer {
        &self.server
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    // ---- clients ----

    /// Registers (or replaces) a client; `secret` None = key-only client.
    pub fn add_client(&self, client_id: &str, secret: Option<&str>) {
        self.st().clients.insert(
            client_id.to_owned(),
            Client {
                secret: secret.map(str::to_owned),
                keys: Vec::new(),
                allowed: None,
            },
        );
    }

    /// Adds a key that verifies `private_key_jwt` assertions of `client_id`
    /// (creating the client without secret if unknown). Accepts a public or
    /// private PEM (RSA or EC P-256) or a JWK in JSON.
    pub fn register_client_key(&self, client_id: &str, pem_or_jwk: &str) {
        let key = if pem_or_jwk.trim_start().starts_with('{') {
            let jwk: Jwk = serde_json::from_str(pem_or_jwk).expect("register_client_key: bad JWK");
            DecodingKey::from_jwk(&jwk).expect("register_client_key: unusable JWK")
        } else if pem_or_jwk.contains("PRIVATE KEY") {
            let (enc, alg) = match EncodingKey::from_rsa_pem(pem_or_jwk.as_bytes()) {
                Ok(k) => (k, Algorithm::RS256),
                Err(_) => (
                    EncodingKey::from_ec_pem(pem_or_jwk.as_bytes())
                        .expect("register_client_key: PEM is neither RSA nor EC"),
                    Algorithm::ES256,
                ),
            };
            DecodingKey::from_jwk(&Jwk::from_encoding_key(&enc, alg).unwrap()).unwrap()
        } else {
            DecodingKey::from_rsa_pem(pem_or_jwk.as_bytes())
                .or_else(|_| DecodingKey::from_ec_pem(pem_or_jwk.as_bytes()))
                .expect("register_client_key: PEM is neither RSA nor EC public key")
        };
        let mut st = self.st();
        st.clients
            .entry(client_id.to_owned())
            .or_insert_with(|| Client {
                secret: None,
                keys: Vec::new(),
                allowed: None,
            })
            .keys
            .push(key);
    }

    /// Restricts which authentication methods `client_id` may use.
    pub fn restrict_client_auth(&self, client_id: &str, methods: &[ClientAuthMethod]) {
        let mut st = self.st();
        let client = st
            .clients
            .get_mut(client_id)
            .unwrap_or_else(|| panic!("restrict_client_auth: unknown client {client_id}"));
        client.allowed = Some(methods.to_vec());
    }

    /// The client and method of the last successful client authentication.
    pub fn last_client_auth(&self) -> Option<(String, ClientAuthMethod)> {
        self.st().last_client_auth.clone()
    }

    // ---- login ----

    /// Logs `user` in: checks the authorization request (response_type=code,
    /// known client_id, redirect_uri, scope with openid, state, nonce, S256
    /// PKCE) and returns the callback URL
    /// `<redirect_uri>?code=..&state=..&iss=<issuer>`. Panics on a bad request.
    pub fn authorize(&self, authorize_url: &str, user: &TestUser) -> String {
        self.try_authorize(authorize_url, user).unwrap_or_else(|e| {
            panic!("FakeOp::authorize refused the request: {e}\nURL: {authorize_url}")
        })
    }

    /// Like [`FakeOp::authorize`] but returns what was wrong instead of panicking.
    pub fn try_authorize(&self, authorize_url: &str, user: &TestUser) -> Result<String, String> {
        let (params, redirect) = self.check_authorize_request(authorize_url, true)?;
        let need = |name: &str| -> Result<String, String> {
            params
                .get(name)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| format!("missing {name}"))
        };
        let client_id = need("client_id")?;
        let nonce = need("nonce")?;
        let state = need("state")?;
        let challenge = need("code_challenge")?;
        let scope = need("scope")?;
        let sid = format!("sid-{}", random_string(12));
        let code = random_string(24);
        let mut st = self.st();
        st.codes.insert(
            code.clone(),
            CodeGrant {
                client_id,
                user: user.clone(),
                nonce,
                code_challenge: challenge,
                redirect_uri: redirect.to_string(),
                sid: sid.clone(),
                scope,
                auth_time: now(),
            },
        );
        st.sessions.push((sid.clone(), user.sub.clone()));
        st.last_sid = Some(sid);
        let mut callback = redirect;
        {
            let mut q = callback.query_pairs_mut();
            q.append_pair("code", &code);
            q.append_pair("state", &state);
            match &st.callback_iss {
                CallbackIss::Issuer => {
                    q.append_pair("iss", &self.inner.issuer);
                }
                CallbackIss::Omit => {}
                CallbackIss::Value(v) => {
                    q.append_pair("iss", v);
                }
            }
        }
        Ok(callback.to_string())
    }

    /// The callback URL of a refused login: `<redirect_uri>?error=<error>&state=..&iss=..`.
    pub fn authorize_error(&self, authorize_url: &str, error: &str) -> String {
        let (params, mut callback) = self
            .check_authorize_request(authorize_url, false)
            .unwrap_or_else(|e| panic!("FakeOp::authorize_error: {e}\nURL: {authorize_url}"));
        let st = self.st();
        {
            let mut q = callback.query_pairs_mut();
            q.append_pair("error", error);
            if let Some(state) = params.get("state") {
                q.append_pair("state", state);
            }
            match &st.callback_iss {
                CallbackIss::Issuer => {
                    q.append_pair("iss", &self.inner.issuer);
                }
                CallbackIss::Omit => {}
                CallbackIss::Value(v) => {
                    q.append_pair("iss", v);
                }
            }
        }
        callback.to_string()
    }

    fn check_authorize_request(
        &self,
        authorize_url: &str,
        strict: bool,
    ) -> Result<(FormParams, Url), String> {
        let url = Url::parse(authorize_url).map_err(|e| format!("not a URL: {e}"))?;
        let expected = format!("{}/authorize", self.inner.issuer);
        let base = format!("{}{}", url.origin().ascii_serialization(), url.path());
        if base != expected {
            return Err(format!(
                "not this provider's authorization endpoint ({base} != {expected})"
            ));
        }
        let params = FormParams::parse(url.query().unwrap_or_default().as_bytes());
        self.st().last_authorize = Some(params.clone());
        let client_id = params.get("client_id").ok_or("missing client_id")?;
        if !self.st().clients.contains_key(client_id) {
            return Err(format!("unknown client_id {client_id:?}"));
        }
        let redirect = params.get("redirect_uri").ok_or("missing redirect_uri")?;
        let redirect =
            Url::parse(redirect).map_err(|e| format!("redirect_uri not absolute: {e}"))?;
        if !matches!(redirect.scheme(), "http" | "https") || redirect.fragment().is_some() {
            return Err("redirect_uri must be http(s) without fragment".to_owned());
        }
        if strict {
            if params.get("response_type") != Some("code") {
                return Err(format!(
                    "response_type must be code, got {:?}",
                    params.get("response_type")
                ));
            }
            let scope = params.get("scope").unwrap_or_default();
            if !scope.split(' ').any(|s| s == "openid") {
                return Err(format!("scope must contain openid, got {scope:?}"));
            }
            if params.get("code_challenge_method") != Some("S256") {
                return Err(format!(
                    "code_challenge_method must be S256, got {:?}",
                    params.get("code_challenge_method")
                ));
            }
            let challenge = params.get("code_challenge").unwrap_or_default();
            if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(challenge).is_err() {
                return Err(format!(
                    "code_challenge is not a base64url SHA-256: {challenge:?}"
                ));
            }
            for p in ["state", "nonce"] {
                if params.get(p).is_none_or(str::is_empty) {
                    return Err(format!("missing {p}"));
                }
            }
        }
        Ok((params, redirect))
    }

    /// Query parameters of the last authorization request seen by `authorize*`.
    pub fn last_authorize_params(&self) -> Option<FormParams> {
        self.st().last_authorize.clone()
    }

    /// What `iss` the authorization response carries.
    pub fn set_callback_iss(&self, iss: CallbackIss) {
        self.st().callback_iss = iss;
    }

    /// The `sid` of the most recent login.
    pub fn sid_of_last_login(&self) -> Option<String> {
        self.st().last_sid.clone()
    }

    /// The `sid`s of the provider sessions of a subject, oldest first.
    pub fn sids_of(&self, sub: &str) -> Vec<String> {
        self.st()
            .sessions
            .iter()
            .filter(|(_, s)| s == sub)
            .map(|(sid, _)| sid.clone())
            .collect()
    }

    /// Query of the last call to the end-session endpoint (`/logout`).
    pub fn last_end_session_params(&self) -> Option<FormParams> {
        self.st().last_end_session.clone()
    }

    // ---- token endpoint behaviour ----

    /// `aud` of access tokens from code/refresh grants (and the default for others).
    pub fn set_audience(&self, aud: &str) {
        self.st().audience = aud.to_owned();
    }

    /// Lifetime of access tokens issued from now on (`expires_in`, `exp`).
    pub fn set_access_token_ttl(&self, secs: i64) {
        self.st().access_ttl = secs;
    }

    /// Delays every token-endpoint answer (0 = none).
    pub fn set_token_delay(&self, ms: u64) {
        self.st().token_delay = (ms > 0).then(|| Duration::from_millis(ms));
    }

    /// Rotating refresh tokens: each refresh returns a new one; reusing an
    /// old one revokes the grant (oidc-provider). Off: no `refresh_token` in
    /// refresh answers, the old one stays valid.
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.st().rotate_refresh = rotate;
    }

    /// Whether code and password grants return a refresh token (default true).
    pub fn set_issue_refresh_tokens(&self, issue: bool) {
        self.st().issue_refresh = issue;
    }

    /// Makes every refresh from now on fail with `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        self.st().refresh_all_revoked = true;
    }

    /// Whether `client_credentials` answers include a refresh token.
    pub fn set_client_credentials_refresh(&self, on: bool) {
        self.st().cc_refresh = on;
    }

    /// Registers a technical account for the password grant (user name =
    /// `user.preferred_username`).
    pub fn add_technical_account(&self, user: &TestUser, password: &str) {
        self.st().technical.insert(
            user.preferred_username.clone(),
            (user.clone(), password.to_owned()),
        );
    }

    /// Some((status, error)): the token endpoint answers `{"error": error}` with that status.
    pub fn fail_token_endpoint(&self, failure: Option<(u16, &str)>) {
        self.st().token_failure = failure.map(|(s, e)| (s, e.to_owned()));
    }

    /// Every endpoint answers 503 while on (provider down).
    pub fn set_unavailable(&self, down: bool) {
        self.st().unavailable = down;
    }

    /// Token endpoint calls with this `grant_type` (including failed ones).
    pub fn token_calls(&self, grant_type: &str) -> usize {
        self.st().token_calls.get(grant_type).copied().unwrap_or(0)
    }

    /// Form of the last token request with this `grant_type`.
    pub fn last_token_request(&self, grant_type: &str) -> Option<FormParams> {
        self.st().last_token_request.get(grant_type).cloned()
    }

    /// Calls to `/introspect`.
    pub fn introspection_calls(&self) -> usize {
        self.calls("/introspect")
    }

    /// Calls to `/jwks`.
    pub fn jwks_calls(&self) -> usize {
        self.calls("/jwks")
    }

    /// Requests seen for a path (e.g. "/token", "/userinfo", "/.well-known/openid-configuration").
    pub fn calls(&self, path: &str) -> usize {
        self.st().calls.get(path).copied().unwrap_or(0)
    }

    /// Overrides discovery document members (`null` removes one, e.g. `end_session_endpoint`).
    pub fn set_discovery_override(&self, overrides: Value) {
        self.st().discovery_override = overrides.as_object().cloned().unwrap_or_default();
    }

    /// Overrides userinfo members (`null` removes).
    pub fn set_userinfo_override(&self, overrides: Value) {
        self.st().userinfo_override = overrides.as_object().cloned().unwrap_or_default();
    }

    /// Overrides members of active introspection answers (`null` removes, e.g. `sub`).
    pub fn set_introspection_override(&self, overrides: Value) {
        self.st().introspection_override = overrides.as_object().cloned().unwrap_or_default();
    }

    // ---- ID tokens ----

    /// Defect for the ID tokens of the following code exchanges (None = healthy).
    pub fn set_id_token_fault(&self, fault: Option<IdTokenFault>) {
        self.st().id_token_fault = fault;
    }

    /// Whether ID tokens carry `azp` = client_id (default false, like django-oauth-toolkit).
    pub fn set_id_token_azp(&self, on: bool) {
        self.st().id_token_azp = on;
    }

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

    /// Signs issued tokens (ID, access) with this key from now on (not Attacker's kid trick).
    pub fn set_current_key(&self, key: SigningKeyChoice) {
        let mut st = self.st();
        st.current_key = self.inner.resolve(&st, key);
    }

    /// Exactly these keys in the JWKS, in this order.
    pub fn set_published_keys(&self, keys: &[SigningKeyChoice]) {
        let mut st = self.st();
        st.published = keys.iter().map(|k| self.inner.resolve(&st, *k)).collect();
    }

    /// The JWKS as currently published.
    pub fn jwks(&self) -> Value {
        let st = self.st();
        self.inner.jwks(&st)
    }

    /// The `kid` of a key (Attacker: "attacker-rsa", though its tokens borrow the current kid).
    pub fn kid(&self, key: SigningKeyChoice) -> String {
        let st = self.st();
        self.inner.key(self.inner.resolve(&st, key)).kid.to_owned()
    }

    /// Public key (SPKI PEM) of a key.
    pub fn public_key_pem(&self, key: SigningKeyChoice) -> &'static str {
        let st = self.st();
        self.inner.key(self.inner.resolve(&st, key)).public_pem
    }

    /// Private key (PKCS#8 PEM) of a key.
    pub fn private_key_pem(&self, key: SigningKeyChoice) -> &'static str {
        let st = self.st();
        self.inner.key(self.inner.resolve(&st, key)).private_pem
    }
}
