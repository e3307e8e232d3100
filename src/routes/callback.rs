//! `GET /callback`: the redirect URI of every provider. Finishes a login and creates a
//! session under a brand-new ticket.

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::oidc::login::{Callback, complete_login};
use crate::state::AppState;

/// `GET /callback?code=…&state=…[&iss=…]` or `?error=…&state=…`
#[utoipa::path(get, path = "/callback", tag = "browser",
    params(
        ("state" = String, Query, description = "The login's state (single use, 10 minutes)"),
        ("code" = Option<String>, Query, description = "Authorization code"),
        ("iss" = Option<String>, Query, description = "RFC 9207 issuer, checked when sent"),
        ("error" = Option<String>, Query, description = "Provider error, e.g. access_denied"),
    ),
    responses(
        (status = 302, description = "Session created (Set-Cookie ctIDENTITY); to the stored returnURL"),
        (status = 400, description = "LOGIN_FAILED", body = ErrorBody),
        (status = 502, description = "LOGIN_FAILED (provider unreachable)", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ))]
pub async fn get_callback(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let mut response = match callback(&state, &request).await {
        Ok(response) => response,
        Err(error) => {
            if matches!(error, ApiError::LoginFailed { .. }) {
                state
                    .metrics
                    .logins
                    .with_label_values(&["-", "failure"])
                    .inc();
            }
            state.pages.error(&request, &error)
        }
    };
    // This login's cookie is spent either way (and abandoned ones past the cap go too).
    let used = Params::parse(request.query_string())
        .get("state")
        .map(|handle| state.cookies.login_cookie_name(handle));
    for removal in state
        .cookies
        .login_cookies_to_clear(&request, used.as_deref())
    {
        let _ = response.add_cookie(&removal);
    }
    response
}

async fn callback(state: &AppState, request: &HttpRequest) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(request.query_string());
    let callback = Callback {
        state: params.get("state"),
        code: params.get("code"),
        iss: params.get("iss"),
        error: params.get("error"),
        login_cookie: params.get("state").and_then(|handle| {
            state
                .cookies
                .login_cookie_value(request, &state.cookies.login_cookie_name(handle))
        }),
        previous: state.cookies.ticket(request),
        user_agent: request
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|value| value.to_str().ok()),
    };
    let login = complete_login(&state.login_deps(), callback).await?;
    state
        .metrics
        .logins
        .with_label_values(&[&login.provider, "success"])
        .inc();
    tracing::info!(provider = %login.provider, "login completed");
    Ok(HttpResponse::Found()
        .insert_header((LOCATION, login.return_url.as_str()))
        .cookie(state.cookies.session(&login.ticket))
        .finish())
}
