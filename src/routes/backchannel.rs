//! `POST /backchannel-logout` (OpenID Connect Back-Channel Logout 1.0): a provider tells
//! us a user's session ended; every matching session dies, on every instance at once.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;

use crate::error::{ApiError, ErrorBody, json_response};
use crate::extract::read_form;
use crate::oidc::backchannel;
use crate::state::AppState;

/// The body of `POST /backchannel-logout`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct LogoutTokenForm {
    /// A Back-Channel Logout 1.0 logout token (JWT signed by a configured provider).
    logout_token: String,
}

/// The answer of a successful back-channel logout.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Success {
    /// Always true.
    success: bool,
}

/// `POST /backchannel-logout` with form field `logout_token`.
#[utoipa::path(post, path = "/backchannel-logout", tag = "provider",
    request_body(content = LogoutTokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Every matching session ended (also when none matched)", body = Success),
        (status = 400, description = "INVALID_LOGOUT_TOKEN", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ))]
pub async fn post_backchannel_logout(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    match backchannel_logout(&state, &request, payload).await {
        Ok(()) => json_response(StatusCode::OK, &json!({"success": true})),
        Err(error) => error.error_response(),
    }
}

async fn backchannel_logout(
    state: &AppState,
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<(), ApiError> {
    let params = read_form(request, payload)
        .await
        .map_err(|error| match error {
            ApiError::PayloadTooLarge => error,
            _ => invalid("the body is not a form"),
        })?;
    let token = match params.count("logout_token") {
        0 => Err(invalid("logout_token is missing")),
        1 => params
            .get("logout_token")
            .ok_or_else(|| invalid("logout_token is empty")),
        _ => Err(invalid("exactly one logout_token is allowed")),
    }?;
    let ended = backchannel::backchannel_logout(&state.backchannel_deps(), token).await?;
    state
        .metrics
        .logouts
        .with_label_values(&["backchannel"])
        .inc_by(ended.sessions);
    state
        .metrics
        .sessions_ended
        .with_label_values(&["backchannel"])
        .inc_by(ended.sessions);
    tracing::info!(provider = %ended.provider, ended = ended.sessions, "back-channel logout");
    Ok(())
}

fn invalid(reason: &str) -> ApiError {
    tracing::warn!(check = reason, "logout request refused");
    ApiError::InvalidLogoutToken(reason.to_owned())
}
