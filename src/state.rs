//! The typed application state every handler receives through `web::Data`: wiring only.
//! It builds the parts from configuration and hands each domain call the narrow parts it
//! needs ([`AppState::caller_deps`], [`AppState::token_deps`], ...); no logic lives here.

use std::sync::Arc;
use std::time::Duration;

use crate::caller::CallerDeps;
use crate::config::Config;
use crate::cookies::CookieSettings;
use crate::error::StartupError;
use crate::metrics::Metrics;
use crate::observed_store::ObservedStore;
use crate::oidc::ProviderRegistry;
use crate::oidc::backchannel::BackchannelDeps;
use crate::oidc::bearer::BearerVerifier;
use crate::oidc::login::LoginDeps;
use crate::oidc::logout::LogoutDeps;
use crate::oidc::refresh::RefreshDeps;
use crate::oidc::revoke::RevokeDeps;
use crate::oidc::session_list::SessionListDeps;
use crate::origin::OriginPolicy;
use crate::pages::Pages;
use crate::redirect::RedirectPolicy;
use crate::session::{PendingLogins, SealedSlots, SessionService};
use crate::single_flight::SingleFlight;
use crate::store::AnyStore;
use crate::targets::signing::Signer;
use crate::targets::{TargetTable, TokenCache, TokenDeps};

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
    pub pending_logins: PendingLogins,
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
    /// The one HTTP client for upstream calls (timeouts, no redirects).
    pub http: reqwest::Client,
}

impl AppState {
    /// Builds the state from configuration, a store and the metrics.
    pub fn new(config: Config, store: AnyStore, metrics: Metrics) -> Result<Self, StartupError> {
        let config = Arc::new(config);
        let store = ObservedStore::new(store, metrics.store_errors.clone());
        let public_url = config.server.public_url.as_str().trim_end_matches('/');
        let public_base = format!("{public_url}{}", config.server.base_path);
        let prefix = &config.session.key_prefix;
        let http = crate::http_client::build(&config.tls).map_err(StartupError::Part)?;
        let providers =
            ProviderRegistry::new(&config.providers, &format!("{public_base}/callback"))
                .map_err(|error| StartupError::Part(error.to_string()))?;
        let pages = Pages::new(config.server.templates_dir.as_deref())
            .map_err(|error| StartupError::Part(error.to_string()))?;
        Ok(Self {
            sessions: SessionService::new(
                store.clone(),
                prefix,
                config.session.idle_timeout,
                config.session.max_lifetime,
            ),
            pending_logins: PendingLogins::new(store.clone(), prefix, PENDING_TTL),
            pending_logouts: SealedSlots::new(store.clone(), prefix, "logout"),
            targets: TargetTable::new(&config.targets)
                .map_err(|error| StartupError::Part(error.to_string()))?,
            token_cache: TokenCache::new(store.clone(), prefix),
            flights: SingleFlight::new(store.clone()),
            signer: Arc::new(
                Signer::load_all(&config.signing.keys())
                    .map_err(|error| StartupError::Part(error.to_string()))?,
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
            pending_logins: PendingLogins::new(store.clone(), prefix, PENDING_TTL),
            pending_logouts: SealedSlots::new(store.clone(), prefix, "logout"),
            token_cache: TokenCache::new(store.clone(), prefix),
            flights: SingleFlight::new(store.clone()),
            store,
            ..self.clone()
        }
    }

    /// What identifying a caller needs.
    pub fn caller_deps(&self) -> CallerDeps<'_> {
        CallerDeps {
            providers: &self.providers,
            bearer: &self.bearer,
            http: &self.http,
            sessions: &self.sessions,
            cookies: &self.cookies,
        }
    }

    /// What refreshing a session's access token needs.
    pub fn refresh_deps(&self) -> RefreshDeps<'_> {
        RefreshDeps {
            sessions: &self.sessions,
            flights: &self.flights,
            providers: &self.providers,
            http: &self.http,
            key_prefix: &self.config.session.key_prefix,
            metrics: &self.metrics,
        }
    }

    /// What issuing a target token needs.
    pub fn token_deps(&self) -> TokenDeps<'_> {
        TokenDeps {
            token_cache: &self.token_cache,
            flights: &self.flights,
            http: &self.http,
            providers: &self.providers,
            signer: &self.signer,
            issuer: self.config.server.public_url.as_str().trim_end_matches('/'),
            metrics: &self.metrics,
            refresh: self.refresh_deps(),
        }
    }

    /// What an RP-side logout (`GET /logout`) needs.
    pub fn logout_deps(&self) -> LogoutDeps<'_> {
        LogoutDeps {
            sessions: &self.sessions,
            providers: &self.providers,
            pending_logouts: &self.pending_logouts,
            pending_ttl: PENDING_TTL,
            public_base: &self.public_base,
            metrics: &self.metrics,
            http: &self.http,
        }
    }

    /// What a back-channel logout needs.
    pub fn backchannel_deps(&self) -> BackchannelDeps<'_> {
        BackchannelDeps {
            providers: &self.providers,
            http: &self.http,
            sessions: &self.sessions,
            store: &self.store,
            key_prefix: &self.config.session.key_prefix,
            max_age: self.config.backchannel.max_age,
        }
    }

    /// What listing and ending a user's sessions needs (SPEC 11).
    pub fn session_list_deps(&self) -> SessionListDeps<'_> {
        SessionListDeps {
            sessions: &self.sessions,
            revoke: RevokeDeps {
                providers: &self.providers,
                http: &self.http,
                metrics: &self.metrics,
            },
        }
    }

    /// What finishing a login needs.
    pub fn login_deps(&self) -> LoginDeps<'_> {
        LoginDeps {
            pending_logins: &self.pending_logins,
            redirect_policy: &self.redirect_policy,
            providers: &self.providers,
            http: &self.http,
            sessions: &self.sessions,
        }
    }
}
