//! Whether a portal answers (SPEC 7 and 10): a login trusts a portal that answered within
//! [`LOGIN_FRESHNESS`]; older, one check of `<portal_url>/info?f=json` runs (one at a
//! time, within [`CHECK_DEADLINE`]) and concurrent logins take its result; a failure is
//! believed for [`FAILURE_MEMORY`] while [`super::Portal::watch`] keeps checking. The
//! same numbers as an OpenID provider's.

use std::sync::Mutex;

use crate::upstream_health::{
    CHECK_DEADLINE, CHECK_WAIT, CheckMemo, FAILURE_MEMORY, LOGIN_FRESHNESS, RETRY_FIRST,
    RETRY_LONGEST,
};

#[derive(Default)]
struct Times {
    memo: CheckMemo,
    problem: Option<String>,
}

/// A portal's health.
#[derive(Default)]
pub struct Health {
    times: Mutex<Times>,
    check_lock: tokio::sync::Mutex<()>,
    failure_noticed: tokio::sync::Notify,
}

impl Health {
    fn fresh(&self) -> bool {
        self.times
            .lock()
            .ok()
            .is_some_and(|times| times.memo.answered_within(LOGIN_FRESHNESS))
    }

    fn recently_failed(&self) -> bool {
        self.times
            .lock()
            .ok()
            .is_some_and(|times| times.memo.failed_within(FAILURE_MEMORY))
    }

    /// `"ok"` once the portal answered and while it does, else the last problem.
    pub fn status(&self) -> String {
        match self.times.lock() {
            Ok(times) if times.memo.answering() => "ok".to_owned(),
            Ok(times) => times
                .problem
                .clone()
                .unwrap_or_else(|| "portal not checked yet".to_owned()),
            Err(_) => "unknown".to_owned(),
        }
    }

    fn record(&self, id: &str, outcome: &Result<(), String>) {
        let Ok(mut times) = self.times.lock() else {
            return;
        };
        match outcome {
            Ok(()) => times.memo.succeeded(),
            Err(problem) => {
                let was_failing = times.memo.failed();
                times.problem = Some(problem.clone());
                drop(times);
                if !was_failing {
                    tracing::warn!(provider = %id, %problem, "provider check failed");
                }
                self.failure_noticed.notify_one();
            }
        }
    }
}

impl super::Portal {
    async fn check(&self, http: &reqwest::Client) -> Result<(), String> {
        let outcome = self.info(http, CHECK_DEADLINE).await;
        self.health.record(&self.id, &outcome);
        outcome
    }

    /// Whether a new login may go to the portal: it answered within [`LOGIN_FRESHNESS`] or
    /// a check (shared with concurrent logins) finds it answering.
    pub async fn answers_for_login(&self, http: &reqwest::Client) -> bool {
        if self.health.fresh() {
            return true;
        }
        if self.health.recently_failed() {
            return false;
        }
        tokio::time::timeout(CHECK_WAIT, async {
            let _one_at_a_time = self.health.check_lock.lock().await;
            if self.health.fresh() {
                return true;
            }
            if self.health.recently_failed() {
                return false;
            }
            self.check(http).await.is_ok()
        })
        .await
        .unwrap_or(false)
    }

    /// Runs for the life of the service: checks until the portal answers, then again
    /// (backing off) whenever a check failed, so a recovery is noticed without a login.
    pub async fn watch(&self, http: reqwest::Client) {
        let mut delay = RETRY_FIRST;
        loop {
            let answering = self
                .health
                .times
                .lock()
                .ok()
                .is_some_and(|times| times.memo.answering());
            if answering {
                delay = RETRY_FIRST;
                self.health.failure_noticed.notified().await;
                continue;
            }
            let checked = {
                let _one_at_a_time = self.health.check_lock.lock().await;
                self.check(&http).await
            };
            if checked.is_ok() {
                tracing::info!(provider = %self.id, "provider answers");
                continue;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RETRY_LONGEST);
        }
    }
}
