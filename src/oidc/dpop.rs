//! DPoP (RFC 9449): a session's own key pair, the proofs made with it for each call that
//! uses or obtains the session's tokens, and the provider's `DPoP-Nonce` (section 8),
//! remembered per provider and sent on one retry when the provider demands it.
//!
//! The key is an ECDSA P-256 key (ES256) drawn by aws-lc-rs at login; the session record
//! keeps its PKCS#8 form sealed, and only its public half ever leaves the service, as the
//! `jwk` of a proof signed by jsonwebtoken. Its crypto provider (`crypto::jose`) keeps
//! the parsed key pair, so a proof per proxied request costs one signature.

use std::sync::Mutex;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{CommonParameters, Jwk};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;
use url::Url;

use crate::crypto;

/// The `typ` of a DPoP proof (RFC 9449 section 4.2).
const PROOF_TYPE: &str = "dpop+jwt";

/// The only proof algorithm we sign with.
pub const DPOP_ALGORITHM: &str = "ES256";

/// Why a proof could not be made or a key read.
#[derive(Debug, thiserror::Error)]
#[error("DPoP key or proof failed")]
pub struct DpopError;

/// A session's DPoP key pair. Its `Debug` shows nothing of the key.
pub struct DpopKey {
    encoding: EncodingKey,
    jwk: Jwk,
    stored: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("DpopKey(***)")
    }
}

#[derive(Serialize)]
struct ProofClaims<'a> {
    jti: String,
    htm: &'a str,
    htu: &'a str,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    ath: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
}

impl DpopKey {
    /// A fresh P-256 key pair.
    pub fn generate() -> Result<Self, DpopError> {
        let document =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| DpopError)?;
        Self::from_pkcs8(document.as_ref())
    }

    /// The key as the session record keeps it (base64url PKCS#8, sealed with the record).
    pub fn from_stored(stored: &str) -> Result<Self, DpopError> {
        let der = URL_SAFE_NO_PAD.decode(stored).map_err(|_| DpopError)?;
        Self::from_pkcs8(&der)
    }

    fn from_pkcs8(der: &[u8]) -> Result<Self, DpopError> {
        let encoding = EncodingKey::from_ec_der(der);
        let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256).map_err(|_| DpopError)?;
        // Only the public coordinates: no `alg`, `kid` or other members (RFC 9449 4.2).
        jwk.common = CommonParameters::default();
        Ok(Self {
            encoding,
            jwk,
            stored: URL_SAFE_NO_PAD.encode(der),
        })
    }

    /// What the session record keeps.
    pub fn stored(&self) -> &str {
        &self.stored
    }

    /// The RFC 7638 thumbprint (SHA-256) of the public key, as `cnf.jkt` names it.
    pub fn thumbprint(&self) -> Result<String, DpopError> {
        self.jwk
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .map_err(|_| DpopError)
    }

    /// A fresh proof (RFC 9449 section 4.2) for `method` on `url` (query and fragment
    /// left out of `htu`), with `ath` when `access_token` is presented and the provider's
    /// `nonce` when it has one.
    pub fn proof(
        &self,
        method: &str,
        url: &Url,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, DpopError> {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        let claims = ProofClaims {
            jti: crypto::random_token::<16>().map_err(|_| DpopError)?,
            htm: method,
            htu: htu.as_str(),
            iat: chrono::Utc::now().timestamp(),
            ath: access_token.map(|token| {
                URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
            }),
            nonce,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some(PROOF_TYPE.to_owned());
        header.jwk = Some(self.jwk.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(|_| DpopError)
    }
}

/// The last `DPoP-Nonce` one server (a provider) handed out (RFC 9449 section 8).
#[derive(Default)]
pub struct DpopNonce(Mutex<Option<String>>);

impl DpopNonce {
    /// The nonce to send, if the server handed one out.
    pub fn get(&self) -> Option<String> {
        self.0.lock().ok().and_then(|nonce| nonce.clone())
    }

    fn remember(&self, response: &reqwest::Response) -> bool {
        self.remember_value(
            response
                .headers()
                .get("dpop-nonce")
                .and_then(|value| value.to_str().ok()),
        )
    }

    /// Keeps a `DPoP-Nonce` header's value; whether it is new.
    pub fn remember_value(&self, fresh: Option<&str>) -> bool {
        let Some(fresh) = fresh else {
            return false;
        };
        match self.0.lock() {
            Ok(mut nonce) if nonce.as_deref() != Some(fresh) => {
                *nonce = Some(fresh.to_owned());
                true
            }
            _ => false,
        }
    }
}

/// What a call needs to carry proofs: the session's key, the server's nonce, and the
/// access token it presents (for `ath`), if any.
#[derive(Clone, Copy)]
pub struct Prover<'a> {
    /// The session's key.
    pub key: &'a DpopKey,
    /// The server's nonce.
    pub nonce: &'a DpopNonce,
    /// The access token the request presents.
    pub access_token: Option<&'a str>,
}

/// Why a call with a proof failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No proof could be made.
    #[error("the DPoP proof could not be made")]
    Proof,
    /// The request could not be built (e.g. its client assertion not signed).
    #[error("the request could not be built")]
    Build,
    /// The request failed.
    #[error("the request failed: {0}")]
    Http(#[from] reqwest::Error),
}

/// Sends the request `build` makes with a fresh proof; when the server demands a nonce it
/// has just handed out (`use_dpop_nonce`, RFC 9449 sections 8 and 9), builds it again (a
/// client assertion must not be replayed either) and sends it once more with a new proof
/// carrying the nonce.
pub async fn send(
    http: &reqwest::Client,
    build: impl Fn() -> Result<reqwest::Request, SendError>,
    prover: Prover<'_>,
    call: &'static str,
) -> Result<reqwest::Response, SendError> {
    let response = send_once(http, build()?, prover, call).await?;
    if !prover.nonce.remember(&response) {
        return Ok(response);
    }
    let (demanded, response) = demands_nonce(response).await?;
    if !demanded {
        return Ok(response);
    }
    send_once(http, build()?, prover, call).await
}

/// Sends `request` with a fresh proof, once, through the traced outbound path (`call`
/// names its span); keeps the nonce the answer hands out.
async fn send_once(
    http: &reqwest::Client,
    request: reqwest::Request,
    prover: Prover<'_>,
    call: &'static str,
) -> Result<reqwest::Response, SendError> {
    let request = reqwest::RequestBuilder::from_parts(http.clone(), with_proof(request, prover)?);
    let response = crate::http_client::send(request, call).await?;
    prover.nonce.remember(&response);
    Ok(response)
}

/// Whether an OAuth error code is RFC 9449's demand for a nonce.
pub fn is_nonce_demand(error: &str) -> bool {
    error == "use_dpop_nonce"
}

fn with_proof(
    mut request: reqwest::Request,
    prover: Prover<'_>,
) -> Result<reqwest::Request, SendError> {
    let proof = prover
        .key
        .proof(
            request.method().as_str(),
            request.url(),
            prover.access_token,
            prover.nonce.get().as_deref(),
        )
        .map_err(|_| SendError::Proof)?;
    let value = reqwest::header::HeaderValue::from_str(&proof).map_err(|_| SendError::Proof)?;
    request.headers_mut().insert("dpop", value);
    Ok(request)
}

/// Whether these `WWW-Authenticate` values name the `use_dpop_nonce` error (RFC 9449
/// section 9).
pub fn demands_nonce_header<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    values
        .map(String::from_utf8_lossy)
        .any(|text| text.contains("use_dpop_nonce"))
}

