//! Clients: registration, allowed authentication methods, and the check of a
//! request's client authentication (Basic, form secret, `private_key_jwt`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey, Validation};
use serde_json::Value;
use wiremock::Request;

use super::*;

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

impl Inner {
    // ---- client authentication ----

    pub(super) fn authenticate_client(
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

    pub(super) fn verify_client_assertion(
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
        let par_url = format!("{}/par", self.issuer);
        let revoke_url = format!("{}/revoke", self.issuer);
        st.par
            .assertion_audiences
            .push(claims.get("aud").cloned().unwrap_or_default());
        let accepted = match st.par.issuer_audience_only {
            // FAPI 2.0 Security Profile 5.3.2.1 (as oidc-provider's FAPI profile checks it).
            true => vec![self.issuer.as_str()],
            // Like oidc-provider: the endpoint called (revocation, PAR) is a fine audience too.
            false => vec![
                token_url.as_str(),
                self.issuer.as_str(),
                revoke_url.as_str(),
                par_url.as_str(),
            ],
        };
        if !aud_contains(claims.get("aud"), &accepted) {
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
}

impl FakeOp {
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
}
