//! Prometheus metrics: request counts and latency by route and status (actix-web-prom),
//! plus logins, logouts, token requests, session store errors and upstream latency.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry};

/// Our own counters and histograms, registered in the registry that `/metrics` serves.
#[derive(Clone)]
pub struct Metrics {
    /// Logins by provider and outcome (`success`, `failure`).
    pub logins: IntCounterVec,
    /// Logouts by kind (`user`, `backchannel`).
    pub logouts: IntCounterVec,
    /// Token requests by target and outcome.
    pub token_requests: IntCounterVec,
    /// Failed session store calls.
    pub store_errors: IntCounter,
    /// Upstream call latency by provider and call (`discovery`, `token`, `userinfo`, ...).
    pub upstream_latency: HistogramVec,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            logins: IntCounterVec::new(
                Opts::new("identity_logins_total", "Completed login attempts"),
                &["provider", "outcome"],
            )?,
            logouts: IntCounterVec::new(
                Opts::new("identity_logouts_total", "Ended sessions by kind of logout"),
                &["kind"],
            )?,
            token_requests: IntCounterVec::new(
                Opts::new(
                    "identity_token_requests_total",
                    "Token requests by target and outcome",
                ),
                &["target", "outcome"],
            )?,
            store_errors: IntCounter::new(
                "identity_session_store_errors_total",
                "Session store calls that failed",
            )?,
            upstream_latency: HistogramVec::new(
                HistogramOpts::new(
                    "identity_upstream_request_duration_seconds",
                    "Latency of calls to identity providers and token endpoints",
                ),
                &["provider", "call"],
            )?,
        };
        registry.register(Box::new(metrics.logins.clone()))?;
        registry.register(Box::new(metrics.logouts.clone()))?;
        registry.register(Box::new(metrics.token_requests.clone()))?;
        registry.register(Box::new(metrics.store_errors.clone()))?;
        registry.register(Box::new(metrics.upstream_latency.clone()))?;
        Ok(metrics)
    }
}
