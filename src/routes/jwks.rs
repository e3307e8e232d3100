//! `GET /.well-known/jwks.json`: the public key our `jwt` target tokens are signed with.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::state::AppState;

/// `GET /.well-known/jwks.json`
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "frontend",
    responses((status = 200, description = "JWK Set (RFC 7517) of the key jwt target tokens are signed with", content_type = "application/json")))]
pub async fn get_jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=utf-8"),
        ))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(state.signer.jwks().to_owned())
}
