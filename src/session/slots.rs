//! Single-use, expiring records addressed by a secret handle (a logout's `state`):
//! stored sealed under a key derived from the handle and taken with GETDEL, so any
//! instance can finish what another started, and only once. And pending logins
//! ([`PendingLogins`]), which travel sealed in the browser's login cookie instead.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crypto;
use crate::error::{ApiError, InternalError};
use crate::observed_store::ObservedStore;
use crate::store::KeyValueStore;

/// One kind of single-use record (e.g. pending logins).
#[derive(Clone)]
pub struct SealedSlots {
    store: ObservedStore,
    prefix: String,
    kind: &'static str,
}

impl SealedSlots {
    /// Records of `kind` under `prefix`.
    pub fn new(store: ObservedStore, prefix: &str, kind: &'static str) -> Self {
        Self {
            store,
            prefix: prefix.to_owned(),
            kind,
        }
    }

    /// Stores `value` for `ttl` under the secret `handle`.
    pub async fn put<T: Serialize>(
        &self,
        handle: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), ApiError> {
        let key = self.key(handle);
        let plain = serde_json::to_vec(value).map_err(|source| InternalError::Serialize {
            what: "a pending login or logout",
            source,
        })?;
        let sealed = crypto::seal(&self.sealing_key(handle), key.as_bytes(), &plain)?;
        self.store.set(&key, &sealed, ttl).await?;
        Ok(())
    }

    /// Removes and returns the record of `handle`; `None` if unknown, used or expired.
    pub async fn take<T: DeserializeOwned>(&self, handle: &str) -> Result<Option<T>, ApiError> {
        let key = self.key(handle);
        let Some(sealed) = self.store.take(&key).await? else {
            return Ok(None);
        };
        Ok(
            crypto::open(&self.sealing_key(handle), key.as_bytes(), sealed)
                .and_then(|plain| serde_json::from_slice(&plain).ok()),
        )
    }

    fn key(&self, handle: &str) -> String {
        let name = crypto::derive_name(self.kind, handle.as_bytes());
        format!("{}{}:{name}", self.prefix, self.kind)
    }

    fn sealing_key(&self, handle: &str) -> [u8; 32] {
        crypto::derive_key(&format!("{}-seal", self.kind), handle.as_bytes())
    }
}

/// Longest login cookie value we set. Browsers keep a cookie of up to 4096 bytes of
/// name, value and attributes together (RFC 6265 6.1); a longer one is dropped silently.
pub const MAX_LOGIN_COOKIE_VALUE: usize = 3800;

/// Pending logins carried by the browser (SPEC 7: an unauthenticated `/login` stores
/// nothing), bound to the browser that started them:
///
/// - `/login` draws a [`LoginSecret`] `r` (256 random bits). The `state` sent to the
///   provider is a SHA-256 hash of `r`; the pending login is sealed (AES-256-GCM) under a
///   key derived from `r` with HKDF; the login cookie carries `r` and the sealed login.
///   Any instance can open it at `/callback`, with no shared secret and no store write.
/// - The `state` is public (the provider's logs, history, `Referer`), and it opens
///   nothing: neither the key nor the cookie follows from it. A callback is accepted only
///   with a cookie whose `r` hashes to its `state` and whose seal opens under the key of
///   that `r` — the cookie of the browser that started the login. Without it (another
///   browser, a leaked callback URL, a cookie made up from the state) the login ends
///   before anything is sent to the provider.
/// - Lifetime: the seal holds when the login was started, and a login older than the
///   state lifetime is refused, whatever the cookie's `Max-Age`. A browser holding its
///   own `r` could re-seal its own login with any time, which gains it nothing it could
///   not get from a new `/login`; nobody else can.
/// - Single use: at `/callback`, once the login has succeeded and before the session is
///   created, a small marker (`SET NX`, living until the login's lifetime ends, never
///   longer than the state lifetime) claims the state; a second claim fails. Only
///   completed logins write it, so its cost is bounded by real logins, not by requests.
#[derive(Clone)]
pub struct PendingLogins {
    store: ObservedStore,
    prefix: String,
    lifetime: Duration,
}

/// The length of a [`LoginSecret`] in bytes.
pub const LOGIN_SECRET_LEN: usize = 32;

/// The browser's secret of one pending login: random bytes that only its login cookie
/// carries. The login's `state` is a hash of it and its seal key an HKDF of it.
pub struct LoginSecret([u8; LOGIN_SECRET_LEN]);

impl LoginSecret {
    /// A secret made of `bytes`, which must come from the CSPRNG ([`crypto::random_bytes`]).
    pub fn new(bytes: [u8; LOGIN_SECRET_LEN]) -> Self {
        Self(bytes)
    }

    /// The `state` of this login: SHA-256 of the secret, base64url (43 characters).
    pub fn state(&self) -> String {
        crypto::derive_name("login-state", &self.0)
    }

    fn seal_key(&self) -> Result<[u8; 32], crypto::CryptoError> {
        crypto::hkdf_key(&self.0, b"identity-service pending login seal")
    }
}

impl std::fmt::Debug for LoginSecret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("LoginSecret(***)")
    }
}

