//! `[limits]` (SPEC 3 and 7): token buckets per client address (see
//! [`crate::client_address`]) on logins and on refused credentials, answered with 429
//! `TOO_MANY_REQUESTS` and `Retry-After`. Off (0) by default.
//!
//! The login bucket covers `GET /login` and `GET /callback`: each request takes one cell.
//! The failed-auth bucket is fed by refusals only ([`FailedAuthLimiter::record_failure`]:
//! a refused bearer token, a refused logout token); once it is empty, every request of
//! that address that carries such a credential is refused before it is checked
//! ([`FailedAuthLimiter::check`]), so guessing cannot go on at full speed.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::ServiceRequest;
use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::client_address;
use crate::config::LimitsConfig;
use crate::error::ApiError;

/// Above this many tracked addresses, forgotten ones are dropped on the next write.
const MAX_TRACKED: usize = 10_000;

/// The whole-second `Retry-After` for a wait (at least 1).
fn retry_after(wait: Duration) -> u64 {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    seconds.max(1)
}

/// Logins per client address and minute.
pub struct LoginLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl LoginLimiter {
    /// `None` when `per_minute` is 0 (off).
    pub fn new(per_minute: u32) -> Option<Self> {
        let per_minute = NonZeroU32::new(per_minute)?;
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
        })
    }

    /// Takes one login from `addr`'s bucket, or says how long to wait.
    pub fn check(&self, addr: IpAddr) -> Result<(), ApiError> {
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&addr).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            ApiError::TooManyRequests(retry_after(wait))
        })
    }
}

type InformedLimiter =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock, StateInformationMiddleware>;

/// Refused credentials per client address and minute.
pub struct FailedAuthLimiter {
    limiter: InformedLimiter,
    /// Addresses whose bucket is empty, until when.
    blocked: DashMap<IpAddr, Instant>,
    /// How long one cell takes to come back.
    refill: Duration,
}

impl FailedAuthLimiter {
    /// `None` when `per_minute` is 0 (off).
    pub fn new(per_minute: u32) -> Option<Self> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?);
        Some(Self {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            blocked: DashMap::new(),
            refill: quota.replenish_interval(),
        })
    }

    /// `Err(TOO_MANY_REQUESTS)` while `addr` has used up its refusals.
    pub fn check(&self, addr: IpAddr) -> Result<(), ApiError> {
        let until = self.blocked.get(&addr).map(|until| *until);
        match until {
            Some(until) => {
                let now = Instant::now();
                if until > now {
                    return Err(ApiError::TooManyRequests(retry_after(until - now)));
                }
                self.blocked.remove_if(&addr, |_, until| *until <= now);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts one refused credential of `addr`; the last one its bucket holds blocks it.
    pub fn record_failure(&self, addr: IpAddr) {
        let wait = match self.limiter.check_key(&addr) {
            Ok(state) if state.remaining_burst_capacity() > 0 => return,
            Ok(_) => self.refill,
            Err(not_until) => not_until.wait_time_from(self.limiter.clock().now()),
        };
        let now = Instant::now();
        if self.blocked.len() > MAX_TRACKED {
            self.blocked.retain(|_, until| *until > now);
        }
        if self.limiter.len() > MAX_TRACKED {
            self.limiter.retain_recent();
        }
        self.blocked.insert(addr, now + wait);
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
        let path = request.path();
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
