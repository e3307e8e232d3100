//! `private_key_jwt` client authentication (RFC 7523 section 2.2, OIDC Core 9): a short-lived
//! assertion signed with the client's key, sent as `client_assertion`.

use std::path::Path;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::ClientKeyAlg;
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
    #[error("{path} holds no RSA, EC P-256 or Ed25519 private key")]
    NoKey {
        /// The file.
        path: String,
    },
    /// The key does not fit `private_key_alg`.
    #[error("{path} holds no key for private_key_alg {algorithm:?}")]
    WrongKind {
        /// The file.
        path: String,
        /// The configured algorithm.
        algorithm: ClientKeyAlg,
    },
    /// An RSA key aws-lc-rs does not sign with: its modulus must have 2048 to 8192 bits
    /// (RFC 7518 3.3 and 3.5, FAPI 2.0 Security Profile 5.4: at least 2048).
    #[error("{path} holds an RSA key outside 2048 to 8192 bits (at least 2048 are required)")]
    RsaKeySize {
        /// The file.
        path: String,
    },
}

/// A client key loaded from a PEM file (RSA → RS256, EC P-256 → ES256, Ed25519 → EdDSA,
/// unless `private_key_alg` says PS256 for an RSA key).
#[derive(Clone)]
pub struct ClientKey {
    key: EncodingKey,
    algorithm: Algorithm,
    /// The `aud` of every assertion, when not the endpoint's URL (FAPI 2.0: the issuer).
    audience: Option<String>,
}

impl ClientKey {
    /// Reads a PKCS#8 or PKCS#1/SEC1 PEM private key.
    pub fn from_pem_file(path: &Path) -> Result<Self, KeyFileError> {
        Self::from_pem_file_for(path, None, false)
    }

    /// Reads a PEM private key for `algorithm` (absent: the key's usual one; an RSA key
    /// signs PS256 when `rsa_pss` is set, as FAPI 2.0 requires).
    pub fn from_pem_file_for(
        path: &Path,
        algorithm: Option<ClientKeyAlg>,
        rsa_pss: bool,
    ) -> Result<Self, KeyFileError> {
        let name = || path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| KeyFileError::Read {
            path: name(),
            source,
        })?;
        let (key, usual) = if let Ok(key) = EncodingKey::from_rsa_pem(&pem) {
            // Refused here rather than at the first login's assertion.
            aws_lc_rs::signature::RsaKeyPair::from_der(key.as_bytes())
                .map_err(|_| KeyFileError::RsaKeySize { path: name() })?;
            let usual = if rsa_pss {
                Algorithm::PS256
            } else {
                Algorithm::RS256
            };
            (key, usual)
        } else if let Ok(key) = EncodingKey::from_ec_pem(&pem) {
            (key, Algorithm::ES256)
        } else if let Ok(key) = EncodingKey::from_ed_pem(&pem) {
            (key, Algorithm::EdDSA)
        } else {
            return Err(KeyFileError::NoKey { path: name() });
        };
        let algorithm = match algorithm {
            None => usual,
            Some(wanted) => {
                let algorithm = match wanted {
                    ClientKeyAlg::PS256 => Algorithm::PS256,
                    ClientKeyAlg::RS256 => Algorithm::RS256,
                    ClientKeyAlg::ES256 => Algorithm::ES256,
                    ClientKeyAlg::EdDSA => Algorithm::EdDSA,
                };
                if key.family() != algorithm.family() {
                    return Err(KeyFileError::WrongKind {
                        path: name(),
                        algorithm: wanted,
                    });
                }
                algorithm
            }
        };
        Ok(Self {
            key,
            algorithm,
            audience: None,
        })
    }

    /// This key with `audience` as every assertion's `aud` instead of the endpoint's URL.
    pub fn with_audience(mut self, audience: String) -> Self {
        self.audience = Some(audience);
        self
    }

    /// The algorithm assertions are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// A fresh assertion for `client_id` at `token_url` (or for the audience set with
    /// [`ClientKey::with_audience`]), valid for one minute.
    pub fn assertion(&self, client_id: &str, token_url: &str) -> Result<String, ApiError> {
        let now = chrono::Utc::now().timestamp();
        let claims = AssertionClaims {
            iss: client_id,
            sub: client_id,
            aud: self.audience.as_deref().unwrap_or(token_url),
            jti: crypto::random_token::<16>()?,
            iat: now,
            exp: now + 60,
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.key)
            .map_err(|error| InternalError::Sign(error).into())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    #[test]
    fn an_rsa_key_under_2048_bits_is_refused_when_read_and_one_of_2048_signs() {
        match ClientKey::from_pem_file_for(&fixture("client-rsa-1024.pem"), None, true) {
            Err(error @ KeyFileError::RsaKeySize { .. }) => {
                assert!(error.to_string().contains("client-rsa-1024.pem"), "{error}");
            }
            other => panic!("a 1024-bit key was not refused: {:?}", other.err()),
        }
        let key = ClientKey::from_pem_file_for(&fixture("client-rsa.pem"), None, true).unwrap();
        assert_eq!(key.algorithm(), Algorithm::PS256);
        assert!(key.assertion("client", "https://op.example/token").is_ok());
    }
}