/// Why a pending login cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PendingLoginRefused {
    /// The request carries no login cookie for this state: another browser started it,
    /// the state is made up, or the cookie expired.
    #[error("no login cookie for this state (unknown state, another browser, or expired)")]
    Missing,
    /// The cookie's secret does not hash to this state: another login's cookie, or one
    /// made by someone who knows only the state.
    #[error("the login cookie was not made for this state")]
    Foreign,
    /// The cookie's seal does not open with its secret (tampered).
    #[error("the login cookie does not open")]
    DoesNotOpen,
    /// The login was started longer ago than the state lifetime (or in the future).
    #[error("the login expired")]
    Expired,
    /// The state was already used by a finished login (replay).
    #[error("the state was already used")]
    AlreadyUsed,
}

impl PendingLoginRefused {
    /// The check that failed, for the WARN line.
    pub fn check(self) -> &'static str {
        match self {
            Self::Missing | Self::Foreign | Self::DoesNotOpen => "login cookie",
            Self::Expired => "state lifetime",
            Self::AlreadyUsed => "state single use",
        }
    }

    /// Why, for people (the log line and `errorMessage`).
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "the login is unknown, expired, or was started in another browser",
            Self::Foreign => "the login cookie does not belong to this login",
            Self::DoesNotOpen => "the login cookie is damaged",
            Self::Expired => "the login expired",
            Self::AlreadyUsed => "the login was already finished",
        }
    }
}

/// Additional data of the seal: what the sealed bytes are for.
const AAD: &[u8] = b"pending-login";

/// A login started up to this far in the future (another instance's clock) is accepted.
const CLOCK_SKEW_SECONDS: i64 = 60;

/// What the cookie's seal holds: the login and when it was started.
#[derive(Serialize, serde::Deserialize)]
struct Envelope<T> {
    /// Unix seconds when `/login` sealed it; the login ends a lifetime later.
    iat: i64,
    /// The pending login.
    login: T,
}

impl PendingLogins {
    /// Logins that live `lifetime`, single-use markers under `prefix` in `store`.
    pub fn new(store: ObservedStore, prefix: &str, lifetime: Duration) -> Self {
        Self {
            store,
            prefix: prefix.to_owned(),
            lifetime,
        }
    }

