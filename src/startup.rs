//! Building and running the HTTP server: app state, middleware order and routes.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::body::EitherBody;
use actix_web::dev::{Server, Service, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::{App, HttpMessage, HttpServer, ResponseError, web};

use crate::config::{Config, StoreKind};
use crate::error::{ApiError, StartupError};
use crate::extract::{self, DeclaredBodyCap};
use crate::limits::Limits;
use crate::metrics::{HttpMetrics, Metrics};
use crate::origin::OriginPolicy;
use crate::routes;
use crate::routes::health::{MetricsListener, MetricsRegistry};
use crate::state::AppState;
use crate::store::{AnyStore, MemoryStore, RedisOptions, RedisStore};
use crate::telemetry::{RequestTelemetry, RouteLabel};

/// Seconds in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE_SECONDS: u64 = 8;

/// A bound, not yet running, server.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: Server,
}

impl Application {
    /// Binds `server.bind` and builds the server.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let listener =
            TcpListener::bind(&config.server.bind).map_err(|source| StartupError::Listen {
                address: config.server.bind.clone(),
                source,
            })?;
        Self::build_with_listener(config, listener).await
    }

    /// Builds the server on an already bound listener (tests bind port 0).
    pub async fn build_with_listener(
        config: Config,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        // `main` installs it first; an embedding (the tests) may not have.
        crate::crypto::jose::install();
        let port = listener.local_addr().map_err(StartupError::Serve)?.port();
        let redis_options = RedisOptions {
            key_prefix: config.session.key_prefix.clone(),
            tls_roots_pem: crate::http_client::redis_roots_pem(&config.tls)
                .map_err(StartupError::Part)?,
        };
        let store = match config.session.store {
            StoreKind::Memory => AnyStore::Memory(MemoryStore::new()),
            StoreKind::Redis => AnyStore::Redis(
                RedisStore::connect_with(&config.session.redis_url, &redis_options)
                    .map_err(StartupError::Store)?,
            ),
        };
        let registry = prometheus::Registry::new();
        let metrics = Metrics::register(&registry).map_err(StartupError::Metrics)?;
        let http_metrics = HttpMetrics::register(&registry).map_err(StartupError::Metrics)?;
        let base_path = config.server.base_path.clone();
        let config_store_kind = config.session.store;
        let workers = config.server.workers;
        let proxy = web::Data::new(
            crate::proxy::Proxy::new(&config, &registry).map_err(StartupError::Part)?,
        );
        let state = AppState::new(config, store, metrics)?;
        state.providers.start_discovery(&state.http);
        let metrics_listener = bind_metrics_listener(state.config.server.metrics_bind.as_deref())?;
        let gate = MetricsGate::new(metrics_listener.as_ref(), &base_path)?;
        let metrics_port = gate.as_ref().map(|gate| gate.metrics_addr.port());
        let checks = Arc::new(EdgeChecks {
            gate: gate.clone(),
            body_cap: DeclaredBodyCap::new(
                &base_path,
                proxy.routes().iter().map(|route| route.proxy_path.as_str()),
            ),
            limits: Limits::new(
                &state.config.limits,
                &state.config.server.trusted_proxies,
                &base_path,
            ),
        });
        let metrics_path = metrics_path(gate.as_ref(), &base_path);
        // SPEC 11: beside /metrics on the metrics listener, else under the base path.
        let admin_path = match &gate {
            Some(_) => routes::admin::ADMIN_SESSIONS_PATH.to_owned(),
            None => format!("{base_path}{}", routes::admin::ADMIN_SESSIONS_PATH),
        };
        let metrics_registry = web::Data::new(MetricsRegistry(registry));
        // Labels are relative to the base path; the metrics listener's path is not under it.
        let metrics_label = metrics_path
            .strip_prefix(base_path.as_str())
            .unwrap_or(&metrics_path)
            .to_owned();
        let cors_origins = state.cors_origins.clone();
        let worker_redis_url = match config_store_kind {
            StoreKind::Redis => Some(state.config.session.redis_url.clone()),
            StoreKind::Memory => None,
        };
        let openapi = web::Data::new(routes::openapi::OpenApiJson(routes::openapi::document(
            &state.public_base,
            &state.config.session.cookie_name,
            &state.config.targets,
        )));
        let state = web::Data::new(state);
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(cors(cors_origins.clone()))
                .wrap_fn({
                    let checks = checks.clone();
                    move |request, service| edge(&checks, request, service)
                })
                .wrap(RequestTelemetry::new(http_metrics.clone(), &base_path))
                .app_data(worker_state(
                    &state,
                    worker_redis_url.as_deref(),
                    &redis_options,
                ))
                .app_data(openapi.clone())
                .app_data(extract::payload_config())
                .app_data(extract::form_config())
                .app_data(extract::json_config())
                .app_data(extract::query_config())
                .app_data(proxy.clone())
                .app_data(metrics_registry.clone())
                .service(
                    web::resource(&metrics_path)
                        .app_data(RouteLabel(metrics_label.clone()))
                        .route(web::get().to(routes::health::get_metrics)),
                )
                .service(routes::admin::resource(&admin_path))
                .configure(|config| {
                    let endpoints = |config: &mut web::ServiceConfig| {
                        routes::proxy::configure(config, &proxy);
                        routes::configure(config);
                    };
                    // Without a base path the routes sit on the app itself: a scope
                    // matching everything would only add a routing step to every request.
                    if base_path.is_empty() {
                        endpoints(config);
                    } else {
                        config.service(web::scope(&base_path).configure(endpoints));
                    }
                })
                .default_service(web::to(routes::not_found))
        })
        .shutdown_timeout(SHUTDOWN_GRACE_SECONDS)
        // `main` listens for SIGTERM/SIGINT itself (from before the port opens) and stops
        // the server gracefully: idle keep-alive connections close at once, in-flight
        // requests finish. actix's own handlers would add a 300 ms pause before exiting.
        .disable_signals();
        if workers > 0 {
            server = server.workers(workers);
        }
        server = server.listen(listener).map_err(StartupError::Serve)?;
        if let Some(metrics_listener) = metrics_listener {
            server = server
                .listen(metrics_listener)
                .map_err(StartupError::Serve)?;
        }
        let server = server.run();
        Ok(Self {
            port,
            metrics_port,
            server,
        })
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener (`server.metrics_bind`), when there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// A handle that stops the server (gracefully with `stop(true)`).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM/SIGINT, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The state a worker serves with: its own Redis connection (made on the worker's own
/// runtime, so its I/O stays on that thread), everything else shared. The memory store
/// is shared by all workers.
fn worker_state(
    shared: &web::Data<AppState>,
    redis_url: Option<&str>,
    options: &RedisOptions,
) -> web::Data<AppState> {
    let Some(url) = redis_url else {
        return shared.clone();
    };
    match RedisStore::connect_with(url, options) {
        Ok(store) => web::Data::new(shared.with_store(AnyStore::Redis(store))),
        Err(error) => {
            tracing::warn!(%error, "no connection of its own for this worker; sharing one");
            shared.clone()
        }
    }
}

