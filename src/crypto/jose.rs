//! The crypto provider of jsonwebtoken (its `CryptoProvider` extension point): aws-lc-rs,
//! as the crate's own default, except that an EC private key is parsed once and its key
//! pair kept, in a bounded LRU keyed by the key's PKCS#8 bytes.
//!
//! jsonwebtoken's `EncodingKey` holds only DER, and its aws-lc-rs signer parses it (an EC
//! key parse checks the public point against the scalar, which costs about what the
//! signature does) on every `encode`; deriving a JWK from it parses it again. A DPoP
//! proof per proxied request (SPEC 12) would pay for three scalar multiplications where
//! one signature is due. With the pair kept, a proof costs one signature, and the `jwt`
//! strategy's and client assertions' EC keys gain the same. RSA and Ed25519 keys go to
//! the default provider unchanged. The pairs are private keys the process already holds;
//! they stay in its memory only, never logged (the cache has no `Debug`).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair,
};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, KeyUtils, aws_lc};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::jwk::EllipticCurve;
use jsonwebtoken::signature::{Error as SignatureError, Signer};
use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey};

/// How many parsed EC key pairs are kept: the sessions proving DPoP at the same time on
/// one instance, plus the configured signing and client-assertion keys.
const KEPT_KEY_PAIRS: usize = 4096;

/// Makes the provider of this module jsonwebtoken's, for the whole process. Call it
/// before anything signs or reads a JWT: the first use of jsonwebtoken fixes its
/// provider. Returns whether this module's provider is the one in use.
pub fn install() -> bool {
    let ours = provider();
    match CryptoProvider::install_default(ours) {
        Ok(()) => true,
        Err(installed) => std::ptr::eq(installed, ours),
    }
}

fn provider() -> &'static CryptoProvider {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    PROVIDER.get_or_init(|| CryptoProvider {
        signer_factory: new_signer,
        verifier_factory: aws_lc::DEFAULT_PROVIDER.verifier_factory,
        key_utils: KeyUtils {
            ec_pub_components_from_private_key: ec_public_components,
            ..aws_lc::DEFAULT_PROVIDER.key_utils.clone()
        },
    })
}

/// The curve and signing algorithm of an EC JWT algorithm.
fn ec_algorithm(algorithm: Algorithm) -> Option<(&'static EcdsaSigningAlgorithm, EllipticCurve)> {
    match algorithm {
        Algorithm::ES256 => Some((&ECDSA_P256_SHA256_FIXED_SIGNING, EllipticCurve::P256)),
        Algorithm::ES384 => Some((&ECDSA_P384_SHA384_FIXED_SIGNING, EllipticCurve::P384)),
        _ => None,
    }
}

type KeptPairs = lru::LruCache<Box<[u8]>, (Algorithm, Arc<EcdsaKeyPair>)>;

fn kept_pairs() -> &'static Mutex<KeptPairs> {
    static KEPT: OnceLock<Mutex<KeptPairs>> = OnceLock::new();
    KEPT.get_or_init(|| {
        Mutex::new(lru::LruCache::new(
            NonZeroUsize::new(KEPT_KEY_PAIRS).unwrap_or(NonZeroUsize::MIN),
        ))
    })
}

/// The key pair of a PKCS#8 EC key for `algorithm`: kept from an earlier call, or parsed
/// now and kept.
fn key_pair(pkcs8: &[u8], algorithm: Algorithm) -> Result<Arc<EcdsaKeyPair>> {
    let (signing, _) = ec_algorithm(algorithm).ok_or(ErrorKind::InvalidAlgorithm)?;
    if let Ok(mut kept) = kept_pairs().lock()
        && let Some((kept_algorithm, pair)) = kept.get(pkcs8)
        && *kept_algorithm == algorithm
    {
        return Ok(Arc::clone(pair));
    }
    let pair =
        Arc::new(EcdsaKeyPair::from_pkcs8(signing, pkcs8).map_err(|_| ErrorKind::InvalidEcdsaKey)?);
    if let Ok(mut kept) = kept_pairs().lock() {
        kept.put(pkcs8.into(), (algorithm, Arc::clone(&pair)));
    }
    Ok(pair)
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    if ec_algorithm(*algorithm).is_none() {
        return (aws_lc::DEFAULT_PROVIDER.signer_factory)(algorithm, key);
    }
    if key.family() != AlgorithmFamily::Ec {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(KeptEcdsaSigner {
        pair: key_pair(key.as_bytes(), *algorithm)?,
        algorithm: *algorithm,
    }))
}

