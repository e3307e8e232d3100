//! `POST /backchannel-logout` (OpenID Connect Back-Channel Logout 1.0): a provider tells
//! us a user's session ended; every matching session dies, on every instance at once.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde_json::json;

use crate::crypto;
use crate::error::{ApiError, ErrorBody, json_response};
use crate::extract::read_form;
use crate::oidc::logout_token::{self, CLOCK_SKEW_SECONDS};
use crate::session::unix_now;
use crate::state::AppState;
use crate::store::KeyValueStore;

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
    match params.count("logout_token") {
        0 => return Err(invalid("logout_token is missing")),
        1 => {}
        _ => return Err(invalid("exactly one logout_token is allowed")),
    }
    let token = params
        .get("logout_token")
        .ok_or_else(|| invalid("logout_token is empty"))?;
    let max_age = i64::try_from(state.config.backchannel.max_age.as_secs()).unwrap_or(i64::MAX / 4);
    let logout = logout_token::validate(&state.providers, &state.http, token, max_age, unix_now())
        .await
        .map_err(|reason| {
            tracing::info!(reason, "logout token refused");
            invalid(reason)
        })?;
    // Section 2.6 step 7: a jti seen before (on any instance) is a replay. The guard lives
    // as long as a token can stay acceptable (max_age plus skew).
    let guard = format!(
        "{}jti:{}",
        state.config.session.key_prefix,
        crypto::derive_name(
            "logout-jti",
            format!("{}\0{}", logout.provider.id(), logout.jti).as_bytes()
        )
    );
    let guard_ttl = Duration::from_secs((max_age + 2 * CLOCK_SKEW_SECONDS).max(1) as u64);
    if !state.store.set_if_absent(&guard, b"1", guard_ttl).await? {
        return Err(invalid("the jti was already used (replay)"));
    }
    let ended = match (&logout.sid, &logout.sub) {
        (Some(sid), _) => {
            state
                .sessions
                .delete_by_sid(logout.provider.id(), sid)
                .await?
        }
        (None, Some(sub)) => {
            state
                .sessions
                .delete_by_subject(logout.provider.id(), sub)
                .await?
        }
        (None, None) => 0,
    };
    state
        .metrics
        .logouts
        .with_label_values(&["backchannel"])
        .inc_by(ended);
    tracing::info!(provider = %logout.provider.id(), ended, "back-channel logout");
    Ok(())
}

fn invalid(reason: &str) -> ApiError {
    ApiError::InvalidLogoutToken(reason.to_owned())
}
