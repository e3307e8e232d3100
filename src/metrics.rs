//! Prometheus metrics: request counts and latency by route and status,
//! plus logins, logouts, sessions ended by kind, token requests, session store errors and
//! upstream latency.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

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
    /// Sessions ended by kind (`logout`, `user`, `admin`, `backchannel`; SPEC 11).
    pub sessions_ended: IntCounterVec,
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
            sessions_ended: IntCounterVec::new(
                Opts::new(
                    "identity_sessions_ended_total",
                    "Sessions ended by kind: logout, user (DELETE /sessions), admin, backchannel",
                ),
                &["kind"],
            )?,
        };
        registry.register(Box::new(metrics.logins.clone()))?;
        registry.register(Box::new(metrics.logouts.clone()))?;
        registry.register(Box::new(metrics.token_requests.clone()))?;
        registry.register(Box::new(metrics.store_errors.clone()))?;
        registry.register(Box::new(metrics.upstream_latency.clone()))?;
        registry.register(Box::new(metrics.sessions_ended.clone()))?;
        if let Some(dropped) = trace_spans_dropped() {
            registry.register(Box::new(dropped.clone()))?;
        }
        if let Some(refusals) = refusals() {
            registry.register(Box::new(refusals.clone()))?;
        }
        Ok(metrics)
    }
}

/// Spans of traces that were not exported: the export queue was full, or the collector
/// refused or did not answer (one counter per process: there is one trace exporter).
pub fn trace_spans_dropped() -> Option<&'static IntCounter> {
    static DROPPED: std::sync::OnceLock<Option<IntCounter>> = std::sync::OnceLock::new();
    DROPPED
        .get_or_init(|| {
            IntCounter::new(
                "identity_trace_spans_dropped_total",
                "Trace spans not exported: the export queue was full, or the collector refused or did not answer",
            )
            .ok()
        })
        .as_ref()
}

/// Refused requests (an error answer with a 4xx status) by error code (`LOGIN_FAILED`,
/// `FORBIDDEN`, …): one counter per process, counted where error answers are made.
pub fn refusals() -> Option<&'static IntCounterVec> {
    static REFUSALS: std::sync::OnceLock<Option<IntCounterVec>> = std::sync::OnceLock::new();
    REFUSALS
        .get_or_init(|| {
            IntCounterVec::new(
                Opts::new(
                    "identity_refusals_total",
                    "Requests refused with a 4xx error answer, by error code",
                ),
                &["code"],
            )
            .ok()
        })
        .as_ref()
}

/// Requests by route, method and status, and their latency (`identity_http_*`).
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    /// Creates the request metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let labels = ["endpoint", "method", "status"];
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new("identity_http_requests_total", "HTTP requests served"),
                &labels,
            )?,
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "identity_http_requests_duration_seconds",
                    "HTTP request duration in seconds",
                ),
                &labels,
            )?,
        };
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.duration.clone()))?;
        Ok(metrics)
    }

    /// The counters of one route, method and status (resolve once, count often).
    pub fn route(&self, route: String, method: &str, status: u16) -> RouteMetrics {
        let status_text = status.to_string();
        let labels = [route.as_str(), method, status_text.as_str()];
        RouteMetrics {
            requests: self.requests.with_label_values(&labels),
            duration: self.duration.with_label_values(&labels),
            route,
        }
    }
}

/// The counters of one route, method and status.
pub struct RouteMetrics {
    requests: IntCounter,
    duration: Histogram,
    route: String,
}

impl RouteMetrics {
    /// Counts one request that took `elapsed`.
    pub fn observe(&self, elapsed: std::time::Duration) {
        self.requests.inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// The route label (the pattern, or `UNKNOWN`).
    pub fn label(&self) -> &str {
        &self.route
    }
}
