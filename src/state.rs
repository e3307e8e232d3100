//! The typed application state every handler receives through `web::Data`.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::cookies::CookieSettings;
use crate::metrics::Metrics;
use crate::observed_store::ObservedStore;
use crate::oidc::ProviderRegistry;
use crate::oidc::bearer::BearerVerifier;
use crate::origin::OriginPolicy;
use crate::pages::Pages;
use crate::redirect::RedirectPolicy;
use crate::session::{SealedSlots, SessionService};
use crate::single_flight::SingleFlight;
use crate::store::AnyStore;
use crate::targets::signing::Signer;
use crate::targets::{TargetTable, TokenCache};

/// How long a login or an RP-initiated logout may take (SPEC 2: 10 minutes).
pub const PENDING_TTL: Duration = Duration::from_secs(600);

/// Everything the handlers share. Cloning is cheap: large parts are behind `Arc`s.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// `public_url` + `base_path`, without a trailing slash: our own absolute base.
    pub public_base: String,
    /// Sessions.
    pub sessions: SessionService,
    /// Logins in flight, by `state`.
    pub pending_logins: SealedSlots,
    /// RP-initiated logouts in flight, by `state`.
    pub pending_logouts: SealedSlots,
    /// Providers.
    pub providers: ProviderRegistry,
    /// SPEC 4 for `returnURL`.
    pub redirect_policy: RedirectPolicy,
    /// Origins allowed to call us with credentials (CORS, `POST /token`).
    pub cors_origins: OriginPolicy,
    /// Cookie names and attributes.
    pub cookies: CookieSettings,
    /// HTML pages.
    pub pages: Pages,
    /// Our metrics.
    pub metrics: Metrics,
    /// The key-value store (for replay guards and caches beyond sessions).
    pub store: ObservedStore,
    /// Bearer token checks and the introspection cache.
    pub bearer: BearerVerifier,
    /// Token targets.
    pub targets: TargetTable,
    /// Cached target tokens.
    pub token_cache: TokenCache,
    /// Once-at-a-time upstream calls.
    pub flights: SingleFlight,
    /// Our key for `jwt` targets.
    pub signer: Arc<Signer>,
    /// `/openapi.json`, rendered once.
    pub openapi: String,
    /// The one HTTP client for upstream calls (timeouts, no redirects).
    pub http: reqwest::Client,
}

impl AppState {
    /// Builds the state from configuration, a store and the metrics.
    pub fn new(config: Config, store: AnyStore, metrics: Metrics) -> Result<Self, String> {
        let config = Arc::new(config);
        let store = ObservedStore::new(store, metrics.store_errors.clone());
        let public_url = config.server.public_url.as_str().trim_end_matches('/');
        let public_base = format!("{public_url}{}", config.server.base_path);
        let prefix = &config.session.key_prefix;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("identity-service/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot build the HTTP client: {error}"))?;
        let providers =
            ProviderRegistry::new(&config.providers, &format!("{public_base}/callback"))?;
        let pages = Pages::new(config.server.templates_dir.as_deref())?;
        Ok(Self {
            sessions: SessionService::new(
                store.clone(),
                prefix,
                config.session.idle_timeout,
                config.session.max_lifetime,
            ),
            pending_logins: SealedSlots::new(store.clone(), prefix, "login"),
            pending_logouts: SealedSlots::new(store.clone(), prefix, "logout"),
            targets: TargetTable::new(&config.targets)?,
            token_cache: TokenCache::new(store.clone(), prefix),
            flights: SingleFlight::new(store.clone()),
            signer: Arc::new(Signer::load(config.signing.key_file.as_deref())?),
            openapi: crate::openapi::document(
                &public_base,
                &config.session.cookie_name,
                &config.targets,
            ),
            store,
            bearer: BearerVerifier::default(),
            providers,
            redirect_policy: RedirectPolicy {
                public_url: config.server.public_url.clone(),
                allow_relative: config.redirects.allow_relative,
                allowed_origins: OriginPolicy::new(config.redirects.allowed_origins.clone()),
            },
            cors_origins: OriginPolicy::new(config.cors.allowed_origins.clone()),
            cookies: CookieSettings::new(&config.session, &config.server.base_path),
            pages,
            metrics,
            http,
            public_base,
            config,
        })
    }

    /// The same state over another store connection: each worker gets its own Redis
    /// connection, which measured ~10 % more `/userinfo` throughput than one connection
    /// shared by all workers (its I/O then hops to another thread on every call).
    pub fn with_store(&self, store: AnyStore) -> Self {
        let store = ObservedStore::new(store, self.metrics.store_errors.clone());
        let session = &self.config.session;
        let prefix = &session.key_prefix;
        Self {
            sessions: SessionService::new(
                store.clone(),
                prefix,
                session.idle_timeout,
                session.max_lifetime,
            ),
            pending_logins: SealedSlots::new(store.clone(), prefix, "login"),
            pending_logouts: SealedSlots::new(store.clone(), prefix, "logout"),
            token_cache: TokenCache::new(store.clone(), prefix),
            flights: SingleFlight::new(store.clone()),
            store,
            ..self.clone()
        }
    }
}
