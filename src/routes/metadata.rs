//! `GET /metadata`: the service and its providers (never secrets).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::error::json_response;
use crate::state::AppState;

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'static str,
    version: &'static str,
    providers: Vec<ProviderEntry<'a>>,
}

#[derive(Serialize)]
struct ProviderEntry<'a> {
    id: &'a str,
    name: &'a str,
    url: String,
}

/// `GET /metadata`
pub async fn get_metadata(state: web::Data<AppState>) -> HttpResponse {
    let providers = state
        .providers
        .all()
        .iter()
        .map(|provider| ProviderEntry {
            id: provider.id(),
            name: &provider.config.name,
            url: provider.issuer(),
        })
        .collect();
    json_response(
        StatusCode::OK,
        &Metadata {
            name: "identity-service",
            version: env!("CARGO_PKG_VERSION"),
            providers,
        },
    )
}
