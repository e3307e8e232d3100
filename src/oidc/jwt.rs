//! Verifying JWTs that a provider signed (back-channel logout tokens, bearer access
//! tokens). The key is chosen by `kid` from the provider's JWKS, with one bounded refetch
//! when the `kid` is unknown (key rotation); the algorithm must be an asymmetric one the
//! chosen key can make. `alg: none` and HMAC (the public-key-as-secret confusion) never
//! pass (RFC 8725 sections 2.1 and 3.1). Claims are checked by the callers, clause by clause.

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde_json::{Map, Value};

use super::Provider;
use crate::config::ID_TOKEN_ALGORITHMS;

/// What a token claims to be, which decides the algorithms it may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// An access token: any asymmetric algorithm the chosen key can make.
    AccessToken,
    /// An ID token or a back-channel logout token (validated as an ID token would be):
    /// only [`super::Discovered::id_token_algorithm`].
    IdToken,
}

/// A token whose signature checked out.
pub struct VerifiedJwt {
    /// The JOSE header.
    pub header: Header,
    /// The claims (not yet validated).
    pub claims: Map<String, Value>,
}

/// Why a JWT's signature check failed (the text names the failed check in logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRefusal {
    /// It is not a signed JWT with a supported algorithm.
    #[error("it is not a signed JWT with a supported algorithm")]
    NotSignedJwt,
    /// HMAC-signed tokens are not accepted from a provider.
    #[error("HMAC-signed tokens are not accepted from a provider")]
    Hmac,
    /// The provider's keys are not available.
    #[error("the provider's keys are not available")]
    KeysUnavailable,
    /// It is signed with a key the provider does not publish.
    #[error("it is signed with a key the provider does not publish")]
    UnknownKey,
    /// Its algorithm is not the one this client expects from the provider.
    #[error("its alg is not the provider's id_token_signed_response_alg")]
    UnexpectedAlgorithm,
    /// Its algorithm does not match the provider's key.
    #[error("its algorithm does not match the provider's key")]
    AlgorithmMismatch,
    /// The provider's key is unusable.
    #[error("the provider's key is unusable")]
    UnusableKey,
    /// Its signature is invalid.
    #[error("its signature is invalid")]
    BadSignature,
}

impl SignatureRefusal {
    /// The failed check, as the callers' string-typed refusals name it.
    pub fn check(self) -> &'static str {
        match self {
            Self::NotSignedJwt => "it is not a signed JWT with a supported algorithm",
            Self::Hmac => "HMAC-signed tokens are not accepted from a provider",
            Self::KeysUnavailable => "the provider's keys are not available",
            Self::UnknownKey => "it is signed with a key the provider does not publish",
            Self::UnexpectedAlgorithm => {
                "its alg is not the provider's id_token_signed_response_alg"
            }
            Self::AlgorithmMismatch => "its algorithm does not match the provider's key",
            Self::UnusableKey => "the provider's key is unusable",
            Self::BadSignature => "its signature is invalid",
        }
    }
}

/// Verifies the signature of `token` (a `kind` token) with `provider`'s keys.
pub async fn verify_signature(
    provider: &Provider,
    http: &reqwest::Client,
    token: &str,
    kind: TokenKind,
) -> Result<VerifiedJwt, SignatureRefusal> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| SignatureRefusal::NotSignedJwt)?;
    if is_hmac(header.alg) {
        return Err(SignatureRefusal::Hmac);
    }
    let discovered = provider
        .discovered(http)
        .await
        .map_err(|_| SignatureRefusal::KeysUnavailable)?;
    // Checked before the key is looked up: a token in another algorithm costs no refetch.
    if kind == TokenKind::IdToken && header.alg != discovered.id_token_algorithm {
        return Err(SignatureRefusal::UnexpectedAlgorithm);
    }
    let (discovered, key) = match select_key(&discovered.jwks, &header) {
        Some(key) => {
            let key = key.clone();
            (discovered, key)
        }
        None => {
            let refreshed = provider
                .refresh_keys(http)
                .await
                .ok_or(SignatureRefusal::UnknownKey)?;
            let key = select_key(&refreshed.jwks, &header)
                .ok_or(SignatureRefusal::UnknownKey)?
                .clone();
            (refreshed, key)
        }
    };
    // The discovery the key came from (a refetch may have changed the default).
    if kind == TokenKind::IdToken && header.alg != discovered.id_token_algorithm {
        return Err(SignatureRefusal::UnexpectedAlgorithm);
    }
    if !key_allows(&key, header.alg) {
        return Err(SignatureRefusal::AlgorithmMismatch);
    }
    let decoding_key = DecodingKey::from_jwk(&key).map_err(|_| SignatureRefusal::UnusableKey)?;
    let mut validation = Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &decoding_key, &validation)
        .map_err(|_| SignatureRefusal::BadSignature)?;
    Ok(VerifiedJwt {
        header: data.header,
        claims: data.claims,
    })
}