    /// How long a login may take.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    fn lifetime_seconds(&self) -> i64 {
        i64::try_from(self.lifetime.as_secs()).unwrap_or(i64::MAX / 4)
    }

    /// The login cookie value carrying `login`, started at `now`, for the login of
    /// `secret`: `<secret>.<sealed login>` (base64url), sealed with `nonce` (fresh from the
    /// CSPRNG). A login too large for a cookie (its `returnURL` is too long) is
    /// `REDIRECT_NOT_ALLOWED`.
    pub fn seal<T: Serialize>(
        &self,
        secret: &LoginSecret,
        nonce: [u8; crypto::SEAL_NONCE_LEN],
        login: &T,
        now: i64,
    ) -> Result<String, ApiError> {
        let envelope = Envelope { iat: now, login };
        let plain = serde_json::to_vec(&envelope).map_err(|source| InternalError::Serialize {
            what: "a pending login",
            source,
        })?;
        let sealed = crypto::seal_with_nonce(&secret.seal_key()?, nonce, AAD, &plain)?;
        let value = format!("{}.{}", crypto::b64(&secret.0), crypto::b64(&sealed));
        if value.len() > MAX_LOGIN_COOKIE_VALUE {
            tracing::warn!(
                check = "login cookie size",
                bytes = value.len(),
                "login refused: the returnURL is too long to travel in the login cookie"
            );
            return Err(ApiError::RedirectNotAllowed);
        }
        Ok(value)
    }

    /// Opens the login cookie `value` of `state` at `now`; `Err` says which check failed.
    /// Returns the login and the Unix second it was started.
    pub fn open<T: DeserializeOwned>(
        &self,
        state: &str,
        value: Option<&str>,
        now: i64,
    ) -> Result<(T, i64), PendingLoginRefused> {
        let value = value.ok_or(PendingLoginRefused::Missing)?;
        if value.len() > MAX_LOGIN_COOKIE_VALUE {
            return Err(PendingLoginRefused::Foreign);
        }
        let (secret, sealed) = value.split_once('.').ok_or(PendingLoginRefused::Foreign)?;
        let secret = crypto::b64_decode_array::<LOGIN_SECRET_LEN>(secret)
            .map(LoginSecret)
            .ok_or(PendingLoginRefused::Foreign)?;
        // The binding: only the browser given `r` at `/login` holds a secret of this state.
        if !crypto::equal_in_constant_time(secret.state().as_bytes(), state.as_bytes()) {
            return Err(PendingLoginRefused::Foreign);
        }
        let sealed = crypto::b64_decode(sealed).ok_or(PendingLoginRefused::DoesNotOpen)?;
        let key = secret
            .seal_key()
            .map_err(|_| PendingLoginRefused::DoesNotOpen)?;
        let plain = crypto::open(&key, AAD, sealed).ok_or(PendingLoginRefused::DoesNotOpen)?;
        let envelope: Envelope<T> =
            serde_json::from_slice(&plain).map_err(|_| PendingLoginRefused::DoesNotOpen)?;
        let age = now.saturating_sub(envelope.iat);
        if age >= self.lifetime_seconds() || age < -CLOCK_SKEW_SECONDS {
            return Err(PendingLoginRefused::Expired);
        }
        Ok((envelope.login, envelope.iat))
    }

    /// Claims `state` for the one login that may finish with it, started at `issued_at`
    /// (Unix seconds): the marker lives until the login's lifetime ends, at most the state
    /// lifetime. `Err(AlreadyUsed)` on a second claim; store failures are `ApiError`s.
    pub async fn claim(
        &self,
        state: &str,
        issued_at: i64,
        now: i64,
    ) -> Result<Result<(), PendingLoginRefused>, ApiError> {
        let key = format!(
            "{}login-used:{}",
            self.prefix,
            crypto::derive_name("login-used", state.as_bytes())
        );
        let lifetime = self.lifetime_seconds();
        let remaining = issued_at
            .saturating_add(lifetime)
            .saturating_sub(now)
            .clamp(1, lifetime.max(1));
        let ttl = Duration::from_secs(remaining.unsigned_abs());
        let first = self.store.set_if_absent(&key, b"1", ttl).await?;
        Ok(if first {
            Ok(())
        } else {
            Err(PendingLoginRefused::AlreadyUsed)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::{AnyStore, MemoryStore};

    fn logins() -> PendingLogins {
        let counter = prometheus::IntCounter::new("errors", "errors").unwrap();
        let store = ObservedStore::new(AnyStore::Memory(MemoryStore::new()), counter);
        PendingLogins::new(store, "t:", Duration::from_secs(600))
    }

    fn secret(byte: u8) -> LoginSecret {
        LoginSecret::new([byte; LOGIN_SECRET_LEN])
    }

    #[test]
    fn a_sealed_login_opens_only_with_the_secret_of_its_state_within_the_lifetime() {
        let logins = logins();
        let (a, b) = (secret(1), secret(2));
        let state = a.state();
        assert_eq!(state.len(), 43);
        assert_ne!(state, b.state());
        let value = logins.seal(&a, [1; 12], &"payload", 1000).unwrap();
        assert!(!value.contains("payload"));
        let (login, iat): (String, i64) = logins.open(&state, Some(&value), 1599).unwrap();
        assert_eq!((login.as_str(), iat), ("payload", 1000));
        let open = |state: &str, value: Option<&str>, now: i64| {
            logins.open::<String>(state, value, now).unwrap_err()
        };
        use PendingLoginRefused::*;
        assert_eq!(open(&b.state(), Some(&value), 1000), Foreign);
        assert_eq!(open(&state, Some("!!"), 1000), Foreign);
        assert_eq!(open(&state, Some(""), 1000), Foreign);
        assert_eq!(open(&state, None, 1000), Missing);
        assert_eq!(open(&state, Some(&value), 1600), Expired);
        assert_eq!(open(&state, Some(&value), 1000 - 61), Expired);
        // Another login's genuine cookie does not open this one.
        let other = logins.seal(&b, [2; 12], &"payload", 1000).unwrap();
        assert_eq!(open(&state, Some(&other), 1000), Foreign);
        // Its seal with this secret in front: the key differs, the seal does not open.
        let (_, other_sealed) = other.split_once('.').unwrap();
        let (own_secret, _) = value.split_once('.').unwrap();
        let spliced = format!("{own_secret}.{other_sealed}");
        assert_eq!(open(&state, Some(&spliced), 1000), DoesNotOpen);
        let (_, sealed) = value.split_once('.').unwrap();
        let mut tampered = crypto::b64_decode(sealed).unwrap();
        tampered[20] ^= 1;
        let tampered = format!("{own_secret}.{}", crypto::b64(&tampered));
        assert_eq!(open(&state, Some(&tampered), 1000), DoesNotOpen);
        // The state alone gives nothing: not the secret, not the key.
        assert!(!value.contains(&state));
        assert!(format!("{a:?}").contains("***"));
    }

    #[test]
    fn a_login_too_large_for_a_cookie_is_refused() {
        let logins = logins();
        let big = "a".repeat(MAX_LOGIN_COOKIE_VALUE);
        assert_eq!(
            logins
                .seal(&secret(3), [2; 12], &big, 0)
                .unwrap_err()
                .code(),
            "REDIRECT_NOT_ALLOWED"
        );
        assert!(
            logins
                .seal(&secret(3), [3; 12], &"a".repeat(2048), 0)
                .is_ok()
        );
    }

    #[actix_web::test]
    async fn a_state_can_be_claimed_once() {
        let logins = logins();
        assert_eq!(logins.claim("s", 1000, 1000).await.unwrap(), Ok(()));
        assert_eq!(
            logins.claim("s", 1000, 1000).await.unwrap(),
            Err(PendingLoginRefused::AlreadyUsed)
        );
        assert_eq!(logins.claim("other", 1000, 1000).await.unwrap(), Ok(()));
    }
}
