//! The keys the `jwt` strategy signs with (`[signing] key_file`, or `key_files` for
//! rotation: RSA → RS256, EC P-256 → ES256), all published at `/.well-known/jwks.json`
//! under their RFC 7638 thumbprints; the first signs. Without a key file an ephemeral P-256
//! key is generated at start (with a warning: every instance then has its own key).

use std::path::Path;

use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::error::{ApiError, InternalError};

/// Why the signing key cannot be loaded or published.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// `signing.key_file` cannot be read.
    #[error("signing key file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// `signing.key_file` holds no usable private key.
    #[error("signing key file {path} holds no RSA or EC P-256 private key")]
    NoKey {
        /// The file.
        path: String,
    },
    /// No ephemeral key could be generated.
    #[error("cannot generate an ephemeral signing key")]
    Generate,
    /// The public JWK cannot be derived.
    #[error("cannot derive the public signing key: {0}")]
    PublicKey(#[source] jsonwebtoken::errors::Error),
    /// The key's thumbprint cannot be computed.
    #[error("cannot name the signing key: {0}")]
    Thumbprint(#[source] jsonwebtoken::errors::Error),
    /// The JWKS cannot be serialised.
    #[error("cannot publish the signing key: {0}")]
    Publish(#[source] serde_json::Error),
}

/// Signs our own target tokens.
pub struct Signer {
    key: EncodingKey,
    algorithm: Algorithm,
    kid: String,
    jwks: String,
}

impl Signer {
    /// Loads `key_file`, or makes an ephemeral key when there is none.
    pub fn load(key_file: Option<&Path>) -> Result<Self, SignerError> {
        Self::load_all(key_file.as_slice())
    }

    /// Loads `[signing]`'s keys (`key_file`, or `key_files` for rotation): the first signs,
    /// every one is published in the JWKS under its RFC 7638 thumbprint, so a token signed
    /// with any of them verifies while its key is listed. No key: an ephemeral one.
    pub fn load_all(key_files: &[&Path]) -> Result<Self, SignerError> {
        let mut keys = Vec::with_capacity(key_files.len().max(1));
        for path in key_files {
            keys.push(read_key(path)?);
        }
        if keys.is_empty() {
            tracing::warn!(
                "no signing.key_file: jwt target tokens are signed with an ephemeral key that changes at every start and differs per instance"
            );
            let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &aws_lc_rs::rand::SystemRandom::new(),
            )
            .map_err(|_| SignerError::Generate)?;
            keys.push((EncodingKey::from_ec_der(pkcs8.as_ref()), Algorithm::ES256));
        }
        let mut published: Vec<Jwk> = Vec::with_capacity(keys.len());
        let mut kids = Vec::with_capacity(keys.len());
        for (key, algorithm) in &keys {
            let mut jwk =
                Jwk::from_encoding_key(key, *algorithm).map_err(SignerError::PublicKey)?;
            // RFC 7638: the thumbprint covers the key's required members only.
            let kid = jwk
                .thumbprint(ThumbprintHash::SHA256)
                .map_err(SignerError::Thumbprint)?;
            jwk.common.key_id = Some(kid.clone());
            jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
            // The same key listed twice is published once.
            if !kids.contains(&kid) {
                published.push(jwk);
            }
            kids.push(kid);
        }
        let jwks =
            serde_json::to_string(&JwkSet { keys: published }).map_err(SignerError::Publish)?;
        let mut keys = keys.into_iter();
        let (Some((key, algorithm)), Some(kid)) = (keys.next(), kids.into_iter().next()) else {
            return Err(SignerError::Generate);
        };
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

/// One PEM private key: RSA (RS256) or EC P-256 (ES256).
fn read_key(path: &Path) -> Result<(EncodingKey, Algorithm), SignerError> {
    let pem = std::fs::read(path).map_err(|source| SignerError::Read {
        path: path.display().to_string(),
        source,
    })?;
    if let Ok(key) = EncodingKey::from_rsa_pem(&pem) {
        return Ok((key, Algorithm::RS256));
    }
    let key = EncodingKey::from_ec_pem(&pem).map_err(|_| SignerError::NoKey {
        path: path.display().to_string(),
    })?;
    Ok((key, Algorithm::ES256))
}
