//! `GET /callback`: the redirect URI of every provider. Finishes a login and creates a
//! session under a brand-new ticket.

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::crypto;
use crate::error::{ApiError, ErrorBody, printable};
use crate::extract::Params;
use crate::oidc::{claims, flow};
use crate::session::{SessionRecord, unix_now_ms};
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
    match callback(&state, &request).await {
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
    }
}

async fn callback(state: &AppState, request: &HttpRequest) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(request.query_string());
    let handle = params
        .get("state")
        .ok_or_else(|| ApiError::login_failed("the callback carries no state"))?;
    let pending: flow::PendingLogin =
        state.pending_logins.take(handle).await?.ok_or_else(|| {
            ApiError::login_failed("the login is unknown, expired or already finished")
        })?;
    let same_browser = state.cookies.login_binding(request).is_some_and(|binding| {
        crypto::derive_name("login-binding", binding.as_bytes()) == pending.browser_binding
    });
    if !same_browser {
        return Err(ApiError::login_failed(
            "the login was started in another browser",
        ));
    }
    let provider = state
        .providers
        .get(&pending.provider)
        .ok_or_else(|| ApiError::login_failed("the provider is no longer configured"))?;
    if let Some(error) = params.get("error") {
        return Err(ApiError::login_failed(format!(
            "the provider answered '{}'",
            printable(error)
        )));
    }
    // RFC 9207: a response naming another issuer is a mix-up attack.
    if let Some(issuer) = params.get("iss")
        && issuer != provider.issuer()
    {
        return Err(ApiError::login_failed(
            "the authorization response comes from another issuer",
        ));
    }
    let code = params
        .get("code")
        .ok_or_else(|| ApiError::login_failed("the callback carries no code"))?;
    let outcome = flow::finish_login(provider, &state.http, &pending, code).await?;
    let now = unix_now_ms();
    let record = SessionRecord {
        provider: provider.id().to_owned(),
        profile: claims::map_profile(&provider.config, &outcome.claims),
        subject: outcome.subject,
        sid: outcome.sid,
        created_at_ms: now,
        last_touch_ms: now,
        tokens: outcome.tokens,
    };
    // Never keep a pre-login session: the browser gets a new ticket, the old one dies.
    if let Some(previous) = state.cookies.ticket(request)
        && let Some(previous) = state.sessions.load(previous).await?
    {
        state.sessions.delete(&previous).await?;
    }
    let ticket = state.sessions.create(&record).await?;
    state
        .metrics
        .logins
        .with_label_values(&[provider.id(), "success"])
        .inc();
    tracing::info!(provider = %provider.id(), "login completed");
    Ok(HttpResponse::Found()
        .insert_header((LOCATION, pending.return_url.as_str()))
        .cookie(state.cookies.session(&ticket))
        .finish())
}
