//! `GET /sessions`, `DELETE /sessions/{id}` and `DELETE /sessions` (SPEC 11): where the
//! caller is logged in, and ending any or all of those sessions. Session cookie only.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::caller::Caller;
use crate::clock::rfc3339;
use crate::error::{ApiError, ErrorBody, InternalError, json_response};
use crate::oidc::session_list::{Ended, Which, end_own, list_own};
use crate::session::{ListedSession, LoadedSession};
use crate::state::AppState;

/// A list of sessions.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionList {
    /// Newest first.
    sessions: Vec<SessionEntry>,
}

/// One session as its owner sees it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionEntry {
    /// Opaque and stable for the session's life; opens nothing.
    id: String,
    /// Whether this is the session of the request.
    current: bool,
    /// Provider id.
    provider: String,
    /// Login time, RFC 3339 UTC.
    #[serde(rename = "createdAt")]
    created_at: String,
    /// Last use, RFC 3339 UTC, exact to the minute.
    #[serde(rename = "lastSeenAt")]
    last_seen_at: String,
    /// When the session ends if it stays idle, RFC 3339 UTC.
    #[serde(rename = "expiresAt")]
    expires_at: String,
    /// Browser family, major version and OS, from the login's User-Agent.
    browser: String,
}

/// Answer of a `DELETE`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EndedAnswer {
    /// Always true.
    success: bool,
    /// How many sessions ended.
    ended: u64,
}

impl SessionList {
    /// The answer for `listed`.
    pub fn new(listed: Vec<ListedSession>) -> Self {
        let sessions = listed
            .into_iter()
            .map(|session| SessionEntry {
                id: session.id,
                current: session.current,
                provider: session.provider,
                created_at: rfc3339(session.created_at),
                last_seen_at: rfc3339(session.last_seen_at),
                expires_at: rfc3339(session.expires_at),
                browser: session.browser,
            })
            .collect();
        Self { sessions }
    }
}

impl EndedAnswer {
    /// The answer for `ended` sessions.
    pub fn new(ended: u64) -> Self {
        Self {
            success: true,
            ended,
        }
    }
}

/// `GET /sessions`
#[utoipa::path(get, path = "/sessions", tag = "frontend",
    responses(
        (status = 200, description = "The caller's live sessions on every instance, newest first", body = SessionList),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN (bearer callers)", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("cookie" = [])))]
pub async fn get_sessions(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let caller = session_caller(&state, &request).await?;
    let listed = list_own(&state.session_list_deps(), &caller).await?;
    Ok(json_response(StatusCode::OK, &SessionList::new(listed)))
}

/// `DELETE /sessions/{id}`
#[utoipa::path(delete, path = "/sessions/{id}", tag = "frontend",
    params(
        ("id" = String, Path, description = "A session id from GET /sessions"),
        ("X-Requested-With" = Option<String>, Header, description = "Required unless Origin is ours or allowed"),
    ),
    responses(
        (status = 200, description = "Ended (the caller's own session: its cookie is cleared and its token revoked at the provider)", body = EndedAnswer),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN (bearer callers, cross-site)", body = ErrorBody),
        (status = 404, description = "NOT_FOUND (no such session of the caller)", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("cookie" = [])))]
pub async fn delete_session(
    state: web::Data<AppState>,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    end(&state, &request, Which::One(&id)).await
}

/// `DELETE /sessions`
#[utoipa::path(delete, path = "/sessions", tag = "frontend",
    params(("X-Requested-With" = Option<String>, Header, description = "Required unless Origin is ours or allowed")),
    responses(
        (status = 200, description = "Every session of the caller ended, this one included (cookie cleared, its token revoked at the provider)", body = EndedAnswer),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN (bearer callers, cross-site)", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("cookie" = [])))]
pub async fn delete_sessions(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    end(&state, &request, Which::All).await
}

async fn end(
    state: &AppState,
    request: &HttpRequest,
    which: Which<'_>,
) -> Result<HttpResponse, ApiError> {
    let caller = session_caller(state, request).await?;
    super::require_same_site(
        state,
        request,
        "session",
        "Cross-site session requests need X-Requested-With or an allowed Origin",
    )?;
    let Ended { count, current } = end_own(&state.session_list_deps(), &caller, which).await?;
    let mut response = json_response(StatusCode::OK, &EndedAnswer::new(count));
    if current {
        response
            .add_cookie(&state.cookies.session_removal())
            .map_err(InternalError::Header)?;
    }
    Ok(response)
}

/// The caller's session: bearer callers are refused (403), nobody is 401.
async fn session_caller(
    state: &AppState,
    request: &HttpRequest,
) -> Result<Box<LoadedSession>, ApiError> {
    match Caller::identify(&state.caller_deps(), request).await? {
        Some(Caller::Session(session)) => Ok(session),
        Some(Caller::Bearer(_)) => {
            tracing::warn!(check = "bearer caller", "session request refused");
            Err(ApiError::Forbidden(
                "Sessions are listed and ended with the session cookie, not a bearer token",
            ))
        }
        None => Err(ApiError::Unauthorized("Authentication required")),
    }
}
