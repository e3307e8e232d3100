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
//!
//! Parts: [`keys`] (signing keys, JWKS, signed and logout tokens), [`clients`]
//! (client registration and authentication), [`grants`] (the token endpoint, one
//! function per grant), [`minting`] (access, ID and refresh tokens), [`endpoints`]
//! (discovery, authorize, userinfo, introspection, end-session), [`control`] (knobs
//! and counters for tests), [`http`] (form parsing and OAuth error answers).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod clients;
mod control;
mod dpop;
mod endpoints;
mod grants;
mod http;
mod keys;
mod minting;
mod par;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub use self::clients::ClientAuthMethod;
pub use self::grants::IdTokenFault;
pub use self::http::FormParams;
use self::http::*;
use self::keys::KeyMaterial;
pub use self::keys::{LogoutTokenSpec, SigningKeyChoice};

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

/// Public key (SPKI PEM) of a client for `private_key_jwt` tests; its private half
/// is at `fixture_path("client-rsa.pem")`.
pub const CLIENT_RSA_PUBLIC_PEM: &str = include_str!("../../fixtures/client-rsa.pub.pem");

const RSA1_PEM: &str = include_str!("../../fixtures/op-rsa-1.pem");
const RSA1_PUB: &str = include_str!("../../fixtures/op-rsa-1.pub.pem");
const RSA2_PEM: &str = include_str!("../../fixtures/op-rsa-2.pem");
const RSA2_PUB: &str = include_str!("../../fixtures/op-rsa-2.pub.pem");
const ATTACKER_PEM: &str = include_str!("../../fixtures/attacker-rsa.pem");
const ATTACKER_PUB: &str = include_str!("../../fixtures/attacker-rsa.pub.pem");
const EC_PEM: &str = include_str!("../../fixtures/op-ec.pem");
const EC_PUB: &str = include_str!("../../fixtures/op-ec.pub.pem");

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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum KeyId {
    Rsa1,
    Rsa2,
    Attacker,
    Ec,
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
    current_key: KeyId,
    id_token_key: Option<KeyId>,
    published: Vec<KeyId>,
    unavailable: bool,
    calls: HashMap<String, usize>,
    token_calls: HashMap<String, usize>,
    last_authorize: Option<FormParams>,
    last_token_request: HashMap<String, FormParams>,
    last_client_auth: Option<(String, ClientAuthMethod)>,
    last_end_session: Option<FormParams>,
    last_sid: Option<String>,
    revocations: Vec<(String, ClientAuthMethod)>,
    revocation_delay: Option<Duration>,
    revocation_failure: Option<u16>,
    traceparents: Vec<(String, String)>,
    par: par::ParState,
    dpop: dpop::DpopState,
}

struct Inner {
    issuer: String,
    keys: HashMap<KeyId, KeyMaterial>,
    state: Mutex<State>,
}

/// The fake OpenID provider; cheap to clone (shared state).
#[derive(Clone)]
pub struct FakeOp {
    /// Kept so the server runs as long as a clone of the provider exists.
    _server: Arc<MockServer>,
    inner: Arc<Inner>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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
            KeyId::Attacker,
            KeyMaterial::load("attacker-rsa", Algorithm::RS256, ATTACKER_PEM, ATTACKER_PUB),
        );
        keys.insert(
            KeyId::Ec,
            KeyMaterial::load("op-ec", Algorithm::ES256, EC_PEM, EC_PUB),
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
            current_key: KeyId::Rsa1,
            id_token_key: None,
            published: vec![KeyId::Rsa1],
            unavailable: false,
            calls: HashMap::new(),
            traceparents: Vec::new(),
            token_calls: HashMap::new(),
            last_authorize: None,
            last_token_request: HashMap::new(),
            last_client_auth: None,
            revocations: Vec::new(),
            revocation_delay: None,
            revocation_failure: None,
            last_end_session: None,
            last_sid: None,
            par: par::ParState::default(),
            dpop: dpop::DpopState::new(),
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
            _server: Arc::new(server),
            inner,
        }
    }

    /// The issuer, `http://127.0.0.1:<port>` (no trailing slash).
    pub fn issuer(&self) -> String {
        self.inner.issuer.clone()
    }

    /// `<issuer>/token`.
    pub fn token_endpoint(&self) -> String {
        self.inner.token_endpoint()
    }

    /// The underlying wiremock server: mount higher-priority mocks on it to override an
    /// endpoint (a forged refresh answer, a provider that stops answering).
    pub fn server(&self) -> &MockServer {
        &self._server
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }
}
