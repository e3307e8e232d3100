//! `GET /token-targets` and `POST /token`: the downstream URLs a caller may get tokens
//! for, and those tokens, in the Identity Services API shape.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Serialize;

use crate::caller::Caller;
use crate::clock::rfc3339;
use crate::config::Transport;
use crate::error::{ApiError, ErrorBody, json_response};
use crate::extract::{Params, read_form};
use crate::state::AppState;
use crate::targets::{identify_token_caller, issue_token_prefetched, parse_requested};

/// The targets a caller may get tokens for.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TargetList<'a> {
    /// Configured target URLs.
    targets: Vec<&'a str>,
}

/// The body of `POST /token`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// The downstream URL a token is wanted for.
    target: String,
}

/// A token for a target (Identity Services API shape).
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenAnswer<'a> {
    /// The token.
    token: TokenValue,
    /// How the target accepts it.
    #[serde(rename = "acceptedBy")]
    accepted_by: Vec<AcceptedBy<'a>>,
}

/// A token and its expiry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenValue {
    /// The token.
    value: String,
    /// Expiry, RFC 3339 UTC.
    expires: String,
}

/// One way a target accepts the token.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AcceptedBy<'a> {
    /// BEARER, TOKEN_PARAMETER, ACCESS_TOKEN_PARAMETER.
    #[serde(rename = "transportAs")]
    transport_as: &'a [Transport],
}

/// `GET /token-targets[?check=true]`
#[utoipa::path(get, path = "/token-targets", tag = "frontend",
    params(("check" = Option<String>, Query, description = "true or 1: answer 200 instead of 401 when not logged in")),
    responses(
        (status = 200, description = "The targets this caller may use (or, with check, the UNAUTHORIZED body)", body = TargetList),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("cookie" = []), ("bearer" = [])))]
pub async fn get_token_targets(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let caller = match Caller::identify(&state.caller_deps(), &request).await {
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
#[utoipa::path(post, path = "/token", tag = "frontend",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    params(("X-Requested-With" = Option<String>, Header, description = "Required with cookie auth unless Origin is ours or allowed")),
    responses(
        (status = 200, description = "A token for the target", body = TokenAnswer),
        (status = 400, description = "MISSING_PARAMETER, INVALID_PARAMETER", body = ErrorBody),
        (status = 401, description = "UNAUTHORIZED", body = ErrorBody),
        (status = 403, description = "TARGET_NOT_ALLOWED, FORBIDDEN (cross-site)", body = ErrorBody),
        (status = 413, description = "PAYLOAD_TOO_LARGE", body = ErrorBody),
        (status = 502, description = "TOKEN_UNAVAILABLE", body = ErrorBody),
        (status = 503, description = "SESSION_STORE_UNAVAILABLE", body = ErrorBody),
    ),
    security(("cookie" = []), ("bearer" = [])))]
pub async fn post_token(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    // The body comes first so that the session and the cached token are read together;
    // its errors still answer only after the caller's.
    let requested = read_form(&request, payload).await.and_then(|params| {
        let raw_target = params
            .get("target")
            .ok_or(ApiError::MissingParameter("target"))?;
        Ok(parse_requested(raw_target))
    });
    let (caller, prefetched) = identify_token_caller(
        &state.caller_deps(),
        &state.targets,
        &state.token_cache,
        &request,
        requested
            .as_ref()
            .ok()
            .and_then(|parsed| parsed.as_ref().ok()),
    )
    .await?;
    let caller = caller.ok_or(ApiError::Unauthorized("Authentication required"))?;
    if matches!(caller, Caller::Session(_)) {
        super::require_same_site(
            &state,
            &request,
            "token",
            "Cross-site token requests need X-Requested-With or an allowed Origin",
        )?;
    }
    let requested = requested?.map_err(|refused| {
        tracing::warn!(check = %refused, "token target refused");
        ApiError::from(refused)
    })?;
    let target = state.targets.find(&requested, &caller)?;
    let outcome = issue_token_prefetched(&state.token_deps(), &caller, target, prefetched).await;
    count_token_request(&state, target.url(), outcome.is_ok());
    let token = outcome?;
    Ok(json_response(
        StatusCode::OK,
        &TokenAnswer {
            token: TokenValue {
                value: token.value,
                expires: rfc3339(token.expires_at),
            },
            accepted_by: vec![AcceptedBy {
                transport_as: &target.config.transport,
            }],
        },
    ))
}

/// Counts one token request for `target` by outcome (`/metrics`).
fn count_token_request(state: &AppState, target: &str, success: bool) {
    let outcome = if success { "success" } else { "failure" };
    state
        .metrics
        .token_requests
        .with_label_values(&[target, outcome])
        .inc();
}