/// SPEC 3 `id_token_signed_response_alg` (OIDC Registration 2; Core 3.1.3.7 step 7): the
/// one algorithm of a provider's ID tokens and logout tokens. `configured` wins; else RS256
/// when the provider lists it in `id_token_signing_alg_values_supported` (or lists
/// nothing), else the first listed algorithm we verify. A provider that lists only `none`,
/// HMAC or algorithms we do not know cannot be used until the key is set.
pub fn id_token_algorithm(
    configured: Option<Algorithm>,
    listed: &[String],
) -> Result<Algorithm, String> {
    if let Some(algorithm) = configured {
        return Ok(algorithm);
    }
    if listed.is_empty() || listed.iter().any(|name| name == "RS256") {
        return Ok(Algorithm::RS256);
    }
    listed
        .iter()
        .find_map(|name| {
            ID_TOKEN_ALGORITHMS
                .iter()
                .find(|(known, _)| known == name)
                .map(|(_, algorithm)| *algorithm)
        })
        .ok_or_else(|| {
            "the provider lists no ID token algorithm we accept (only none, HMAC or unknown \
             ones): set id_token_signed_response_alg"
                .to_owned()
        })
}

/// The key named by the header's `kid`; without a `kid`, the provider's only signing key.
fn select_key<'a>(jwks: &'a JwkSet, header: &Header) -> Option<&'a Jwk> {
    match &header.kid {
        Some(kid) => jwks.find(kid),
        None => {
            let mut signing =
                jwks.keys.iter().filter(|key| {
                    !matches!(key.algorithm, AlgorithmParameters::OctetKey(_))
                        && key.common.public_key_use.as_ref().is_none_or(|usage| {
                            *usage == jsonwebtoken::jwk::PublicKeyUse::Signature
                        })
                });
            match (signing.next(), signing.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        }
    }
}

/// Whether `key` may verify `algorithm`: same family, and the JWK's own `alg` if it names one.
fn key_allows(key: &Jwk, algorithm: Algorithm) -> bool {
    let family_matches = match &key.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            algorithm,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(_) => {
            matches!(algorithm, Algorithm::ES256 | Algorithm::ES384)
        }
        AlgorithmParameters::OctetKeyPair(_) => algorithm == Algorithm::EdDSA,
        _ => false,
    };
    let declared_matches = match key.common.key_algorithm {
        None => true,
        Some(declared) => key_algorithm_name(declared) == Some(algorithm),
    };
    family_matches && declared_matches
}

fn key_algorithm_name(algorithm: KeyAlgorithm) -> Option<Algorithm> {
    Some(match algorithm {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

fn is_hmac(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    )
}

/// Whether `claims["aud"]` (a string or an array) contains `audience`.
pub fn audience_contains(claims: &Map<String, Value>, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(single)) => single == audience,
        Some(Value::Array(values)) => values.iter().any(|value| value.as_str() == Some(audience)),
        _ => false,
    }
}

/// A numeric date claim (`iat`, `exp`, `nbf`) as whole seconds.
pub fn numeric_date(claims: &Map<String, Value>, name: &str) -> Option<i64> {
    let value = claims.get(name)?;
    value
        .as_i64()
        .or_else(|| value.as_f64().map(|seconds| seconds.floor() as i64))
}

/// The claims of a JWT whose signature was already verified (or that we only read, such
/// as a token endpoint's access token, for its `exp`).
pub fn jwt_payload(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    serde_json::from_slice(&crate::crypto::b64_decode(payload.trim_end_matches('='))?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn the_id_token_algorithm_is_the_configured_one_or_chosen_from_discovery() {
        let choose = |configured, names: &[&str]| id_token_algorithm(configured, &listed(names));
        assert_eq!(choose(None, &[]), Ok(Algorithm::RS256));
        assert_eq!(choose(None, &["ES256", "RS256"]), Ok(Algorithm::RS256));
        assert_eq!(choose(None, &["ES256", "PS256"]), Ok(Algorithm::ES256));
        assert_eq!(
            choose(None, &["none", "HS256", "EdDSA"]),
            Ok(Algorithm::EdDSA)
        );
        assert!(choose(None, &["none"]).is_err());
        assert!(choose(None, &["HS256", "HS512", "ES512"]).is_err());
        assert_eq!(
            choose(Some(Algorithm::PS256), &["RS256", "ES256"]),
            Ok(Algorithm::PS256)
        );
        assert_eq!(
            choose(Some(Algorithm::ES256), &["HS256"]),
            Ok(Algorithm::ES256)
        );
    }
}
