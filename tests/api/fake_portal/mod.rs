//! An in-process, controllable fake ArcGIS portal (ArcGIS Online / Enterprise `sharing/rest`)
//! and an ArcGIS Server stand-in, built from the ArcGIS REST API reference:
//!
//! - `oauth2/authorize` — <https://developers.arcgis.com/rest/users-groups-and-items/authorize/>
//!   (here [`FakePortal::authorize`] plays the login form: it checks the request and returns
//!   the callback URL the browser would be sent to);
//! - `oauth2/token` — <https://developers.arcgis.com/rest/users-groups-and-items/token/>
//!   (`authorization_code` with `code_verifier`, `refresh_token`; `client_secret` only for
//!   apps registered with one; answer `access_token`, `expires_in`, `username`,
//!   `refresh_token`, `refresh_token_expires_in`);
//! - `community/self` — <https://developers.arcgis.com/rest/users-groups-and-items/self/>
//!   (form `f=json&token=…` or `X-Esri-Authorization: Bearer …`);
//! - `generateToken` — <https://developers.arcgis.com/rest/users-groups-and-items/generate-token/>
//!   (`request=getToken`, `serverUrl`, `token`, `f=json` → `token`, `expires` in epoch ms, `ssl`);
//! - `oauth2/revokeToken` — <https://developers.arcgis.com/rest/users-groups-and-items/revoke-token/>;
//! - `info?f=json` — answers with `authInfo` (as ArcGIS Server's `rest/info`,
//!   <https://developers.arcgis.com/rest/services-reference/enterprise/server-info/>);
//! - errors as ArcGIS sends them: HTTP 200 with `{"error": {"code": 498, "message": …}}`.
//!
//! The ArcGIS Server stand-in answers `GET /server/rest/services/…?token=…` when the token
//! is a server token `generateToken` issued for that server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::fake_op::FormParams;

/// The app registered with a secret.
pub const CLIENT_ID: &str = "arcgis-app";
/// Its secret.
pub const CLIENT_SECRET: &str = "arcgis-app-secret";
/// An app registered without a secret (PKCE alone).
pub const PUBLIC_CLIENT_ID: &str = "arcgis-public-app";

/// A portal member.
#[derive(Clone, Debug)]
pub struct PortalUser {
    pub username: String,
    pub full_name: String,
    pub email: String,
    pub org_id: String,
    pub role: String,
    pub privileges: Vec<String>,
    pub groups: Vec<String>,
}

impl PortalUser {
    pub fn jdoe() -> Self {
        Self {
            username: "jdoe_org".to_owned(),
            full_name: "Jane Doe".to_owned(),
            email: "jane@example.com".to_owned(),
            org_id: "0123456789ABCDEF".to_owned(),
            role: "org_publisher".to_owned(),
            privileges: vec![
                "portal:user:createItem".to_owned(),
                "portal:publisher:publishFeatures".to_owned(),
            ],
            groups: vec!["Field crew".to_owned(), "Editors".to_owned()],
        }
    }

    fn self_json(&self) -> Value {
        json!({
            "username": self.username,
            "fullName": self.full_name,
            "email": self.email,
            "orgId": self.org_id,
            "role": self.role,
            "privileges": self.privileges,
            "access": "org",
            "groups": self.groups.iter().enumerate().map(|(i, title)| json!({
                "id": format!("g{i}"), "title": title, "owner": "admin", "access": "org"
            })).collect::<Vec<_>>(),
        })
    }
}

/// How the next answers of an operation fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 200 with `{"error": {"code": 498, …}}`.
    Error498,
    /// HTTP 200 with `{"error": {"code": 500, …}}`.
    Error500,
    /// HTTP 503.
    Http503,
    /// HTTP 400 (a real 4xx).
    Http400,
    /// No answer for 10 s.
    Silent,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    user: PortalUser,
}

#[derive(Default)]
struct State {
    codes: HashMap<String, Code>,
    /// access token → (user, expires at ms)
    tokens: HashMap<String, (PortalUser, i64)>,
    refresh_tokens: HashMap<String, PortalUser>,
    /// server token → serverUrl
    server_tokens: HashMap<String, String>,
    faults: HashMap<&'static str, Fault>,
    calls: HashMap<String, usize>,
    /// Every request's path and query (to prove no token ever travels in a URL).
    urls: Vec<String>,
    /// Forms of the calls, by operation.
    forms: HashMap<String, Vec<FormParams>>,
    token_ttl_seconds: i64,
    server_token_ttl_ms: i64,
    rotate_refresh_tokens: bool,
    username_in_token_answer: Option<String>,
}

