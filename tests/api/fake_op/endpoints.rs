//! The provider's endpoints other than the token endpoint: discovery, the login
//! page stand-in ([`FakeOp::authorize`]), userinfo, introspection, end-session,
//! and the request router.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};
use url::Url;
use wiremock::{Request, ResponseTemplate};

use super::*;

impl Inner {
    pub(super) fn token_endpoint(&self) -> String {
        format!("{}/token", self.issuer)
    }

    pub(super) fn discovery(&self, st: &State) -> Value {
        let i = &self.issuer;
        let mut document = json!({
            "issuer": i,
            "authorization_endpoint": format!("{i}/authorize"),
            "token_endpoint": format!("{i}/token"),
            "userinfo_endpoint": format!("{i}/userinfo"),
            "jwks_uri": format!("{i}/jwks"),
            "end_session_endpoint": format!("{i}/logout"),
            "introspection_endpoint": format!("{i}/introspect"),
            "revocation_endpoint": format!("{i}/revoke"),
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
        self.par_discovery(st, &mut document);
        self.dpop_discovery(st, &mut document);
        document
    }

    pub(super) fn handle(&self, req: &Request) -> ResponseTemplate {
        let path = req.url.path().to_owned();
        let mut st = self.lock();
        *st.calls.entry(path.clone()).or_default() += 1;
        if let Some(traceparent) = req.headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            st.traceparents.push((path.clone(), traceparent.to_owned()));
        }
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
            ("POST", "/par") => self.par(req, &mut st),
            ("GET", "/jwks") => json_response(200, self.jwks(&st)),
            ("POST", "/token") if req.headers.contains_key("dpop") => {
                self.token_with_dpop(req, &mut st)
            }
            ("POST", "/token") => self.token(req, &mut st),
            ("GET" | "POST", "/userinfo")
                if req
                    .headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("DPoP ")) =>
            {
                self.userinfo_with_dpop(req, &mut st)
            }
            ("GET" | "POST", "/userinfo") => self.userinfo(req, &st),
            ("POST", "/introspect") => self.introspect(req, &mut st),
            ("POST", "/revoke") => self.revoke(req, &mut st),
            ("GET", "/logout") => self.end_session(req, &mut st),
            ("GET", "/authorize") => ResponseTemplate::new(400)
                .set_body_string("fake OP has no login page: call FakeOp::authorize with this URL"),
            _ => oauth_error(404, "not_found", "no such endpoint on the fake OP").response(),
        }
    }
    pub(super) fn active_token(&self, st: &State, token: &str) -> Option<IssuedToken> {
        st.access_tokens
            .get(token)
            .filter(|t| t.exp > now() && !st.revoked_access.contains(token))
            .cloned()
    }

    pub(super) fn userinfo(&self, req: &Request, st: &State) -> ResponseTemplate {
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
            Some(user) => json_response(200, Value::Object(user.claims())),
            None => oauth_error(
                401,
                "invalid_token",
                "missing, unknown or expired access token",
            )
            .response(),
        }
    }

    /// RFC 7009: a refresh token revokes its grant, an access token itself; unknown
    /// tokens are fine (200 all the same).
    pub(super) fn revoke(&self, req: &Request, st: &mut State) -> ResponseTemplate {
        let form = FormParams::parse(&req.body);
        let response = match self.authenticate_client(req, &form, st) {
            Err(e) => e.response(),
            Ok(_) => match (st.revocation_failure, form.get("token")) {
                (Some(status), _) => {
                    oauth_error(status, "server_error", "failure switched on by the test")
                        .response()
                }
                (None, None) => invalid_request("missing token").response(),
                (None, Some(token)) => {
                    let hint = form.get("token_type_hint").unwrap_or("-").to_owned();
                    if let Some(grant) = st.refresh.get(token).map(|r| r.grant_id) {
                        st.revoked_grants.insert(grant);
                    } else {
                        st.revoked_access.insert(token.to_owned());
                    }
                    let method = st.last_client_auth.as_ref().map(|(_, m)| *m);
                    st.revocations
                        .push((hint, method.unwrap_or(ClientAuthMethod::ClientSecretBasic)));
                    ResponseTemplate::new(200)
                }
            },
        };
        match st.revocation_delay {
            Some(delay) => response.set_delay(delay),
            None => response,
        }
    }

    pub(super) fn introspect(&self, req: &Request, st: &mut State) -> ResponseTemplate {
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
        json_response(200, Value::Object(body))
    }

    pub(super) fn end_session(&self, req: &Request, st: &mut State) -> ResponseTemplate {
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

impl FakeOp {
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
            q.append_pair("iss", &self.inner.issuer);
        }
        Ok(callback.to_string())
    }

    /// The callback URL of a refused login: `<redirect_uri>?error=<error>&state=..&iss=..`.
    pub fn authorize_error(&self, authorize_url: &str, error: &str) -> String {
        let (params, mut callback) = self
            .check_authorize_request(authorize_url, false)
            .unwrap_or_else(|e| panic!("FakeOp::authorize_error: {e}\nURL: {authorize_url}"));
        {
            let mut q = callback.query_pairs_mut();
            q.append_pair("error", error);
            if let Some(state) = params.get("state") {
                q.append_pair("state", state);
            }
            q.append_pair("iss", &self.inner.issuer);
        }
        callback.to_string()
    }

    pub(super) fn check_authorize_request(
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
        let params = self.pushed_or_direct(params)?;
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

    /// The `sid` of the most recent login.
    pub fn sid_of_last_login(&self) -> Option<String> {
        self.st().last_sid.clone()
    }
}
