//! The few cryptographic operations the service needs, as thin wrappers over aws-lc-rs:
//! random values, SHA-256 key derivation for storage keys, HKDF, and AES-256-GCM sealing;
//! and the crypto behind jsonwebtoken, with parsed EC keys kept ([`jose`]).

pub mod jose;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::{digest, hkdf};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The operating system's random generator failed (never expected in practice).
#[derive(Debug, thiserror::Error)]
#[error("cryptographic operation failed")]
pub struct CryptoError;

/// `N` bytes from the system CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut bytes = [0u8; N];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| CryptoError)?;
    Ok(bytes)
}

/// A random URL-safe token carrying `N` bytes of entropy.
pub fn random_token<const N: usize>() -> Result<String, CryptoError> {
    Ok(b64(&random_bytes::<N>()?))
}

/// Base64url without padding.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Decodes base64url without padding into exactly `N` bytes, without allocating.
pub fn b64_decode_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    // Room for the decoder's estimate (a multiple of 3); a longer text is wrong anyway.
    let mut buffer = [0u8; 64];
    if N + 3 > buffer.len() || text.len() > (N + 3) / 3 * 4 {
        return None;
    }
    let written = URL_SAFE_NO_PAD.decode_slice(text, &mut buffer).ok()?;
    buffer.get(..written)?.try_into().ok()
}

/// SHA-256 of `label` and `value`, base64url: a storage key name that cannot be turned
/// back into the value it was derived from. `label` separates the uses.
pub fn derive_name(label: &str, value: &[u8]) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(label.as_bytes());
    context.update(&[0]);
    context.update(value);
    b64(context.finish().as_ref())
}

/// Like [`derive_name`] over several values, each preceded by its length (so no two
/// different lists hash alike), without joining them first.
pub fn derive_name_of(label: &str, values: &[&[u8]]) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(label.as_bytes());
    context.update(&[0]);
    for value in values {
        context.update(&(value.len() as u64).to_be_bytes());
        context.update(value);
    }
    b64(context.finish().as_ref())
}

/// Whether `a` and `b` are equal, in time that depends on neither their content nor
/// their lengths (both are hashed first, then compared in constant time): for secrets
/// a caller presents, such as the admin token.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let a = digest::digest(&digest::SHA256, a);
    let b = digest::digest(&digest::SHA256, b);
    aws_lc_rs::constant_time::verify_slices_are_equal(a.as_ref(), b.as_ref()).is_ok()
}

/// SHA-256 of `label` and `value` as a 32-byte key.
pub fn derive_key(label: &str, value: &[u8]) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(label.as_bytes());
    context.update(&[0]);
    context.update(value);
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

/// HKDF-SHA256 (RFC 5869) of `secret` for the use `info`: a 32-byte key that only
/// `secret` gives. No salt: callers pass a uniformly random secret of at least 128 bits.
pub fn hkdf_key(secret: &[u8], info: &[u8]) -> Result<[u8; 32], CryptoError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]).extract(secret);
    let info = [info];
    let okm = prk
        .expand(&info, hkdf::HKDF_SHA256)
        .map_err(|_| CryptoError)?;
    let mut key = [0u8; 32];
    okm.fill(&mut key).map_err(|_| CryptoError)?;
    Ok(key)
}

/// Whether `a` and `b` are equal, in time that does not depend on where they differ.
pub fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// Encrypts and authenticates `plaintext` under `key`, binding it to `context` (the
/// storage key, so a value cannot be moved to another key). Output: nonce || ciphertext || tag.
/// The nonce is 96 random bits from the CSPRNG.
pub fn seal(key: &[u8; 32], context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    seal_with_nonce(key, random_bytes()?, context, plaintext)
}

/// The length of a sealing nonce.
pub const SEAL_NONCE_LEN: usize = NONCE_LEN;

/// [`seal`] with a nonce the caller drew from the CSPRNG ([`random_bytes`]), e.g. together
/// with other random values to save a draw (each costs ~0.4 µs of RDRAND on these
/// machines). Never pass a nonce twice for one key.
pub fn seal_with_nonce(
    key: &[u8; 32],
    nonce: [u8; SEAL_NONCE_LEN],
    context: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError)?);
    let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context),
            sealed.get_mut(NONCE_LEN..).ok_or(CryptoError)?,
        )
        .map_err(|_| CryptoError)?;
    sealed.extend_from_slice(tag.as_ref());
    Ok(sealed)
}

