//! RFC 9449 DPoP at the fake provider: proofs checked field by field at the token and
//! userinfo endpoints (and kept for tests to look at), tokens bound to the proof's key,
//! a `DPoP-Nonce` demanded on request, and a wrong `token_type` on request.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};
use wiremock::{Request, ResponseTemplate};

use super::*;

/// A proof the provider received, as it was sent.
#[derive(Clone, Debug)]
pub struct SeenProof {
    /// The endpoint path it came to (`/token`, `/userinfo`).
    pub path: String,
    /// Its JOSE header.
    pub header: Value,
    /// Its claims.
    pub claims: Value,
}

/// DPoP state of the fake provider.
#[derive(Default)]
pub(super) struct DpopState {
    /// A nonce every proof must carry (RFC 9449 section 8).
    nonce: Option<String>,
    /// Token answers say `Bearer` although a proof came.
    wrong_token_type: bool,
    /// Every proof received.
    proofs: Vec<SeenProof>,
    /// `jti`s seen.
    jtis: HashSet<String>,
    /// Access token → the thumbprint of the key it is bound to.
    bound: HashMap<String, String>,
    /// `dpop_signing_alg_values_supported` in discovery.
    algorithms: Vec<String>,
}

impl DpopState {
    /// Proofs of ES256 and PS256 keys accepted, no nonce demanded.
    pub(super) fn new() -> Self {
        Self {
            algorithms: vec!["ES256".to_owned(), "PS256".to_owned()],
            ..Self::default()
        }
    }
}

fn refuse(status: u16, error: &'static str, description: &'static str) -> ResponseTemplate {
    let response = json_response(
        status,
        json!({ "error": error, "error_description": description }),
    );
    match status {
        401 => response.insert_header("www-authenticate", format!("DPoP error=\"{error}\"")),
        _ => response,
    }
}

impl Inner {
    pub(super) fn dpop_discovery(&self, st: &State, document: &mut Value) {
        if !st.dpop.algorithms.is_empty() {
            document["dpop_signing_alg_values_supported"] = json!(st.dpop.algorithms);
        }
    }

