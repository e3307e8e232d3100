//! `[limits]` (SPEC 3 and 7): token buckets per client (see [`client_key`]) on logins and
//! on refused credentials, answered with 429 `TOO_MANY_REQUESTS` and `Retry-After`. Off
//! (0) by default.
//!
//! The login bucket covers `GET /login` and `GET /callback`: each request takes one cell.
//! The failed-auth bucket is fed by refusals only ([`FailedAuthLimiter::record_failure`]:
//! a refused bearer token, a refused logout token); once it is empty, every request of
//! that client that carries such a credential is refused before it is checked
//! ([`FailedAuthLimiter::check`]), so guessing cannot go on at full speed.
//!
//! Which route a request is for is judged on the path the router serves (percent-decoded,
//! [`routed_path`]), never on its spelling: `/%6Cogin` is `/login`.
//!
//! Memory is bounded: each limiter keeps at most [`MAX_BUCKETS`] clients in a
//! least-recently-used map (governor's GCRA over [`BoundedStore`]); a flood of distinct
//! addresses evicts the clients not seen for the longest time, each request costs one
//! map lookup, and nothing ever sweeps the whole map.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use lru::LruCache;

use crate::client_address;
use crate::config::LimitsConfig;
use crate::error::ApiError;

/// Most clients one limiter tracks; past it the least recently seen one is forgotten
/// (about 64 bytes each, so some 3 MB per limiter at most).
pub const MAX_BUCKETS: usize = 50_000;

