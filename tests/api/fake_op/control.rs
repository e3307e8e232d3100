//! Knobs and counters: how the token endpoint behaves (lifetimes, delays,
//! failures, rotation), overrides of discovery, userinfo and introspection, ID
//! token defects, and what the provider has seen.

use std::time::Duration;

use super::*;

impl FakeOp {
    // ---- token endpoint behaviour ----

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

    /// Whether code and password grants issue refresh tokens (default on).
    pub fn set_issue_refresh_tokens(&self, on: bool) {
        self.st().issue_refresh = on;
    }

    /// Revocations received (`token_type_hint`, client authentication), in order.
    pub fn revocations(&self) -> Vec<(String, ClientAuthMethod)> {
        self.st().revocations.clone()
    }

    /// Delays every revocation answer (0 = none).
    pub fn set_revocation_delay(&self, ms: u64) {
        self.st().revocation_delay = (ms > 0).then(|| Duration::from_millis(ms));
    }

    /// Some(status): the revocation endpoint answers that status with `server_error`.
    pub fn fail_revocation(&self, status: Option<u16>) {
        self.st().revocation_failure = status;
    }

    /// The refresh tokens issued so far whose grant is not revoked.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        let st = self.st();
        st.refresh
            .iter()
            .filter(|(_, grant)| !st.revoked_grants.contains(&grant.grant_id))
            .map(|(token, _)| token.clone())
            .collect()
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

    /// The `traceparent` headers received, with the path of each request, in order.
    pub fn traceparents(&self) -> Vec<(String, String)> {
        self.st().traceparents.clone()
    }

    /// Requests seen for a path (e.g. "/token", "/userinfo", "/.well-known/openid-configuration").
    pub fn calls(&self, path: &str) -> usize {
        self.st().calls.get(path).copied().unwrap_or(0)
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
}