/// The public point of a PKCS#8 EC key as a JWK's curve, `x` and `y`.
fn ec_public_components(
    pkcs8: &[u8],
    algorithm: Algorithm,
) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let (_, curve) = ec_algorithm(algorithm).ok_or(ErrorKind::InvalidAlgorithm)?;
    let pair = key_pair(pkcs8, algorithm)?;
    // The uncompressed point: 0x04, then x and y of equal length.
    let point = pair.public_key().as_ref();
    let coordinates = point
        .split_first()
        .filter(|(form, rest)| **form == 0x04 && rest.len() % 2 == 0)
        .map(|(_, rest)| rest)
        .ok_or(ErrorKind::InvalidEcdsaKey)?;
    let (x, y) = coordinates.split_at(coordinates.len() / 2);
    Ok((curve, x.to_vec(), y.to_vec()))
}

/// An ES256/ES384 signer over a kept key pair.
struct KeptEcdsaSigner {
    pair: Arc<EcdsaKeyPair>,
    algorithm: Algorithm,
}

impl Signer<Vec<u8>> for KeptEcdsaSigner {
    fn try_sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, SignatureError> {
        let signature = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(SignatureError::from_source)?;
        Ok(signature.as_ref().to_vec())
    }
}

impl JwtSigner for KeptEcdsaSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING as P384;

    fn pkcs8(signing: &'static EcdsaSigningAlgorithm) -> Vec<u8> {
        EcdsaKeyPair::generate_pkcs8(signing, &SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn an_ec_key_is_parsed_once_and_its_signatures_verify_with_the_default_provider() {
        for (algorithm, der) in [
            (Algorithm::ES256, pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING)),
            (Algorithm::ES384, pkcs8(&P384)),
        ] {
            let first = key_pair(&der, algorithm).unwrap();
            let again = key_pair(&der, algorithm).unwrap();
            assert!(Arc::ptr_eq(&first, &again), "{algorithm:?} parsed twice");

            let key = EncodingKey::from_ec_der(&der);
            let signer = new_signer(&algorithm, &key).unwrap();
            assert_eq!(signer.algorithm(), algorithm);
            let signature = signer.try_sign(b"header.claims").unwrap();

            let (curve, x, y) = ec_public_components(&der, algorithm).unwrap();
            let expected = (aws_lc::DEFAULT_PROVIDER
                .key_utils
                .ec_pub_components_from_private_key)(&der, algorithm)
            .unwrap();
            assert_eq!((curve, x.clone(), y.clone()), expected);

            let public = jsonwebtoken::DecodingKey::from_ec_components(
                &crate::crypto::b64(&x),
                &crate::crypto::b64(&y),
            )
            .unwrap();
            let verifier =
                (aws_lc::DEFAULT_PROVIDER.verifier_factory)(&algorithm, &public).unwrap();
            verifier.verify(b"header.claims", &signature).unwrap();
            assert!(verifier.verify(b"header.other", &signature).is_err());
        }
    }

    #[test]
    fn a_key_of_another_curve_or_family_is_refused_and_rsa_goes_to_the_default() {
        let p384 = pkcs8(&P384);
        assert!(key_pair(&p384, Algorithm::ES256).is_err());
        assert!(new_signer(&Algorithm::ES256, &EncodingKey::from_secret(b"secret")).is_err());
        let hmac = new_signer(&Algorithm::HS256, &EncodingKey::from_secret(b"secret")).unwrap();
        assert_eq!(hmac.algorithm(), Algorithm::HS256);
    }
}