/// The whole-second `Retry-After` for a wait (at least 1).
fn retry_after(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// The path the router matches `request` against: percent-decoded as actix-router does
/// (every `%XX` but `%25`, `%2F` and `%2B`), so a check meant for a route sees the route
/// however its path is spelled. In a layer that runs before routing it is the whole
/// path (nothing is consumed yet).
pub fn routed_path(request: &ServiceRequest) -> &str {
    request.match_info().as_str()
}

/// Whom a bucket belongs to: an IPv4 client by its address, an IPv6 client by its /64
/// (the smallest prefix a subscriber is given: every address in it is one client's to
/// choose). An IPv4-mapped IPv6 address is its IPv4 address.
pub fn client_key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// A map of at most [`MAX_BUCKETS`] entries that forgets the least recently used one.
struct Bounded<V> {
    map: Mutex<LruCache<IpAddr, V>>,
}

impl<V> Bounded<V> {
    fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            map: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The map (a panic elsewhere while holding it leaves it usable: every entry is
    /// written whole).
    fn lock(&self) -> MutexGuard<'_, LruCache<IpAddr, V>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// governor's state (the GCRA's theoretical arrival time) per client, bounded.
struct BoundedStore(Arc<Bounded<u64>>);

impl StateStore for BoundedStore {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // Decided and written under the lock: no compare-and-swap loop is needed.
        let mut map = self.0.lock();
        let previous = map.get(key).copied().map(Nanos::from);
        let (outcome, next) = f(previous)?;
        map.put(*key, u64::from(next));
        Ok(outcome)
    }
}

type BoundedLimiter<MW = governor::middleware::NoOpMiddleware> =
    RateLimiter<IpAddr, BoundedStore, DefaultClock, MW>;

/// A limiter for `quota` over at most `capacity` clients, and its map (to count them).
fn bounded_limiter(quota: Quota, capacity: usize) -> (BoundedLimiter, Arc<Bounded<u64>>) {
    let buckets = Arc::new(Bounded::new(capacity));
    let store = BoundedStore(buckets.clone());
    (
        RateLimiter::new(quota, store, DefaultClock::default()),
        buckets,
    )
}

/// Logins per client and minute.
pub struct LoginLimiter {
    limiter: BoundedLimiter,
    buckets: Arc<Bounded<u64>>,
}

impl LoginLimiter {
    /// `None` when `per_minute` is 0 (off).
    pub fn new(per_minute: u32) -> Option<Self> {
        Self::with_capacity(per_minute, MAX_BUCKETS)
    }

    /// [`Self::new`] tracking at most `capacity` clients.
    pub fn with_capacity(per_minute: u32, capacity: usize) -> Option<Self> {
        let per_minute = NonZeroU32::new(per_minute)?;
        let (limiter, buckets) = bounded_limiter(Quota::per_minute(per_minute), capacity);
        Some(Self { limiter, buckets })
    }

    /// Takes one login from `addr`'s client's bucket, or says how long to wait.
    pub fn check(&self, addr: IpAddr) -> Result<(), ApiError> {
        self.limiter
            .check_key(&client_key(addr))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                ApiError::TooManyRequests(retry_after(wait))
            })
    }

    /// How many clients have a bucket now (at most the capacity).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// Refused credentials per client and minute.
pub struct FailedAuthLimiter {
    limiter: BoundedLimiter<StateInformationMiddleware>,
    buckets: Arc<Bounded<u64>>,
    /// Clients whose bucket is empty, until when.
    blocked: Bounded<Instant>,
    /// How long one cell takes to come back.
    refill: Duration,
}

impl FailedAuthLimiter {
    /// `None` when `per_minute` is 0 (off).
    pub fn new(per_minute: u32) -> Option<Self> {
        Self::with_capacity(per_minute, MAX_BUCKETS)
    }

    /// [`Self::new`] tracking at most `capacity` clients.
    pub fn with_capacity(per_minute: u32, capacity: usize) -> Option<Self> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
        let (limiter, buckets) = bounded_limiter(quota, capacity);
        Some(Self {
            limiter: limiter.with_middleware::<StateInformationMiddleware>(),
            buckets,
            blocked: Bounded::new(capacity),
            refill: quota.replenish_interval(),
        })
    }

    /// `Err(TOO_MANY_REQUESTS)` while `addr`'s client has used up its refusals.
    pub fn check(&self, addr: IpAddr) -> Result<(), ApiError> {
        let key = client_key(addr);
        let mut blocked = self.blocked.lock();
        let Some(until) = blocked.peek(&key).copied() else {
            return Ok(());
        };
        let now = Instant::now();
        if until > now {
            return Err(ApiError::TooManyRequests(retry_after(until - now)));
        }
        blocked.pop(&key);
        Ok(())
    }

    /// Counts one refused credential of `addr`'s client; the last one its bucket holds
    /// blocks it.
    pub fn record_failure(&self, addr: IpAddr) {
        let key = client_key(addr);
        let wait = match self.limiter.check_key(&key) {
            Ok(state) if state.remaining_burst_capacity() > 0 => return,
            Ok(_) => self.refill,
            Err(not_until) => not_until.wait_time_from(self.limiter.clock().now()),
        };
        self.blocked.lock().put(key, Instant::now() + wait);
    }

    /// How many clients have a bucket now (at most the capacity).
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

/// The buckets and where they apply ([`Self::admit`] before a request is served,
/// [`Self::observe`] after).
pub struct Limits {
    login: Option<LoginLimiter>,
    failed_auth: Option<FailedAuthLimiter>,
    trusted_proxies: Vec<ipnet::IpNet>,
    login_paths: [String; 2],
    backchannel_path: String,
}

/// How a request is limited.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Login,
    Bearer,
    LogoutToken,
    Other,
}

impl Limits {
    /// The limits of `config` for routes under `base_path`.
    pub fn new(
        config: &LimitsConfig,
        trusted_proxies: &[ipnet::IpNet],
        base_path: &str,
    ) -> Arc<Self> {
        Arc::new(Self {
            login: LoginLimiter::new(config.login_per_minute),
            failed_auth: FailedAuthLimiter::new(config.failed_auth_per_minute),
            trusted_proxies: trusted_proxies.to_vec(),
            login_paths: [
                format!("{base_path}/login"),
                format!("{base_path}/callback"),
            ],
            backchannel_path: format!("{base_path}/backchannel-logout"),
        })
    }

    fn kind(&self, request: &ServiceRequest) -> Kind {
        let path = routed_path(request);
        if self.login_paths.iter().any(|login| login == path) {
            Kind::Login
        } else if path == self.backchannel_path {
            Kind::LogoutToken
        } else if request
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.as_bytes().get(..7))
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"bearer "))
        {
            Kind::Bearer
        } else {
            Kind::Other
        }
    }

    /// The refusal for this request before it is served, if any.
    fn refusal(&self, kind: Kind, addr: IpAddr) -> Option<(&'static str, ApiError)> {
        let result = match kind {
            Kind::Login => self
                .login
                .as_ref()
                .map(|limiter| ("login_per_minute", limiter.check(addr))),
            Kind::Bearer | Kind::LogoutToken => self
                .failed_auth
                .as_ref()
                .map(|limiter| ("failed_auth_per_minute", limiter.check(addr))),
            Kind::Other => None,
        }?;
        match result {
            (check, Err(error)) => Some((check, error)),
            (_, Ok(())) => None,
        }
    }
}

/// A request the limits let through, and what they need to see of its answer.
pub struct Admitted {
    kind: Kind,
    addr: IpAddr,
}

impl Limits {
    /// Before serving: `Err(TOO_MANY_REQUESTS)` (logged) when the request's address is
    /// over a limit; `Ok(Some(..))` when its answer must be seen ([`Self::observe`]).
    pub fn admit(&self, request: &ServiceRequest) -> Result<Option<Admitted>, ApiError> {
        if self.login.is_none() && self.failed_auth.is_none() {
            return Ok(None);
        }
        let kind = self.kind(request);
        if kind == Kind::Other {
            return Ok(None);
        }
        let Some(addr) = client_address::of_request(request, &self.trusted_proxies) else {
            return Ok(None);
        };
        if let Some((check, error)) = self.refusal(kind, addr) {
            tracing::warn!(check, client = %addr, path = %request.path(), "refused: rate limit reached");
            return Err(error);
        }
        Ok(Some(Admitted { kind, addr }))
    }

