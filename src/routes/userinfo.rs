//! `GET /userinfo`: who is logged in.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::caller::Caller;
use crate::error::{ApiError, json_response};
use crate::state::AppState;

#[derive(Serialize)]
struct Authenticated<'a> {
    authenticated: bool,
    name: &'a str,
    subject: &'a str,
    provider: &'a str,
    roles: &'a [String],
    groups: &'a [String],
    attributes: &'a Map<String, Value>,
    #[serde(rename = "expiresAt")]
    expires_at: String,
}

#[derive(Serialize)]
struct Anonymous {
    authenticated: bool,
}

/// `GET /userinfo`
pub async fn get_userinfo(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let Some(caller) = Caller::identify(&state, &request).await? else {
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

/// Unix seconds as RFC 3339 UTC (`2026-11-24T12:00:00Z`).
pub fn rfc3339(unix_seconds: i64) -> String {
    chrono::DateTime::from_timestamp(unix_seconds, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
