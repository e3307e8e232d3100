//! `private_key_jwt` client authentication (RFC 7523 section 2.2, OIDC Core 9): a short-lived
//! assertion signed with the client's key, sent as `client_assertion`.

use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::crypto;
use crate::error::{ApiError, InternalError};

/// The `client_assertion_type` value for JWT assertions.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    jti: String,
    iat: i64,
    exp: i64,
}

/// Why a client key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no usable private key.
    #[error("{path} holds no RSA or EC P-256 private key")]
    NoKey {
        /// The file.
        path: String,
    },
}

/// A client key loaded from a PEM file (RSA → RS256, EC P-256 → ES256).
#[derive(Clone)]
pub struct ClientKey {
    key: EncodingKey,
    algorithm: Algorithm,
}

impl ClientKey {
    /// Reads a PKCS#8 or PKCS#1/SEC1 PEM private key.
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyFileError> {
        let pem = std::fs::read(path).map_err(|source| KeyFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        if let Ok(key) = EncodingKey::from_rsa_pem(&pem) {
            return Ok(Self {
                key,
                algorithm: Algorithm::RS256,
            });
        }
        EncodingKey::from_ec_pem(&pem)
            .map(|key| Self {
                key,
                algorithm: Algorithm::ES256,
            })
            .map_err(|_| KeyFileError::NoKey {
                path: path.display().to_string(),
            })
    }

    /// A fresh assertion for `client_id` at `token_url`, valid for one minute.
    pub fn assertion(&self, client_id: &str, token_url: &str) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = AssertionClaims {
            iss: client_id,
            sub: client_id,
            aud: token_url,
            jti: crypto::random_token::<16>()?,
            iat: now,
            exp: now + 60,
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.key)
            .map_err(|error| InternalError::Sign(error).into())
    }
}
