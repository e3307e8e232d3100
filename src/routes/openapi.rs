//! `GET /openapi.json`: an OpenAPI 3 document generated from the handlers' annotations
//! (utoipa), so it stays true with them.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::server::Server;
use utoipa::{Modify, OpenApi};

use crate::routes;

/// The document's source: every endpoint of SPEC 2.
#[derive(OpenApi)]
#[openapi(
    info(title = "identity-service", description = "OpenID Connect login sessions and downstream tokens for browser applications."),
    paths(
        routes::login::get_login,
        routes::callback::get_callback,
        routes::logout::get_logout,
        routes::logout::get_logout_callback,
        routes::userinfo::get_userinfo,
        routes::token::get_token_targets,
        routes::token::post_token,
        routes::backchannel::post_backchannel_logout,
        routes::metadata::get_metadata,
        routes::health::get_live,
        routes::health::get_ready,
        routes::jwks::get_jwks,
        routes::openapi::get_openapi,
        routes::openapi::metrics,
        routes::sessions::get_sessions,
        routes::sessions::delete_session,
        routes::sessions::delete_sessions,
        routes::admin::get_admin_sessions,
        routes::admin::delete_admin_sessions,
    ),
    modifiers(&Security),
    tags(
        (name = "browser", description = "Where a browser is redirected"),
        (name = "frontend", description = "Called by frontends (cookie or bearer)"),
        (name = "provider", description = "Called by identity providers"),
        (name = "operations", description = "Health, metrics, this document"),
        (name = "proxy", description = "The API proxy: configured targets with a proxy_path (SPEC 9)"),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("ctIDENTITY"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The [admin] token (SPEC 11)"))
                    .build(),
            ),
        );
    }
}

/// The document for a service reachable at `public_base`, as JSON.
pub fn document(
    public_base: &str,
    cookie_name: &str,
    targets: &[crate::config::TargetConfig],
) -> String {
    let mut openapi = ApiDoc::openapi();
    crate::proxy::openapi::add_paths(&mut openapi, targets);
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    openapi.servers = Some(vec![Server::new(public_base)]);
    if let Some(components) = openapi.components.as_mut() {
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(cookie_name))),
        );
    }
    openapi.to_json().unwrap_or_else(|error| {
        tracing::error!(%error, "could not serialise the OpenAPI document");
        "{}".to_owned()
    })
}

/// The rendered document, shared by every worker.
pub struct OpenApiJson(pub String);

/// `GET /openapi.json`
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This OpenAPI 3 document", content_type = "application/json")))]
pub async fn get_openapi(document: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=utf-8"),
        ))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(document.0.clone())
}

/// `GET /metrics` is answered by the Prometheus middleware; this item only documents it.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format: requests by route and status, latency histograms, logins, logouts, sessions ended by kind, token requests, store errors, upstream latency", content_type = "text/plain")))]
#[allow(dead_code)]
pub(crate) fn metrics() {}