    /// After serving: feeds the failed-auth bucket when the answer refused the credential.
    pub fn observe(&self, admitted: &Admitted, status: StatusCode) {
        let refused = match admitted.kind {
            Kind::Bearer => status == StatusCode::UNAUTHORIZED,
            Kind::LogoutToken => status == StatusCode::BAD_REQUEST,
            Kind::Login | Kind::Other => false,
        };
        if refused && let Some(limiter) = &self.failed_auth {
            limiter.record_failure(admitted.addr);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn addr(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after(Duration::ZERO), 1);
        assert_eq!(retry_after(Duration::from_millis(1)), 1);
        assert_eq!(retry_after(Duration::from_millis(29_001)), 30);
        assert_eq!(retry_after(Duration::from_secs(30)), 30);
    }

    #[test]
    fn zero_means_off() {
        assert!(LoginLimiter::new(0).is_none());
        assert!(FailedAuthLimiter::new(0).is_none());
    }

    #[test]
    fn the_last_failure_a_bucket_holds_blocks_that_address_only() {
        let limiter = FailedAuthLimiter::new(2).unwrap();
        let (a, b) = (addr("192.0.2.1"), addr("192.0.2.2"));
        limiter.record_failure(a);
        assert!(limiter.check(a).is_ok());
        limiter.record_failure(a);
        match limiter.check(a) {
            Err(ApiError::TooManyRequests(seconds)) => assert!((1..=30).contains(&seconds)),
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limiter.check(b).is_ok());
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_and_ipv4_clients_by_address() {
        assert_eq!(
            client_key(addr("2001:db8:1:2:aaaa::1")),
            addr("2001:db8:1:2::")
        );
        assert_eq!(
            client_key(addr("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            addr("2001:db8:1:2::")
        );
        assert_ne!(client_key(addr("2001:db8:1:3::1")), addr("2001:db8:1:2::"));
        assert_eq!(client_key(addr("192.0.2.7")), addr("192.0.2.7"));
        assert_eq!(client_key(addr("::ffff:192.0.2.7")), addr("192.0.2.7"));
    }

    #[test]
    fn addresses_within_one_64_share_a_login_bucket() {
        let limiter = LoginLimiter::new(2).unwrap();
        assert!(limiter.check(addr("2001:db8:0:1::1")).is_ok());
        assert!(limiter.check(addr("2001:db8:0:1::2")).is_ok());
        assert!(limiter.check(addr("2001:db8:0:1:dead:beef::3")).is_err());
        assert!(limiter.check(addr("2001:db8:0:2::1")).is_ok());
        assert_eq!(limiter.tracked(), 2);
    }

    #[test]
    fn a_flood_of_distinct_addresses_stays_within_the_bound_and_evicts_the_oldest() {
        let limiter = LoginLimiter::with_capacity(1, 100).unwrap();
        let (old, recent) = (addr("198.51.100.1"), addr("198.51.100.2"));
        assert!(limiter.check(old).is_ok());
        assert!(limiter.check(recent).is_ok());
        assert!(limiter.check(old).is_err());
        // Seen again: `recent` is now the most recently used.
        assert!(limiter.check(recent).is_err());
        for n in 0..99u32 {
            let flood = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            assert!(limiter.check(flood).is_ok());
            assert!(limiter.tracked() <= 100);
        }
        // 101 clients seen, room for 100: the least recently seen (`old`) went first.
        assert!(
            limiter.check(recent).is_err(),
            "a recent bucket was evicted"
        );
        assert!(limiter.check(old).is_ok(), "the oldest bucket was kept");
        for n in 0..10_000u32 {
            let flood = IpAddr::from(std::net::Ipv6Addr::from_bits(u128::from(n) << 64));
            let _ = limiter.check(flood);
        }
        assert_eq!(limiter.tracked(), 100);
    }

    #[test]
    fn refusals_of_a_flood_of_addresses_stay_within_the_bound() {
        let limiter = FailedAuthLimiter::with_capacity(1, 50).unwrap();
        for n in 0..5_000u32 {
            let flood = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            limiter.record_failure(flood);
            assert!(limiter.check(flood).is_err());
        }
        assert_eq!(limiter.tracked(), 50);
        assert_eq!(limiter.blocked.len(), 50);
    }

    #[test]
    fn logins_take_one_cell_each() {
        let limiter = LoginLimiter::new(3).unwrap();
        let a = addr("2001:db8::1");
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
        }
        match limiter.check(a) {
            Err(ApiError::TooManyRequests(seconds)) => assert!((1..=20).contains(&seconds)),
            other => panic!("expected 429, got {other:?}"),
        }
    }
}