/// Whether `response` is a `use_dpop_nonce` error: a 401 whose `WWW-Authenticate` names
/// it (resource servers), or a 400 whose JSON `error` is it (authorization servers). The
/// response comes back whole either way.
async fn demands_nonce(
    response: reqwest::Response,
) -> Result<(bool, reqwest::Response), reqwest::Error> {
    const DEMAND: &str = "use_dpop_nonce";
    match response.status().as_u16() {
        401 => {
            let demanded = response
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .any(|value| value.to_str().is_ok_and(|text| text.contains(DEMAND)));
            Ok((demanded, response))
        }
        400 => {
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            let demanded = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|value| value.get("error")?.as_str().map(|error| error == DEMAND))
                .unwrap_or(false);
            let mut rebuilt = openidconnect::http::Response::new(body);
            *rebuilt.status_mut() = status;
            *rebuilt.headers_mut() = headers;
            Ok((demanded, reqwest::Response::from(rebuilt)))
        }
        _ => Ok((false, response)),
    }
}

/// One attempt of openidconnect's request (the code exchange) with a proof, as its HTTP
/// client; the caller retries a `use_dpop_nonce` answer with a request built anew.
pub async fn send_for_openidconnect(
    http: &reqwest::Client,
    request: openidconnect::HttpRequest,
    prover: Prover<'_>,
) -> Result<openidconnect::HttpResponse, openidconnect::HttpClientError<reqwest::Error>> {
    let request = reqwest::Request::try_from(request).map_err(Box::new)?;
    let response =
        send_once(http, request, prover, "token")
            .await
            .map_err(|error| match error {
                SendError::Http(error) => openidconnect::HttpClientError::Reqwest(Box::new(error)),
                other => openidconnect::HttpClientError::Other(other.to_string()),
            })?;
    let mut builder = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    let body = response.bytes().await.map_err(Box::new)?;
    builder
        .body(body.to_vec())
        .map_err(openidconnect::HttpClientError::Http)
}

/// Whether a token answer's `token_type` says DPoP (RFC 9449 section 5; case-insensitive
/// as RFC 6749 section 5.1 has it).
pub fn is_dpop_token_type(token_type: &str) -> bool {
    token_type.eq_ignore_ascii_case("DPoP")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_proof_carries_the_public_key_and_every_claim() {
        let key = DpopKey::generate().unwrap();
        let again = DpopKey::from_stored(key.stored()).unwrap();
        assert_eq!(key.thumbprint().unwrap(), again.thumbprint().unwrap());
        let url = Url::parse("https://op.example/token?x=1#f").unwrap();
        let proof = key.proof("POST", &url, Some("token"), Some("n1")).unwrap();
        let header = jsonwebtoken::decode_header(&proof).unwrap();
        assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
        assert_eq!(header.alg, Algorithm::ES256);
        let jwk = header.jwk.unwrap();
        let text = serde_json::to_string(&jwk).unwrap();
        assert!(!text.contains("\"d\""), "{text}");
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(&proof, &decoding, &validation)
            .unwrap()
            .claims;
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://op.example/token");
        assert_eq!(claims["nonce"], "n1");
        assert_eq!(
            claims["ath"],
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, b"token"))
        );
        let other = key.proof("POST", &url, None, None).unwrap();
        let other: serde_json::Value =
            jsonwebtoken::dangerous::insecure_decode_claims(&other).unwrap();
        assert_ne!(other["jti"], claims["jti"]);
        assert!(other.get("ath").is_none() && other.get("nonce").is_none());
    }
}
