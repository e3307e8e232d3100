//! `GET /token-targets` and `POST /token`: the downstream URLs a caller may get tokens
//! for, and those tokens, in the Identity Services API shape.

use actix_web::http::StatusCode;
use actix_web::http::header::ORIGIN;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;

use crate::caller::Caller;
use crate::config::Transport;
use crate::error::{ApiError, json_response};
use crate::extract::{Params, read_form};
use crate::routes::userinfo::rfc3339;
use crate::state::AppState;
use crate::targets::{issue_token, parse_requested};

#[derive(Serialize)]
struct TargetList<'a> {
    targets: Vec<&'a str>,
}

#[derive(Serialize)]
struct TokenAnswer<'a> {
    token: TokenValue,
    #[serde(rename = "acceptedBy")]
    accepted_by: [AcceptedBy<'a>; 1],
}

#[derive(Serialize)]
struct TokenValue {
    value: String,
    expires: String,
}

#[derive(Serialize)]
struct AcceptedBy<'a> {
    #[serde(rename = "transportAs")]
    transport_as: &'a [Transport],
}

/// `GET /token-targets[?check=true]`
pub async fn get_token_targets(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let caller = match Caller::identify(&state, &request).await {
        Ok(Some(caller)) => caller,
        Ok(None) => {
            let error = ApiError::Unauthorized("Authentication required");
            let params = Params::parse(request.query_string());
            return match params.get("check") {
                Some("true" | "1") => json_response(StatusCode::OK, &error.body()),
                _ => error.error_response(),
            };
        }
        Err(error) => return error.error_response(),
    };
    let targets = state
        .targets
        .permitted(&caller)
        .map(|target| target.url())
        .collect();
    json_response(StatusCode::OK, &TargetList { targets })
}

/// `POST /token` with form field `target`.
pub async fn post_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = Caller::identify(&state, &request)
        .await?
        .ok_or(ApiError::Unauthorized("Authentication required"))?;
    if matches!(caller, Caller::Session(_)) && !same_site_request(&state, &request) {
        return Err(ApiError::Forbidden(
            "Cross-site token requests need X-Requested-With or an allowed Origin",
        ));
    }
    let params = read_form(&request, payload).await?;
    let raw_target = params
        .get("target")
        .ok_or(ApiError::MissingParameter("target"))?;
    let requested = parse_requested(raw_target).ok_or_else(|| {
        ApiError::InvalidParameter("'target' must be an absolute http(s) URL".to_owned())
    })?;
    let target = state.targets.find(&requested, &caller)?;
    let outcome = issue_token(&state, &caller, target).await;
    state
        .metrics
        .token_requests
        .with_label_values(&[
            target.url(),
            if outcome.is_ok() {
                "success"
            } else {
                "failure"
            },
        ])
        .inc();
    let token = outcome?;
    Ok(json_response(
        StatusCode::OK,
        &TokenAnswer {
            token: TokenValue {
                value: token.value,
                expires: rfc3339(token.expires_at),
            },
            accepted_by: [AcceptedBy {
                transport_as: &target.config.transport,
            }],
        },
    ))
}

/// A cookie-authenticated `POST /token` must come from our own pages or an allowed
/// frontend: `X-Requested-With` (which a cross-site form cannot send without CORS) or an
/// `Origin` that is ours or listed in `[cors] allowed_origins`.
fn same_site_request(state: &AppState, request: &HttpRequest) -> bool {
    if request.headers().contains_key("x-requested-with") {
        return true;
    }
    let Some(origin) = request
        .headers()
        .get(ORIGIN)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    origin
        == state
            .config
            .server
            .public_url
            .origin()
            .ascii_serialization()
        || state.cors_origins.allows_header_value(origin)
}
