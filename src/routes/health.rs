//! `GET /health/live` and `GET /health/ready`.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::error::json_response;
use crate::state::AppState;

/// Health of the service.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Store answers and every provider is discovered.
    ready: bool,
    /// Each check: "ok" or the problem.
    checks: Checks,
}

/// The individual checks.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Checks {
    /// "ok" or the problem.
    store: String,
    /// Provider id → "ok" or the problem.
    providers: BTreeMap<String, String>,
}

/// `GET /health/live`: 200 while the process runs.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "The process runs", body = Health)))]
pub async fn get_live(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let mut health = health(&state).await;
    if request.extensions().get::<MetricsListener>().is_none() {
        without_detail(&mut health);
    }
    json_response(StatusCode::OK, &health)
}

/// `GET /health/ready`: 200 when the store answers and every provider is discovered.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready", body = Health),
    ))]
pub async fn get_ready(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let mut health = health(&state).await;
    if request.extensions().get::<MetricsListener>().is_none() {
        without_detail(&mut health);
    }
    let status = if health.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &health)
}

async fn health(state: &AppState) -> Health {
    let store = match tokio::time::timeout(Duration::from_secs(2), state.sessions.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(_)) => "unavailable".to_owned(),
        Err(_) => "timeout".to_owned(),
    };
    let providers: BTreeMap<String, String> = state
        .providers
        .all()
        .iter()
        .map(|provider| (provider.id().to_owned(), provider.status()))
        .collect();
    let ready = store == "ok" && providers.values().all(|status| status == "ok");
    Health {
        ready,
        checks: Checks { store, providers },
    }
}

/// Marks a request that came in on the metrics listener (`server.metrics_bind`), where
/// readiness may show the raw problems.
#[derive(Clone, Copy)]
pub struct MetricsListener;

/// Replaces raw problems (which may name internal URLs) by what is down.
fn without_detail(health: &mut Health) {
    for status in health.checks.providers.values_mut() {
        if status != "ok" {
            *status = if status.is_empty() {
                "discovery pending".to_owned()
            } else {
                "discovery failed".to_owned()
            };
        }
    }
}

/// The registry `GET /metrics` renders.
pub struct MetricsRegistry(pub prometheus::Registry);

/// `GET /metrics`: Prometheus text format.
pub async fn get_metrics(registry: web::Data<MetricsRegistry>) -> HttpResponse {
    let encoder = prometheus::TextEncoder::new();
    match encoder.encode_to_string(&registry.0.gather()) {
        Ok(text) => HttpResponse::Ok()
            .content_type(prometheus::TEXT_FORMAT)
            .body(text),
        Err(error) => {
            tracing::error!(%error, "cannot render the metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}