    #[allow(clippy::result_large_err)]
    /// Checks the request's `DPoP` proof for `htm`/`htu` and, with a token, `ath`;
    /// returns the key's thumbprint or the error answer (`status` 400 at the token
    /// endpoint, 401 at a resource).
    fn check_proof(
        &self,
        req: &Request,
        st: &mut State,
        access_token: Option<&str>,
        status: u16,
    ) -> Result<Option<String>, ResponseTemplate> {
        let proofs: Vec<&str> = req
            .headers
            .get_all("dpop")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        let proof = match proofs.as_slice() {
            [] => return Ok(None),
            [one] => *one,
            _ => return Err(refuse(status, "invalid_dpop_proof", "several DPoP headers")),
        };
        let bad = |why: &'static str| refuse(status, "invalid_dpop_proof", why);
        let header = jsonwebtoken::decode_header(proof).map_err(|_| bad("header unreadable"))?;
        let raw_header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(proof.split('.').next().unwrap_or_default())
                .map_err(|_| bad("header unreadable"))?,
        )
        .map_err(|_| bad("header unreadable"))?;
        let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(proof)
            .map_err(|_| bad("claims unreadable"))?;
        st.dpop.proofs.push(SeenProof {
            path: req.url.path().to_owned(),
            header: raw_header.clone(),
            claims: claims.clone(),
        });
        if header.typ.as_deref() != Some("dpop+jwt") {
            return Err(bad("typ must be dpop+jwt"));
        }
        if !matches!(
            header.alg,
            Algorithm::ES256 | Algorithm::PS256 | Algorithm::EdDSA
        ) {
            return Err(bad("unsupported alg"));
        }
        let jwk: Jwk = header.jwk.ok_or_else(|| bad("no jwk"))?;
        if raw_header["jwk"].get("d").is_some() {
            return Err(bad("jwk carries a private key"));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| bad("jwk unusable"))?;
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        jsonwebtoken::decode::<Value>(proof, &key, &validation)
            .map_err(|_| bad("signature invalid"))?;
        if claims["htm"] != json!(req.method.as_str()) {
            return Err(bad("htm mismatch"));
        }
        let htu = format!("{}{}", self.issuer, req.url.path());
        if claims["htu"] != json!(htu) {
            return Err(bad("htu mismatch"));
        }
        let iat = claims["iat"].as_i64().ok_or_else(|| bad("no iat"))?;
        if (iat - now()).abs() > 60 {
            return Err(bad("iat out of range"));
        }
        let jti = claims["jti"].as_str().ok_or_else(|| bad("no jti"))?;
        if !st.dpop.jtis.insert(jti.to_owned()) {
            return Err(bad("jti replayed"));
        }
        if let Some(token) = access_token {
            let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                token.as_bytes(),
            ));
            if claims["ath"] != json!(ath) {
                return Err(bad("ath mismatch"));
            }
        }
        if let Some(nonce) = st.dpop.nonce.clone()
            && claims["nonce"] != json!(nonce)
        {
            let error = refuse(status, "use_dpop_nonce", "use the DPoP-Nonce");
            return Err(error.insert_header("dpop-nonce", nonce.as_str()));
        }
        jwk.thumbprint(ThumbprintHash::SHA256)
            .map(Some)
            .map_err(|_| bad("no thumbprint"))
    }

    /// The token endpoint with DPoP: a proof binds the issued access token (`token_type`
    /// `DPoP`, unless the test wants it wrong).
    pub(super) fn token_with_dpop(&self, req: &Request, st: &mut State) -> ResponseTemplate {
        let jkt = match self.check_proof(req, st, None, 400) {
            Ok(jkt) => jkt,
            Err(answer) => return answer,
        };
        let form = FormParams::parse(&req.body);
        let grant = form.get("grant_type").unwrap_or_default().to_owned();
        *st.token_calls.entry(grant.clone()).or_default() += 1;
        st.last_token_request.insert(grant.clone(), form.clone());
        match self.token_reply(req, &form, &grant, st) {
            Ok(mut body) => {
                if let (Some(jkt), Some(token)) = (&jkt, body["access_token"].as_str()) {
                    st.dpop.bound.insert(token.to_owned(), jkt.clone());
                    if !st.dpop.wrong_token_type {
                        body["token_type"] = json!("DPoP");
                    }
                }
                let answer = json_response(200, body).insert_header("pragma", "no-cache");
                match &st.dpop.nonce {
                    Some(nonce) => answer.insert_header("dpop-nonce", nonce.as_str()),
                    None => answer,
                }
            }
            Err(error) => error.response(),
        }
    }

    /// Userinfo for `Authorization: DPoP <token>`: the proof must carry `ath` and come
    /// from the key the token is bound to.
    pub(super) fn userinfo_with_dpop(&self, req: &Request, st: &mut State) -> ResponseTemplate {
        let token = req
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("DPoP "))
            .unwrap_or_default()
            .to_owned();
        let jkt = match self.check_proof(req, st, Some(&token), 401) {
            Ok(Some(jkt)) => jkt,
            Ok(None) => return refuse(401, "invalid_dpop_proof", "no DPoP proof"),
            Err(answer) => return answer,
        };
        if st.dpop.bound.get(&token) != Some(&jkt) {
            return refuse(401, "invalid_token", "token not bound to the proof's key");
        }
        match self.active_token(st, &token).and_then(|t| t.user) {
            Some(user) => json_response(200, Value::Object(user.claims())),
            None => refuse(401, "invalid_token", "unknown or expired token"),
        }
    }
}

impl FakeOp {
    /// Demands this `DPoP-Nonce` in every proof (None: none).
    pub fn demand_dpop_nonce(&self, nonce: Option<&str>) {
        self.st().dpop.nonce = nonce.map(str::to_owned);
    }

    /// Token answers to proofs say `Bearer` (a provider that ignored the proof).
    pub fn set_dpop_wrong_token_type(&self, wrong: bool) {
        self.st().dpop.wrong_token_type = wrong;
    }

    /// `dpop_signing_alg_values_supported` in discovery (empty: not advertised).
    pub fn set_dpop_algorithms(&self, algorithms: &[&str]) {
        self.st().dpop.algorithms = algorithms.iter().map(|a| (*a).to_owned()).collect();
    }

    /// Every DPoP proof received, in order.
    pub fn dpop_proofs(&self) -> Vec<SeenProof> {
        self.st().dpop.proofs.clone()
    }

    /// The thumbprint of the key each DPoP-bound access token is bound to.
    pub fn dpop_bound_tokens(&self) -> HashMap<String, String> {
        self.st().dpop.bound.clone()
    }
}