/// What [`edge`] checks.
struct EdgeChecks {
    gate: Option<MetricsGate>,
    body_cap: DeclaredBodyCap,
    limits: Arc<Limits>,
}

/// The per-request checks around CORS, in one layer (each layer costs ~0.7 µs a
/// request): which listener serves the path ([`MetricsGate`]), the 64 KiB cap on declared
/// bodies, the `[limits]` buckets; after the answer, no `Allow-Credentials` without
/// `Allow-Origin` (actix-cors announces credentials even to origins it does not allow;
/// unlisted origins get no CORS header).
fn edge<S, B>(
    checks: &Arc<EdgeChecks>,
    request: ServiceRequest,
    service: &S,
) -> impl std::future::Future<Output = Result<ServiceResponse<EitherBody<B>>, actix_web::Error>>
+ use<S, B>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let admitted = if checks
        .gate
        .as_ref()
        .is_none_or(|gate| gate.allows(&request))
    {
        checks
            .body_cap
            .check(&request)
            .and_then(|()| checks.limits.admit(&request))
    } else {
        Err(ApiError::NotFound)
    };
    let checks = checks.clone();
    let outcome = match admitted {
        Ok(admitted) => Ok((service.call(request), admitted)),
        Err(error) => Err(request.into_response(error.error_response())),
    };
    async move {
        let (call, admitted) = match outcome {
            Ok(call) => call,
            Err(refusal) => return Ok(refusal.map_into_right_body()),
        };
        let mut response = call.await?;
        if let Some(admitted) = admitted {
            checks.limits.observe(&admitted, response.status());
        }
        let headers = response.headers_mut();
        if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            headers.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS);
        }
        Ok(response.map_into_left_body())
    }
}