/// Reverses [`seal`]; `None` when the key, the context or the data do not match.
pub fn open(key: &[u8; 32], context: &[u8], mut sealed: Vec<u8>) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
        return None;
    }
    let opening_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).ok()?);
    let (nonce, ciphertext) = sealed.split_at_mut_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let plaintext_len = opening_key
        .open_in_place(nonce, Aad::from(context), ciphertext)
        .ok()?
        .len();
    sealed.copy_within(NONCE_LEN..NONCE_LEN + plaintext_len, 0);
    sealed.truncate(plaintext_len);
    Some(sealed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_same_key_and_context() {
        let key = random_bytes::<32>().unwrap();
        let sealed = seal(&key, b"ctx", b"hello").unwrap();
        assert_eq!(open(&key, b"ctx", sealed.clone()).unwrap(), b"hello");
        assert!(open(&key, b"other", sealed.clone()).is_none());
        let other_key = random_bytes::<32>().unwrap();
        assert!(open(&other_key, b"ctx", sealed.clone()).is_none());
        let mut tampered = sealed;
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(open(&key, b"ctx", tampered).is_none());
    }

    #[test]
    fn sealing_with_a_drawn_nonce_opens_like_seal() {
        let key = [7u8; 32];
        let nonce: [u8; SEAL_NONCE_LEN] = random_bytes().unwrap();
        let sealed = seal_with_nonce(&key, nonce, b"ctx", b"pending").unwrap();
        assert_eq!(sealed.get(..SEAL_NONCE_LEN).unwrap(), &nonce);
        assert_eq!(open(&key, b"ctx", sealed.clone()).unwrap(), b"pending");
        assert!(open(&key, b"other", sealed.clone()).is_none());
        assert!(open(&[8u8; 32], b"ctx", sealed).is_none());
    }

    #[test]
    fn fixed_length_decoding_takes_exactly_that_many_bytes() {
        let text = b64(&[7u8; 16]);
        assert_eq!(b64_decode_array::<16>(&text), Some([7u8; 16]));
        assert_eq!(b64_decode_array::<15>(&text), None);
        assert_eq!(b64_decode_array::<17>(&text), None);
        assert_eq!(b64_decode_array::<32>(&b64(&[1u8; 48])), None);
        assert_eq!(b64_decode_array::<16>("not base64!"), None);
        assert_eq!(b64_decode_array::<16>(&format!("{text}=")), None);
    }

    #[test]
    fn names_of_lists_differ_wherever_the_parts_are_cut() {
        let a = derive_name_of("l", &[b"ab", b"c"]);
        assert_eq!(a, derive_name_of("l", &[b"ab", b"c"]));
        assert_ne!(a, derive_name_of("l", &[b"a", b"bc"]));
        assert_ne!(a, derive_name_of("m", &[b"ab", b"c"]));
        assert_ne!(a, derive_name("l", b"abc"));
    }

    #[test]
    fn hkdf_keys_follow_rfc_5869_and_differ_by_use() {
        // RFC 5869 A.3 (SHA-256, no salt, no info): the first 32 bytes of its OKM.
        let ikm = [0x0b_u8; 22];
        let expected = "jaTndaVjwY9xX4AqBjxaMbihH1xe4Yeew0VOXzxzjS0";
        assert_eq!(b64(&hkdf_key(&ikm, b"").unwrap()), expected);
        assert_ne!(hkdf_key(&ikm, b"a").unwrap(), hkdf_key(&ikm, b"b").unwrap());
        assert!(equal_in_constant_time(b"abc", b"abc"));
        assert!(!equal_in_constant_time(b"abc", b"abd"));
        assert!(!equal_in_constant_time(b"abc", b"ab"));
    }

    #[test]
    fn derived_names_differ_by_label() {
        assert_ne!(derive_name("a", b"x"), derive_name("b", b"x"));
        assert_eq!(derive_name("a", b"x"), derive_name("a", b"x"));
    }
}
