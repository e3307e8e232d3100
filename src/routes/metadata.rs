//! `GET /metadata`: the service and its providers (never secrets).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::error::json_response;
use crate::state::AppState;

/// The service and its providers.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Metadata<'a> {
    /// `identity-service`.
    name: &'static str,
    /// The service version.
    version: &'static str,
    /// Configured providers.
    providers: Vec<ProviderEntry<'a>>,
}

/// One provider.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProviderEntry<'a> {
    /// Provider id.
    id: &'a str,
    /// Display name.
    name: &'a str,
    /// The provider's issuer.
    url: String,
    /// `"fapi2"` for a FAPI 2.0 provider (SPEC 12); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'static str>,
}

/// `GET /metadata`
#[utoipa::path(get, path = "/metadata", tag = "frontend",
    responses((status = 200, description = "Service name, version and providers", body = Metadata)))]
pub async fn get_metadata(state: web::Data<AppState>) -> HttpResponse {
    let providers = state
        .providers
        .all()
        .iter()
        .map(|provider| ProviderEntry {
            id: provider.id(),
            name: &provider.config.name,
            url: provider.issuer(),
            profile: (provider.config.profile == crate::config::Profile::Fapi2).then_some("fapi2"),
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