/// CORS for `[cors] allowed_origins`, with credentials; other origins get no CORS headers.
fn cors(origins: OriginPolicy) -> Cors {
    Cors::default()
        .allowed_origin_fn(move |origin, _| {
            origin
                .to_str()
                .is_ok_and(|origin| origins.allows_header_value(origin))
        })
        // PUT, PATCH, DELETE: frontends call proxied APIs (SPEC 9) with any method.
        .allowed_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allowed_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::HeaderName::from_static("x-requested-with"),
        ])
        .supports_credentials()
        .block_on_origin_mismatch(false)
        .max_age(600)
}

/// Binds `server.metrics_bind`, when set.
fn bind_metrics_listener(metrics_bind: Option<&str>) -> Result<Option<TcpListener>, StartupError> {
    metrics_bind
        .map(|bind| {
            TcpListener::bind(bind).map_err(|source| StartupError::Listen {
                address: bind.to_owned(),
                source,
            })
        })
        .transpose()
}

/// Where `/metrics` is served: on its own listener at `/metrics`, else under the base path.
fn metrics_path(gate: Option<&MetricsGate>, base_path: &str) -> String {
    match gate {
        Some(gate) => gate.metrics_path.clone(),
        None => format!("{base_path}/metrics"),
    }
}

/// With `server.metrics_bind`: which requests each listener answers.
#[derive(Clone)]
struct MetricsGate {
    metrics_addr: SocketAddr,
    metrics_path: String,
    health_paths: [String; 2],
}

impl MetricsGate {
    /// The main listener answers 404 to `/metrics` and `/admin/sessions`; the metrics
    /// listener serves only those and health (marking the request so readiness may show detail).
    fn allows(&self, request: &ServiceRequest) -> bool {
        // The route the router will serve, however it is spelled (`/%6Detrics`).
        let path = crate::limits::routed_path(request);
        if request.app_config().local_addr() == self.metrics_addr {
            request.extensions_mut().insert(MetricsListener);
            path == self.metrics_path
                || path == routes::admin::ADMIN_SESSIONS_PATH
                || self.health_paths.iter().any(|health| health == path)
        } else {
            path != self.metrics_path && path != routes::admin::ADMIN_SESSIONS_PATH
        }
    }

    fn new(listener: Option<&TcpListener>, base_path: &str) -> Result<Option<Self>, StartupError> {
        let Some(listener) = listener else {
            return Ok(None);
        };
        let metrics_addr = listener.local_addr().map_err(StartupError::Serve)?;
        Ok(Some(Self {
            metrics_addr,
            metrics_path: "/metrics".to_owned(),
            health_paths: [
                format!("{base_path}/health/live"),
                format!("{base_path}/health/ready"),
            ],
        }))
    }
}
