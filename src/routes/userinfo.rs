//! `GET /userinfo`: who is logged in.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::caller::Caller;
use crate::clock::rfc3339;
use crate::error::{ApiError, ErrorBody, InternalError, json_response, json_text_response};
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
    // The answer is [`Authenticated`]: who and until when, then the profile's JSON as
    // the session stores it (copied, not parsed and written again).
    let who = serde_json::to_string(&Who {
        authenticated: true,
        subject: caller.subject(),
        provider: caller.provider(),
        expires_at: rfc3339(caller.expires_at()),
    });
    let (who, profile) = who
        .and_then(|who| Ok((who, caller.profile_json()?)))
        .map_err(|source| {
            ApiError::Internal(InternalError::Serialize {
                what: "a userinfo answer",
                source,
            })
        })?;
    Ok(json_text_response(
        StatusCode::OK,
        join_objects(&who, &profile),
    ))
}

/// The first keys of [`Authenticated`].
#[derive(Serialize)]
struct Who<'a> {
    authenticated: bool,
    subject: &'a str,
    provider: &'a str,
    #[serde(rename = "expiresAt")]
    expires_at: String,
}

/// `{"a":1}` and `{"b":2}` → `{"a":1,"b":2}` (both non-empty JSON objects).
fn join_objects(first: &str, second: &str) -> String {
    let head = first.strip_suffix('}').unwrap_or(first);
    let tail = second.strip_prefix('{').unwrap_or(second);
    let mut joined = String::with_capacity(head.len() + tail.len() + 1);
    joined.push_str(head);
    joined.push(',');
    joined.push_str(tail);
    joined
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
