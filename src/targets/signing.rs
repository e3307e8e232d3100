//! The key the `jwt` strategy signs with (`[signing] key_file`: RSA → RS256, EC P-256 →
//! ES256), published at `/.well-known/jwks.json`. Without a key file an ephemeral P-256 key
//! is generated at start (with a warning: every instance then has its own key).

use std::path::Path;

use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::error::{ApiError, InternalError};

/// Signs our own target tokens.
pub struct Signer {
    key: EncodingKey,
    algorithm: Algorithm,
    kid: String,
    jwks: String,
}

impl Signer {
    /// Loads `key_file`, or makes an ephemeral key when there is none.
    pub fn load(key_file: Option<&Path>) -> Result<Self, String> {
        let (key, algorithm) = match key_file {
            Some(path) => {
                let pem = std::fs::read(path)
                    .map_err(|error| format!("signing.key_file {}: {error}", path.display()))?;
                if let Ok(key) = EncodingKey::from_rsa_pem(&pem) {
                    (key, Algorithm::RS256)
                } else {
                    let key = EncodingKey::from_ec_pem(&pem).map_err(|_| {
                        format!(
                            "signing.key_file {} holds no RSA or EC P-256 private key",
                            path.display()
                        )
                    })?;
                    (key, Algorithm::ES256)
                }
            }
            None => {
                tracing::warn!(
                    "no signing.key_file: jwt target tokens are signed with an ephemeral key that changes at every start and differs per instance"
                );
                let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &aws_lc_rs::rand::SystemRandom::new(),
                )
                .map_err(|_| "cannot generate an ephemeral signing key".to_owned())?;
                (EncodingKey::from_ec_der(pkcs8.as_ref()), Algorithm::ES256)
            }
        };
        let mut jwk = Jwk::from_encoding_key(&key, algorithm)
            .map_err(|error| format!("cannot derive the public signing key: {error}"))?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|error| format!("cannot name the signing key: {error}"))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] })
            .map_err(|error| format!("cannot publish the signing key: {error}"))?;
        Ok(Self {
            key,
            algorithm,
            kid,
            jwks,
        })
    }

    /// Signs `claims` with our key, naming it by `kid`.
    pub fn sign(&self, claims: &impl Serialize) -> Result<String, ApiError> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|error| InternalError::Sign(error).into())
    }

    /// The JWKS document with our public key.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }
}
