//! `<proxy_path>/<rest>` (SPEC 9), any method: parse, [`Proxy::serve`], count the answer.

use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

use crate::error::ApiError;
use crate::proxy::{Proxy, ProxyCall, ProxyDeps, UpstreamClient};
use crate::state::AppState;

/// Which proxy route a scope serves (its index in [`Proxy::routes`]).
#[derive(Clone, Copy)]
struct RouteIndex(usize);

/// Registers one scope per proxied target; it takes every method and every path below it.
/// Runs once per worker: each scope gets that worker's own upstream client.
pub fn configure(config: &mut web::ServiceConfig, proxy: &Proxy) {
    for (index, route) in proxy.routes().iter().enumerate() {
        config.service(
            web::scope(&route.proxy_path)
                .app_data(RouteIndex(index))
                .app_data(proxy.worker_client(route))
                .app_data(crate::telemetry::RouteLabel(format!(
                    "{}/*",
                    route.proxy_path
                )))
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
    let (Some(route), Some(client)) = (
        request
            .app_data::<RouteIndex>()
            .and_then(|index| proxy.route(index.0)),
        request.app_data::<UpstreamClient>(),
    ) else {
        return ApiError::NotFound.error_response();
    };
    let call = ProxyCall {
        method: request.method(),
        headers: request.headers(),
        peer: request.peer_addr().map(|address| address.ip()),
        ticket: state.cookies.ticket(&request),
        rest: request.match_info().unprocessed(),
        query: request.query_string(),
    };
    let deps = ProxyDeps {
        sessions: &state.sessions,
        targets: &state.targets,
        tokens: state.token_deps(),
        cors: &state.cors_origins,
    };
    let response = proxy
        .serve(route, client, call, deps, payload)
        .await
        .unwrap_or_else(|error| error.error_response());
    proxy.count(route, response.status());
    response
}
