//! `GET /userinfo`: who is logged in.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::caller::Caller;
use crate::clock::rfc3339;
use crate::error::{ApiError, ErrorBody, json_response};
use crate::state::AppState;

/// A logged-in caller.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Authenticated<'a> {
    /// Always true.
    authenticated: bool,
    /// Display name.
    name: &'a str,
    /// The provider's subject.
    subject: &'a str,
    /// Provider id.
    provider: &'a str,
    /// Roles.
    roles: &'a [String],
    /// Groups.
    groups: &'a [String],
    /// Configured attributes.
    #[schema(value_type = Object)]
    attributes: &'a Map<String, Value>,
    /// When the session ends if idle (RFC 3339 UTC), or the bearer token's exp.
    #[serde(rename = "expiresAt")]
    expires_at: String,
}

/// Nobody is logged in.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Anonymous {
    /// Always false.
    authenticated: bool,
}

/// `GET /userinfo`
#[utoipa::path(get, path = "/userinfo", tag = "frontend",
    responses(
        (status = 200, description = "Who is logged in", body = inline(UserinfoAnswer)),
        (status = 401, description = "UNAUTHORIZED (a bad bearer token)", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ),
    security((), ("cookie" = []), ("bearer" = [])))]
pub async fn get_userinfo(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let Some(caller) = Caller::identify(&state.caller_deps(), &request).await? else {
        return Ok(json_response(
            StatusCode::OK,
            &Anonymous {
                authenticated: false,
            },
        ));
    };
    let profile = caller.profile();
    Ok(json_response(
        StatusCode::OK,
        &Authenticated {
            authenticated: true,
            name: &profile.name,
            subject: caller.subject(),
            provider: caller.provider(),
            roles: &profile.roles,
            groups: &profile.groups,
            attributes: &profile.attributes,
            expires_at: rfc3339(caller.expires_at()),
        },
    ))
}

/// The two shapes of `/userinfo`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub enum UserinfoAnswer<'a> {
    /// Logged in.
    Authenticated(Authenticated<'a>),
    /// Not logged in.
    Anonymous(Anonymous),
}
