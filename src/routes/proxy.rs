//! `<proxy_path>/<rest>` (SPEC 9): any method to a proxied target. The handler checks who
//! is calling and may they, gets the token as `POST /token` would, and leaves the
//! forwarding to [`crate::proxy::Proxy`]. Every refusal logs one WARN line naming the
//! check and the target.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::proxy::path::upstream_url;
use crate::proxy::{ForwardError, Incoming, Proxy, ProxyRoute};
use crate::state::AppState;
use crate::targets::issue_token;

/// Which proxy route a scope serves (its index in [`Proxy::routes`]).
#[derive(Clone, Copy)]
struct RouteIndex(usize);

/// Registers one scope per proxied target; it takes every method and every path below it.
pub fn configure(config: &mut web::ServiceConfig, proxy: &Proxy) {
    for (index, route) in proxy.routes().iter().enumerate() {
        config.service(
            web::scope(&route.proxy_path)
                .app_data(RouteIndex(index))
                .default_service(web::to(proxy_request)),
        );
    }
}

/// Any method on `<proxy_path>` or below it.
pub async fn proxy_request(
    state: web::Data<AppState>,
    proxy: web::Data<Proxy>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let Some(route) = request
        .app_data::<RouteIndex>()
        .and_then(|index| proxy.route(index.0))
    else {
        return ApiError::NotFound.error_response();
    };
    let response = match handle(&state, &proxy, route, &request, payload).await {
        Ok(response) => response,
        Err(error) => error.error_response(),
    };
    proxy
        .metrics
        .requests
        .with_label_values(&[route.target_url.as_str(), response.status().as_str()])
        .inc();
    response
}

async fn handle(
    state: &AppState,
    proxy: &Proxy,
    route: &ProxyRoute,
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let target = route.target_url.as_str();
    let refuse = |check: &str, error: ApiError| {
        tracing::warn!(check, target, "proxy request refused");
        error
    };
    if proxy.declared_too_large(request.headers()) {
        return Err(refuse(
            "body exceeds proxy.max_body",
            ApiError::PayloadTooLarge,
        ));
    }
    // A session only: the browser's Authorization header is the target's business, not ours.
    let session = match state.cookies.ticket(request) {
        Some(ticket) => state.sessions.load(ticket).await?,
        None => None,
    };
    let Some(session) = session else {
        return Err(refuse(
            "session",
            ApiError::Unauthorized("Authentication required"),
        ));
    };
    let caller = Caller::Session(Box::new(session));
    if !proxy.same_site(request.headers(), &state.cors_origins) {
        return Err(refuse(
            "X-Requested-With or allowed Origin",
            ApiError::Forbidden("Proxied requests need X-Requested-With or an allowed Origin"),
        ));
    }
    let target_entry = state
        .targets
        .find(&route.target_url, &caller)
        .map_err(|error| refuse("provider and roles", error))?;
    let url = upstream_url(
        &route.target_url,
        request.match_info().unprocessed(),
        request.query_string(),
    )
    .map_err(|refusal| {
        refuse(
            refusal.check(),
            ApiError::InvalidParameter("The path leaves the proxied target".to_owned()),
        )
    })?;
    let token = issue_token(&state.token_deps(), &caller, target_entry)
        .await
        .map_err(|error| refuse("token", error))?;
    let incoming = Incoming {
        method: request.method(),
        headers: request.headers(),
        peer: request.peer_addr().map(|address| address.ip()),
        url,
    };
    proxy
        .forward(route, incoming, &token.value, payload)
        .await
        .map_err(|error| match error {
            ForwardError::TooLarge => {
                refuse("body exceeds proxy.max_body", ApiError::PayloadTooLarge)
            }
            ForwardError::Unavailable(check) => refuse(check, ApiError::UpstreamUnavailable),
        })
}