struct Inner {
    base: String,
    state: Mutex<State>,
}

/// A running fake portal.
#[derive(Clone)]
pub struct FakePortal {
    inner: Arc<Inner>,
}

struct Router(Arc<Inner>);

impl Respond for Router {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        self.0.handle(request)
    }
}

fn random(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut buf).unwrap();
    URL_SAFE_NO_PAD.encode(buf)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn json(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

/// ArcGIS's error answer: HTTP 200 with an `error` member.
fn arcgis_error(code: i64, message: &str) -> ResponseTemplate {
    json(json!({"error": {"code": code, "message": message, "details": []}}))
}

fn faulty(fault: Fault) -> ResponseTemplate {
    match fault {
        Fault::Error498 => arcgis_error(498, "Invalid token."),
        Fault::Error500 => arcgis_error(500, "Unable to process request."),
        Fault::Http503 => ResponseTemplate::new(503).set_body_string("unavailable"),
        Fault::Http400 => ResponseTemplate::new(400).set_body_string("bad request"),
        Fault::Silent => {
            json(json!({"success": true})).set_delay(std::time::Duration::from_secs(10))
        }
    }
}

impl FakePortal {
    /// Starts a portal on 127.0.0.1 (random port). Tokens live an hour, server tokens
    /// an hour, refresh tokens are not rotated.
    pub async fn start() -> Self {
        let server = MockServer::builder()
            .disable_request_recording()
            .start()
            .await;
        let base = server.uri().trim_end_matches('/').to_owned();
        let inner = Arc::new(Inner {
            base,
            state: Mutex::new(State {
                token_ttl_seconds: 3600,
                server_token_ttl_ms: 3_600_000,
                ..State::default()
            }),
        });
        Mock::given(any())
            .respond_with(Router(inner.clone()))
            .mount(&server)
            .await;
        // Keep the server alive as long as the portal.
        std::mem::forget(server);
        Self { inner }
    }

    /// `portal_url` for the configuration.
    pub fn portal_url(&self) -> String {
        format!("{}/sharing/rest", self.inner.base)
    }

    /// The ArcGIS Server stand-in's root (a target URL).
    pub fn server_url(&self) -> String {
        format!("{}/server/rest/services", self.inner.base)
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next answers of `operation` ("oauth2/token", "community/self", "generateToken",
    /// "info", "oauth2/revokeToken") fail this way (`None`: answer normally).
    pub fn set_fault(&self, operation: &'static str, fault: Option<Fault>) {
        match fault {
            Some(fault) => self.st().faults.insert(operation, fault),
            None => self.st().faults.remove(operation),
        };
    }

    /// Lifetime (`expires_in`) of the next access tokens.
    pub fn set_token_ttl(&self, seconds: i64) {
        self.st().token_ttl_seconds = seconds;
    }

    /// Lifetime of the next server tokens, in milliseconds.
    pub fn set_server_token_ttl_ms(&self, ms: i64) {
        self.st().server_token_ttl_ms = ms;
    }

    /// Whether a refresh answers with a new refresh token.
    pub fn set_rotate_refresh_tokens(&self, rotate: bool) {
        self.st().rotate_refresh_tokens = rotate;
    }

    /// The token answer names this user instead of the real one.
    pub fn set_username_in_token_answer(&self, username: Option<&str>) {
        self.st().username_in_token_answer = username.map(str::to_owned);
    }

    /// How often `operation` was called.
    pub fn calls(&self, operation: &str) -> usize {
        self.st().calls.get(operation).copied().unwrap_or(0)
    }

    /// The forms `operation` received.
    pub fn forms(&self, operation: &str) -> Vec<FormParams> {
        self.st().forms.get(operation).cloned().unwrap_or_default()
    }

    /// Every URL (path and query) the portal was asked for.
    pub fn urls(&self) -> Vec<String> {
        self.st().urls.clone()
    }

    /// A portal token for `user`, as if the user had logged in elsewhere (an ESRI token
    /// a client sends as Bearer).
    pub fn issue_token(&self, user: &PortalUser) -> String {
        let token = format!("{}..", random(48));
        let ttl = self.st().token_ttl_seconds;
        self.st()
            .tokens
            .insert(token.clone(), (user.clone(), now_ms() + ttl * 1000));
        token
    }

    /// Whether `token` is a live portal token.
    pub fn knows_token(&self, token: &str) -> bool {
        self.inner.user_of(token).is_some()
    }

    /// The refresh tokens the portal still honours.
    pub fn live_refresh_tokens(&self) -> usize {
        self.st().refresh_tokens.len()
    }

    /// Plays the login form at `authorize_url` for `user`; returns the callback URL.
    pub fn authorize(&self, authorize_url: &str, user: &PortalUser) -> String {
        let url = url::Url::parse(authorize_url).unwrap();
        assert!(
            url.path().ends_with("/sharing/rest/oauth2/authorize"),
            "{authorize_url}"
        );
        let params = FormParams::parse(url.query().unwrap_or_default().as_bytes());
        let need = |name: &str| {
            params
                .get(name)
                .filter(|value| !value.is_empty())
                .unwrap_or_else(|| panic!("authorize without {name}: {authorize_url}"))
                .to_owned()
        };
        assert_eq!(need("response_type"), "code");
        assert_eq!(need("code_challenge_method"), "S256");
        let client_id = need("client_id");
        assert!(
            client_id == CLIENT_ID || client_id == PUBLIC_CLIENT_ID,
            "unknown client {client_id}"
        );
        let redirect_uri = need("redirect_uri");
        let state = need("state");
        let code = random(24);
        self.st().codes.insert(
            code.clone(),
            Code {
                client_id,
                redirect_uri: redirect_uri.clone(),
                challenge: need("code_challenge"),
                user: user.clone(),
            },
        );
        let mut callback = url::Url::parse(&redirect_uri).unwrap();
        callback
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &state);
        callback.to_string()
    }
}

impl Inner {
    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn handle(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path().to_owned();
        let mut url = path.clone();
        if let Some(query) = request.url.query() {
            url.push('?');
            url.push_str(query);
        }
        let form = FormParams::parse(&request.body);
        let operation = path
            .strip_prefix("/sharing/rest/")
            .map(str::to_owned)
            .unwrap_or_else(|| path.clone());
        {
            let mut st = self.st();
            st.urls.push(url);
            *st.calls.entry(operation.clone()).or_default() += 1;
            st.forms
                .entry(operation.clone())
                .or_default()
                .push(form.clone());
        }
        if path.starts_with("/server/rest/services") {
            return self.server(request);
        }
        let fault = self.st().faults.get(operation.as_str()).copied();
        if let Some(fault) = fault {
            return faulty(fault);
        }
        let post = request.method.as_str() == "POST";
        match (operation.as_str(), post) {
            ("info", false) => json(json!({
                "owningSystemUrl": self.base,
                "authInfo": {
                    "isTokenBasedSecurity": true,
                    "tokenServicesUrl": format!("{}/sharing/rest/generateToken", self.base)
                }
            })),
            ("oauth2/token", true) => self.token(&form),
            ("community/self", true) => self.community_self(request, &form),
            ("generateToken", true) => self.generate_token(&form),
            ("oauth2/revokeToken", true) => {
                if let Some(token) = form.get("auth_token") {
                    self.st().refresh_tokens.remove(token);
                }
                json(json!({"success": true}))
            }
            _ => arcgis_error(400, "Unable to process request."),
        }
    }

    fn issue(&self, user: &PortalUser, refresh_token: Option<String>) -> Value {
        let access = format!("{}..", random(48));
        let mut st = self.st();
        let ttl = st.token_ttl_seconds;
        st.tokens
            .insert(access.clone(), (user.clone(), now_ms() + ttl * 1000));
        let refresh = refresh_token.unwrap_or_else(|| random(32));
        st.refresh_tokens.insert(refresh.clone(), user.clone());
        let username = st
            .username_in_token_answer
            .clone()
            .unwrap_or_else(|| user.username.clone());
        json!({
            "access_token": access,
            "expires_in": ttl,
            "username": username,
            "refresh_token": refresh,
            "refresh_token_expires_in": 1_209_600,
            "ssl": true
        })
    }

    fn token(&self, form: &FormParams) -> ResponseTemplate {
        let client_id = form.get("client_id").unwrap_or_default();
        let secret_ok = match client_id {
            CLIENT_ID => form.get("client_secret") == Some(CLIENT_SECRET),
            PUBLIC_CLIENT_ID => form.get("client_secret").is_none(),
            _ => false,
        };
        if !secret_ok {
            return arcgis_error(400, "Invalid client_id or client_secret");
        }
        match form.get("grant_type") {
            Some("authorization_code") => {
                let Some(code) = form
                    .get("code")
                    .and_then(|code| self.st().codes.remove(code))
                else {
                    return arcgis_error(400, "Invalid authorization code");
                };
                let verifier = form.get("code_verifier").unwrap_or_default();
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
                let challenge = URL_SAFE_NO_PAD.encode(digest.as_ref());
                if code.client_id != client_id
                    || form.get("redirect_uri") != Some(code.redirect_uri.as_str())
                    || challenge != code.challenge
                {
                    return arcgis_error(400, "Invalid authorization code");
                }
                json(self.issue(&code.user, None))
            }
            Some("refresh_token") => {
                let token = form.get("refresh_token").unwrap_or_default().to_owned();
                let user = self.st().refresh_tokens.get(&token).cloned();
                let Some(user) = user else {
                    return arcgis_error(498, "Invalid refresh_token");
                };
                let rotate = self.st().rotate_refresh_tokens;
                let mut answer = self.issue(&user, Some(token.clone()));
                if rotate {
                    let new = random(32);
                    let mut st = self.st();
                    st.refresh_tokens.remove(&token);
                    st.refresh_tokens.insert(new.clone(), user);
                    answer["refresh_token"] = json!(new);
                } else if let Some(object) = answer.as_object_mut() {
                    object.remove("refresh_token");
                }
                json(answer)
            }
            _ => arcgis_error(400, "Invalid grant_type"),
        }
    }

    fn user_of(&self, token: &str) -> Option<PortalUser> {
        let st = self.st();
        let (user, expires) = st.tokens.get(token)?;
        (*expires > now_ms()).then(|| user.clone())
    }

    fn community_self(&self, request: &Request, form: &FormParams) -> ResponseTemplate {
        let header = request
            .headers
            .get("x-esri-authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::to_owned);
        let Some(token) = form.get("token").map(str::to_owned).or(header) else {
            return arcgis_error(499, "Token Required");
        };
        match self.user_of(&token) {
            Some(user) => json(user.self_json()),
            None => arcgis_error(498, "Invalid token."),
        }
    }

    fn generate_token(&self, form: &FormParams) -> ResponseTemplate {
        if form.get("request") != Some("getToken") || form.get("f") != Some("json") {
            return arcgis_error(400, "Unable to generate token.");
        }
        let Some(server_url) = form.get("serverUrl") else {
            return arcgis_error(400, "Unable to generate token.");
        };
        if self
            .user_of(form.get("token").unwrap_or_default())
            .is_none()
        {
            return arcgis_error(498, "Invalid token.");
        }
        let token = random(40);
        let mut st = self.st();
        st.server_tokens
            .insert(token.clone(), server_url.to_owned());
        json(json!({
            "token": token,
            "expires": now_ms() + st.server_token_ttl_ms,
            "ssl": false
        }))
    }

    fn server(&self, request: &Request) -> ResponseTemplate {
        let query = FormParams::parse(request.url.query().unwrap_or_default().as_bytes());
        let tokens = query.all("token");
        let Some(token) = tokens.first() else {
            return arcgis_error(499, "Token Required");
        };
        if tokens.len() != 1 {
            return arcgis_error(400, "More than one token");
        }
        match self.st().server_tokens.get(*token) {
            Some(server_url)
                if format!("{}{}", self.base, request.url.path())
                    .starts_with(server_url.as_str()) =>
            {
                json(
                    json!({"currentVersion": 11.3, "services": [{"name": "Parcels", "type": "FeatureServer"}]}),
                )
            }
            _ => arcgis_error(498, "Invalid token."),
        }
    }
}
