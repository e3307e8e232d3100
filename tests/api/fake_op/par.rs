//! RFC 9126 pushed authorization requests: the `/par` endpoint, the `request_uri`s it
//! hands out and what [`FakeOp::authorize`] makes of them, and the knobs for tests.

use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

use super::*;

const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// PAR state of the fake provider.
#[derive(Default)]
pub(super) struct ParState {
    /// Discovery says `require_pushed_authorization_requests`; direct requests are refused.
    required: bool,
    /// Discovery names no PAR endpoint.
    hidden: bool,
    /// The PAR endpoint answers `{"error": …}` with this status.
    failure: Option<(u16, String)>,
    /// Pushed requests by `request_uri` (single use).
    pushed: HashMap<String, FormParams>,
    /// Every pushed form as received (client authentication included).
    received: Vec<FormParams>,
    /// Only the issuer is accepted as a client assertion's `aud` (FAPI 2.0).
    pub(super) issuer_audience_only: bool,
    /// The `aud` of every client assertion seen.
    pub(super) assertion_audiences: Vec<Value>,
}

impl Inner {
    pub(super) fn par_discovery(&self, st: &State, document: &mut Value) {
        if st.par.hidden {
            return;
        }
        document["pushed_authorization_request_endpoint"] = json!(format!("{}/par", self.issuer));
        document["require_pushed_authorization_requests"] = json!(st.par.required);
    }

    /// RFC 9126 section 2: client authentication, no `request_uri` inside, 201 with a
    /// fresh `request_uri`.
    pub(super) fn par(&self, req: &Request, st: &mut State) -> ResponseTemplate {
        let form = FormParams::parse(&req.body);
        st.par.received.push(form.clone());
        if let Some((status, error)) = &st.par.failure {
            return oauth_error(*status, error, "failure switched on by the test").response();
        }
        let client_id = match self.authenticate_client(req, &form, st) {
            Ok(client_id) => client_id,
            Err(error) => return error.response(),
        };
        if form.get("request_uri").is_some() {
            return invalid_request("request_uri inside a pushed request").response();
        }
        let mut params: Vec<(String, String)> = form
            .0
            .iter()
            .filter(|(name, _)| {
                !matches!(
                    name.as_str(),
                    "client_secret" | "client_assertion" | "client_assertion_type"
                )
            })
            .cloned()
            .collect();
        if form.get("client_id").is_none() {
            params.push(("client_id".to_owned(), client_id));
        }
        let request_uri = format!("{REQUEST_URI_PREFIX}{}", random_string(16));
        st.par
            .pushed
            .insert(request_uri.clone(), FormParams(params));
        json_response(201, json!({ "request_uri": request_uri, "expires_in": 60 }))
    }
}

impl FakeOp {
    /// The parameters of an authorization request: those pushed under its `request_uri`
    /// (which must then come alone with `client_id`), else the URL's own; with PAR
    /// required, a direct request is refused.
    pub(super) fn pushed_or_direct(&self, params: FormParams) -> Result<FormParams, String> {
        let mut st = self.st();
        let Some(request_uri) = params.get("request_uri") else {
            return match st.par.required {
                true => Err("PAR is required: the request has no request_uri".to_owned()),
                false => Ok(params),
            };
        };
        let names: Vec<&str> = params.0.iter().map(|(name, _)| name.as_str()).collect();
        if names != ["client_id", "request_uri"] {
            return Err(format!("a pushed request's URL carries {names:?}"));
        }
        let pushed = st
            .par
            .pushed
            .remove(request_uri)
            .ok_or("unknown or used request_uri")?;
        if pushed.get("client_id") != params.get("client_id") {
            return Err("client_id differs from the pushed request's".to_owned());
        }
        Ok(pushed)
    }

    /// Discovery says `require_pushed_authorization_requests` and direct requests fail.
    pub fn set_par_required(&self, required: bool) {
        self.st().par.required = required;
    }

    /// Discovery names no PAR endpoint.
    pub fn hide_par_endpoint(&self, hidden: bool) {
        self.st().par.hidden = hidden;
    }

    /// Some((status, error)): the PAR endpoint answers `{"error": error}` with that status.
    pub fn fail_par_endpoint(&self, failure: Option<(u16, &str)>) {
        self.st().par.failure = failure.map(|(status, error)| (status, error.to_owned()));
    }

    /// Every form the PAR endpoint received, in order.
    pub fn pushed_requests(&self) -> Vec<FormParams> {
        self.st().par.received.clone()
    }

    /// Accept only the issuer as a client assertion's `aud` (FAPI 2.0).
    pub fn require_issuer_audience(&self, on: bool) {
        self.st().par.issuer_audience_only = on;
    }

    /// The `aud` of every client assertion seen, in order.
    pub fn assertion_audiences(&self) -> Vec<Value> {
        self.st().par.assertion_audiences.clone()
    }
}
