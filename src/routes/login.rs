//! `GET /login`: checks `returnURL`, picks the provider (or shows the chooser) and sends
//! the browser to the provider's authorization endpoint.

use actix_web::http::header::LOCATION;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::clock::unix_now;
use crate::error::{ApiError, ErrorBody};
use crate::extract::Params;
use crate::oidc::flow::{self, LoginHints};
use crate::pages::ProviderChoice;
use crate::redirect::ReturnUrl;
use crate::state::AppState;

/// `GET /login?returnURL=…[&provider=…][&prompt=…][&login_hint=…]`
#[utoipa::path(get, path = "/login", tag = "browser",
    params(
        ("returnURL" = String, Query, description = "Where to send the browser after login (redirect policy applies)"),
        ("provider" = Option<String>, Query, description = "Provider id; with several providers and none, an HTML chooser"),
        ("prompt" = Option<String>, Query, description = "Passed to the provider"),
        ("login_hint" = Option<String>, Query, description = "Passed to the provider"),
    ),
    responses(
        (status = 302, description = "To the provider's authorization endpoint (code flow, PKCE S256, state, nonce)"),
        (status = 200, description = "Provider chooser (HTML)", content_type = "text/html"),
        (status = 400, description = "MISSING_PARAMETER, REDIRECT_NOT_ALLOWED, UNKNOWN_PROVIDER", body = ErrorBody),
        (status = 502, description = "PROVIDER_UNAVAILABLE", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ))]
pub async fn get_login(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    match login(&state, &request).await {
        Ok(response) => response,
        Err(error) => state.pages.error(&request, &error),
    }
}

async fn login(state: &AppState, request: &HttpRequest) -> Result<HttpResponse, ApiError> {
    let params = Params::parse(request.query_string());
    let raw_return_url = params
        .get("returnURL")
        .ok_or(ApiError::MissingParameter("returnURL"))?;
    let return_url =
        ReturnUrl::parse(raw_return_url, &state.redirect_policy).map_err(|refusal| {
            tracing::warn!(check = %refusal, "returnURL refused");
            ApiError::RedirectNotAllowed
        })?;
    let hints = LoginHints {
        prompt: params.get("prompt"),
        login_hint: params.get("login_hint"),
    };
    let Some(provider) = state.providers.choose(params.get("provider"))? else {
        return Ok(state
            .pages
            .choose_provider(&choices(state, raw_return_url, &hints)));
    };
    let discovered = provider.discovered_for_login(&state.http).await?;
    let start = flow::begin_login(provider, &discovered, return_url, &hints)?;
    let start = flow::push_authorization_request(provider, &discovered, &state.http, start).await?;
    // SPEC 7: nothing is stored; the pending login travels sealed in the browser, under a
    // key that only the browser's secret gives (the state is a hash of it).
    let sealed =
        state
            .pending_logins
            .seal(&start.secret, start.seal_nonce, &start.pending, unix_now())?;
    let cookie = state.cookies.login_cookie(
        state.cookies.login_cookie_name(&start.state),
        sealed,
        state.pending_logins.lifetime(),
    );
    Ok(HttpResponse::Found()
        .insert_header((LOCATION, start.authorize_url.as_str()))
        .cookie(cookie)
        .finish())
}

fn choices(state: &AppState, return_url: &str, hints: &LoginHints<'_>) -> Vec<ProviderChoice> {
    state
        .providers
        .all()
        .iter()
        .map(|provider| {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("returnURL", return_url);
            query.append_pair("provider", provider.id());
            if let Some(prompt) = hints.prompt {
                query.append_pair("prompt", prompt);
            }
            if let Some(login_hint) = hints.login_hint {
                query.append_pair("login_hint", login_hint);
            }
            ProviderChoice {
                id: provider.id().to_owned(),
                name: provider.config.name.clone(),
                login_url: format!("{}/login?{}", state.config.server.base_path, query.finish()),
            }
        })
        .collect()
}
