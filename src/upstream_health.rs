//! Whether an upstream identity provider answers (SPEC 7 and 10), kept the same way for
//! an OpenID provider (`oidc::provider`) and an ArcGIS portal (`arcgis::health`): when
//! its last check succeeded and when one last failed, and the timings both follow. A
//! login trusts one that answered within [`LOGIN_FRESHNESS`]; older, one check runs
//! (within [`CHECK_DEADLINE`], one at a time, concurrent logins waiting at most
//! [`CHECK_WAIT`] for it); a failure is believed for [`FAILURE_MEMORY`] while a watcher
//! keeps checking, backing off from [`RETRY_FIRST`] to [`RETRY_LONGEST`].

use std::time::{Duration, Instant};

/// A new login trusts a portal or provider that answered this recently; older, it is
/// checked first, so one that went down answers `PROVIDER_UNAVAILABLE` instead of a dead
/// redirect.
pub const LOGIN_FRESHNESS: Duration = Duration::from_secs(1);

/// How long a failed check is believed: logins fail at once, without asking upstream.
pub const FAILURE_MEMORY: Duration = Duration::from_secs(5);

/// Deadline of one check (a provider's: discovery, plus keys when they must be loaded);
/// one that accepts connections and never answers costs a login at most this (SPEC 7:
/// 3 s).
pub const CHECK_DEADLINE: Duration = Duration::from_secs(2);

/// A login waits at most this for a check another request is running.
pub const CHECK_WAIT: Duration = Duration::from_millis(2500);

/// First pause between the watcher's checks of a failing portal or provider.
pub const RETRY_FIRST: Duration = Duration::from_millis(500);

/// Longest pause between the watcher's checks (doubling from [`RETRY_FIRST`]).
pub const RETRY_LONGEST: Duration = Duration::from_secs(5);

/// When a check last succeeded and when one last failed.
#[derive(Default)]
pub struct CheckMemo {
    last_ok: Option<Instant>,
    failed_at: Option<Instant>,
}

impl CheckMemo {
    /// The last check failed (no success since).
    pub fn failing(&self) -> bool {
        match (self.failed_at, self.last_ok) {
            (Some(failed), Some(ok)) => failed > ok,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    /// A check succeeded and none failed since.
    pub fn answering(&self) -> bool {
        self.last_ok.is_some() && !self.failing()
    }

    /// Not failing, and the last check succeeded less than `window` ago.
    pub fn answered_within(&self, window: Duration) -> bool {
        !self.failing() && self.last_ok.is_some_and(|at| at.elapsed() < window)
    }

    /// The last check failed, less than `window` ago.
    pub fn failed_within(&self, window: Duration) -> bool {
        self.failing() && self.failed_at.is_some_and(|at| at.elapsed() < window)
    }

    /// Notes a check that succeeded now.
    pub fn succeeded(&mut self) {
        self.last_ok = Some(Instant::now());
    }

    /// Notes a check that failed now; whether the last one had failed already.
    pub fn failed(&mut self) -> bool {
        let was_failing = self.failing();
        self.failed_at = Some(Instant::now());
        was_failing
    }
}
