//! `GET /admin/sessions` and `DELETE /admin/sessions` (SPEC 11): an operator lists and
//! ends a subject's sessions with the `[admin] token`. Served only on the metrics
//! listener when `server.metrics_bind` is set; 404 without an admin token.

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{HttpRequest, HttpResponse, web};

use super::sessions::{EndedAnswer, SessionList};
use crate::crypto::constant_time_eq;
use crate::error::{ApiError, ErrorBody, json_response};
use crate::extract::Params;
use crate::oidc::session_list::{admin_end, admin_list};
use crate::state::AppState;

/// Where the admin endpoint is served relative to its listener (SPEC 11).
pub const ADMIN_SESSIONS_PATH: &str = "/admin/sessions";

/// The admin resource at `path` (GET and DELETE; other methods 405).
pub fn resource(
    path: &str,
) -> actix_web::Resource<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody + use<>>,
        Error = actix_web::Error,
        InitError = (),
    > + use<>,
> {
    web::resource(path)
        .app_data(crate::telemetry::RouteLabel(ADMIN_SESSIONS_PATH.to_owned()))
        .route(web::get().to(get_admin_sessions))
        .route(web::delete().to(delete_admin_sessions))
        .default_service(web::to(super::method_not_allowed))
}

/// `GET /admin/sessions?provider=…&subject=…`
#[utoipa::path(get, path = "/admin/sessions", tag = "operations",
    params(
        ("provider" = String, Query, description = "Provider id"),
        ("subject" = String, Query, description = "The provider's subject"),
    ),
    responses(
        (status = 200, description = "The subject's live sessions, newest first", body = SessionList),
        (status = 400, description = "MISSING_PARAMETER, UNKNOWN_PROVIDER", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED (admin token missing or wrong)", body = ErrorBody),
        (status = 404, description = "NOT_FOUND (no [admin] token configured, or the main listener while metrics_bind is set)", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("admin" = [])))]
pub async fn get_admin_sessions(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (provider, subject) = admin_request(&state, &request)?;
    let listed = admin_list(&state.session_list_deps(), &provider, &subject).await?;
    Ok(json_response(StatusCode::OK, &SessionList::new(listed)))
}

/// `DELETE /admin/sessions?provider=…&subject=…`
#[utoipa::path(delete, path = "/admin/sessions", tag = "operations",
    params(
        ("provider" = String, Query, description = "Provider id"),
        ("subject" = String, Query, description = "The provider's subject"),
    ),
    responses(
        (status = 200, description = "Every session of the subject ended (tokens are not revoked at the provider)", body = EndedAnswer),
        (status = 400, description = "MISSING_PARAMETER, UNKNOWN_PROVIDER", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED (admin token missing or wrong)", body = ErrorBody),
        (status = 404, description = "NOT_FOUND (no [admin] token configured, or the main listener while metrics_bind is set)", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("admin" = [])))]
pub async fn delete_admin_sessions(
    state: web::Data<AppState>,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let (provider, subject) = admin_request(&state, &request)?;
    let ended = admin_end(&state.session_list_deps(), &provider, &subject).await?;
    Ok(json_response(StatusCode::OK, &EndedAnswer::new(ended)))
}

/// The admin token check (constant time), then `provider` and `subject`.
fn admin_request(state: &AppState, request: &HttpRequest) -> Result<(String, String), ApiError> {
    let Some(token) = &state.config.admin.token else {
        return Err(ApiError::NotFound);
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    let refusal = match presented {
        None => Some("no admin bearer token"),
        Some(presented) if !constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) => {
            Some("wrong admin token")
        }
        Some(_) => None,
    };
    if let Some(check) = refusal {
        tracing::warn!(check, "admin request refused");
        return Err(ApiError::Unauthorized(
            "The admin token is missing or wrong",
        ));
    }
    let params = Params::parse(request.query_string());
    let provider = params
        .get("provider")
        .ok_or(ApiError::MissingParameter("provider"))?;
    let subject = params
        .get("subject")
        .ok_or(ApiError::MissingParameter("subject"))?;
    if state.providers.get(provider).is_none() {
        return Err(ApiError::UnknownProvider(format!(
            "Unknown provider '{}'",
            crate::error::printable(provider)
        )));
    }
    Ok((provider.to_owned(), subject.to_owned()))
}
