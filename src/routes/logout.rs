//! `GET /logout` ends the session here and, where the provider supports it, sends the
//! browser on to end the provider session (RP-Initiated Logout 1.0);
//! `GET /logout/callback` brings it back to the `returnURL`.

use actix_web::http::StatusCode;
use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use crate::error::{ApiError, ErrorBody, InternalError, json_response};
use crate::extract::Params;
use crate::oidc::logout::{LoggedOut, log_out};
use crate::pages::wants_html;
use crate::redirect::ReturnUrl;
use crate::state::AppState;

/// Answer of a logout without `returnURL`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LogoutAnswer {
    /// Always true.
    success: bool,
    /// The provider's end-session URL, for the frontend to navigate to.
    #[serde(rename = "endSessionURL", skip_serializing_if = "Option::is_none")]
    end_session_url: Option<String>,
}

/// `GET /logout[?returnURL=…]`
#[utoipa::path(get, path = "/logout", tag = "browser",
    params(("returnURL" = Option<String>, Query, description = "Where to go afterwards (redirect policy applies)")),
    responses(
        (status = 200, description = "Logged out (no returnURL)", body = LogoutAnswer),
        (status = 302, description = "To the provider's end_session_endpoint (RP-initiated logout) or straight to returnURL"),
        (status = 400, description = "REDIRECT_NOT_ALLOWED", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ))]
pub async fn get_logout(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    match logout(&state, &request).await {
        Ok(response) => response,
        Err(error) => state.pages.error(&request, &error),
    }
}

/// `GET /logout/callback?state=…`: the provider's `post_logout_redirect_uri`.
#[utoipa::path(get, path = "/logout/callback", tag = "browser",
    params(("state" = Option<String>, Query, description = "The logout's state")),
    responses(
        (status = 302, description = "To the returnURL given to /logout"),
        (status = 200, description = "Signed-out page (HTML) or {\"success\": true} for an unknown state", body = LogoutAnswer),
    ))]
pub async fn get_logout_callback(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let params = Params::parse(request.query_string());
    let return_url = match params.get("state") {
        Some(handle) => match state.pending_logouts.take::<ReturnUrl>(handle).await {
            Ok(found) => found,
            Err(error) => return state.pages.error(&request, &error),
        },
        None => None,
    };
    match return_url {
        Some(return_url) => HttpResponse::Found()
            .insert_header((LOCATION, return_url.as_str()))
            .finish(),
        None if wants_html(&request) => state.pages.logged_out(),
        None => json_response(
            StatusCode::OK,
            &LogoutAnswer {
                success: true,
                end_session_url: None,
            },
        ),
    }
}

async fn logout(state: &AppState, request: &HttpRequest) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(request.query_string());
    let return_url = params
        .get("returnURL")
        .map(|raw| {
            ReturnUrl::parse(raw, &state.redirect_policy).map_err(|refusal| {
                tracing::warn!(check = %refusal, "returnURL refused");
                ApiError::RedirectNotAllowed
            })
        })
        .transpose()?;
    let ticket = state.cookies.ticket(request);
    let removal = state.cookies.session_removal();
    match log_out(&state.logout_deps(), ticket, return_url).await? {
        LoggedOut::Answer { end_session_url } => {
            let mut response = json_response(
                StatusCode::OK,
                &LogoutAnswer {
                    success: true,
                    end_session_url,
                },
            );
            response
                .add_cookie(&removal)
                .map_err(InternalError::Header)?;
            Ok(response)
        }
        LoggedOut::Redirect(location) => Ok(HttpResponse::Found()
            .insert_header((LOCATION, location))
            .cookie(removal)
            .finish()),
    }
}
