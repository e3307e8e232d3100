//! The route table: one thin module per endpoint family.

pub mod admin;
pub mod backchannel;
pub mod callback;
pub mod health;
pub mod jwks;
pub mod login;
pub mod logout;
pub mod metadata;
pub mod openapi;
pub mod proxy;
pub mod sessions;
pub mod token;
pub mod userinfo;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::ORIGIN;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use crate::origin::allows_credentialed_request;
use crate::state::AppState;

/// Registers every endpoint (relative to `server.base_path`).
pub fn configure(config: &mut web::ServiceConfig) {
    config
        .service(resource("/login").route(web::get().to(login::get_login)))
        .service(resource("/callback").route(web::get().to(callback::get_callback)))
        .service(resource("/logout").route(web::get().to(logout::get_logout)))
        .service(resource("/logout/callback").route(web::get().to(logout::get_logout_callback)))
        .service(
            resource("/backchannel-logout")
                .route(web::post().to(backchannel::post_backchannel_logout)),
        )
        .service(resource("/userinfo").route(web::get().to(userinfo::get_userinfo)))
        .service(resource("/token-targets").route(web::get().to(token::get_token_targets)))
        .service(resource("/token").route(web::post().to(token::post_token)))
        .service(resource("/.well-known/jwks.json").route(web::get().to(jwks::get_jwks)))
        .service(resource("/metadata").route(web::get().to(metadata::get_metadata)))
        .service(resource("/openapi.json").route(web::get().to(openapi::get_openapi)))
        .service(resource("/health/live").route(web::get().to(health::get_live)))
        .service(resource("/health/ready").route(web::get().to(health::get_ready)))
        .service(
            resource("/sessions")
                .route(web::get().to(sessions::get_sessions))
                .route(web::delete().to(sessions::delete_sessions)),
        )
        .service(resource("/sessions/{id}").route(web::delete().to(sessions::delete_session)));
}

/// A resource whose other methods answer 405 in our error shape, labelled for the access
/// line and the metrics.
fn resource(
    path: &str,
) -> actix_web::Resource<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::resource(path)
        .app_data(crate::telemetry::RouteLabel(path.to_owned()))
        .default_service(web::to(method_not_allowed))
}

/// The CSRF rule of cookie-authenticated requests that act (SPEC 2,
/// [`allows_credentialed_request`]; `POST /token` and the `DELETE`s of `/sessions`): they
/// must come from our own pages or an allowed frontend. Anything else is logged as a
/// refused cross-site `what` request and answers 403 with `refusal`.
fn require_same_site(
    state: &AppState,
    request: &HttpRequest,
    what: &str,
    refusal: &'static str,
) -> Result<(), ApiError> {
    let same_site = allows_credentialed_request(
        request.headers().get(ORIGIN).map(|value| value.as_bytes()),
        request.headers().contains_key("x-requested-with"),
        &state.config.server.public_url.origin(),
        &state.cors_origins,
    );
    if same_site {
        return Ok(());
    }
    tracing::warn!(
        check = "Origin or X-Requested-With",
        "cross-site {what} request refused"
    );
    Err(ApiError::Forbidden(refusal))
}

/// Unknown paths.
pub async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::NotFound)
}

async fn method_not_allowed() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed)
}
