//! The API proxy (SPEC 9, "backend for frontend"): a target with `proxy_path` is also
//! reachable through the service, which attaches the caller's token itself so that it
//! never reaches the browser.
//!
//! The handler (`routes/proxy.rs`) parses the request and calls [`Proxy::serve`]
//! ([`serve`]), which checks the caller (session, CSRF, permission), obtains the token as
//! `POST /token` would, resolves the path ([`path`]), filters headers ([`headers`]) and
//! streams the request and the response ([`forward`]) over one connection pool per target,
//! whose connections drop interim `1xx` responses ([`upstream_io`]).

pub mod forward;
pub mod headers;
pub mod location;
pub mod openapi;
pub mod path;
pub mod serve;
pub mod upstream_io;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use url::{Origin, Url};

use crate::config::{Config, Transport};

pub use forward::{ForwardError, Incoming};
pub use serve::{ProxyCall, ProxyDeps};

/// Idle keep-alive connections to a target are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// A target that does not accept a connection within this long is unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One proxied target: where it is served, where it forwards to, how the token travels.
pub struct ProxyRoute {
    /// `proxy_path`, relative to `base_path`.
    pub proxy_path: String,
    /// The target's configured URL (also its key in the target table).
    pub target_url: Url,
    /// The target's first transport.
    pub transport: Transport,
    /// `<public_url><base_path><proxy_path>`: where the browser reaches the target's URL
    /// (a `Location` into the target is rewritten to start with it).
    pub public_prefix: String,
    /// Whether the target is `https` (its connections speak TLS).
    pub tls: bool,
    /// The target's last `DPoP-Nonce` (RFC 9449 section 9), for the `DPOP` transport.
    pub dpop_nonce: crate::oidc::dpop::DpopNonce,
}

/// One route's upstream client on one worker: its own keep-alive pool (HTTP/1.1, no
/// redirects, no decompression), polled on the worker's thread like the request itself.
/// Built per worker by [`Proxy::worker_client`]; it cannot cross threads.
#[derive(Clone)]
pub struct UpstreamClient(pub(crate) awc::Client);

/// Proxied requests by target and status, and upstream latency by target.
#[derive(Clone)]
pub struct ProxyMetrics {
    /// `identity_proxy_requests_total{target, status}`.
    pub requests: IntCounterVec,
    /// `identity_proxy_upstream_duration_seconds{target}`: until the target's response headers.
    pub upstream_latency: HistogramVec,
}

impl ProxyMetrics {
    fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "identity_proxy_requests_total",
                    "Requests to the API proxy by target and response status",
                ),
                &["target", "status"],
            )?,
            upstream_latency: HistogramVec::new(
                HistogramOpts::new(
                    "identity_proxy_upstream_duration_seconds",
                    "Time until a proxied target's response headers arrive",
                ),
                &["target"],
            )?,
        };
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.upstream_latency.clone()))?;
        Ok(metrics)
    }
}

/// The proxy's routes and settings.
pub struct Proxy {
    routes: Vec<ProxyRoute>,
    /// TLS settings of every upstream connection (ALPN: HTTP/1.1 only).
    tls: Arc<rustls::ClientConfig>,
    /// `[proxy] timeout`: no response headers within this after the body (nor a body stall
    /// this long) → 502.
    pub timeout: Duration,
    /// `[proxy] max_body` in bytes.
    pub max_body: u64,
    /// Counters and latency.
    pub metrics: ProxyMetrics,
    trusted_proxies: Vec<ipnet::IpNet>,
    public_proto: String,
    public_host: String,
    own_origin: Origin,
}

impl Proxy {
    /// The routes of every target with a `proxy_path`, each with its own client; the
    /// metrics are registered in `registry`.
    pub fn new(config: &Config, registry: &Registry) -> Result<Self, String> {
        let mut routes = Vec::new();
        let public_url = config.server.public_url.as_str().trim_end_matches('/');
        let public_base = format!("{public_url}{}", config.server.base_path);
        let mut tls = crate::http_client::rustls_config(&config.tls)?;
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tls = Arc::new(tls);
        for target in &config.targets {
            let Some(proxy_path) = &target.proxy_path else {
                continue;
            };
            routes.push(ProxyRoute {
                proxy_path: proxy_path.clone(),
                target_url: target.url.clone(),
                transport: target
                    .transport
                    .first()
                    .copied()
                    .unwrap_or(Transport::Bearer),
                public_prefix: format!("{public_base}{proxy_path}"),
                tls: target.url.scheme() == "https",
                dpop_nonce: crate::oidc::dpop::DpopNonce::default(),
            });
        }
        let public_url = &config.server.public_url;
        let public_host = match (public_url.host_str(), public_url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => String::new(),
        };
        Ok(Self {
            routes,
            tls,
            timeout: config.proxy.timeout,
            max_body: config.proxy.max_body,
            metrics: ProxyMetrics::register(registry).map_err(|error| error.to_string())?,
            trusted_proxies: config.server.trusted_proxies.clone(),
            public_proto: public_url.scheme().to_owned(),
            public_host,
            own_origin: public_url.origin(),
        })
    }

    /// Every route, in configuration order (an index is a route's id).
    pub fn routes(&self) -> &[ProxyRoute] {
        &self.routes
    }

    /// The route with this index.
    pub fn route(&self, index: usize) -> Option<&ProxyRoute> {
        self.routes.get(index)
    }

    /// A new upstream client for `route` on the calling worker (see [`UpstreamClient`]):
    /// its connections are [`upstream_io::UpstreamIo`]s (TLS for an `https` target, done
    /// by our connector; awc itself only ever sees `http` URIs, see
    /// [`upstream_io::wire_uri`]). The wait for the answer is bounded by `[proxy] timeout`
    /// in [`Proxy::forward`], not here.
    pub fn worker_client(&self, route: &ProxyRoute) -> UpstreamClient {
        let tls = route.tls.then(|| self.tls.clone());
        let connector = awc::Connector::new()
            .connector(upstream_io::UpstreamConnector::new(tls))
            .timeout(CONNECT_TIMEOUT.min(self.timeout))
            .conn_keep_alive(POOL_IDLE_TIMEOUT)
            .limit(0);
        UpstreamClient(
            awc::Client::builder()
                .connector(connector)
                .disable_redirects()
                .disable_timeout()
                .no_default_headers()
                .finish(),
        )
    }

    /// Whether `peer` is one of `server.trusted_proxies`.
    pub fn trusts(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted_proxies.iter().any(|net| net.contains(&ip)))
    }
}
