//! Every error the API answers with: one variant per SPEC code, declared once with its
//! status, rendered as `{"error": CODE, "errorMessage": text}` (or as the HTML error page
//! for browsers, see [`crate::pages`]). Causes go to the logs, never into the body.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Content type of every JSON body we send (SPEC 2).
pub const JSON_CONTENT_TYPE: &str = "application/json;charset=utf-8";

/// An error as the caller sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A required parameter is absent or empty.
    #[error("Missing parameter value for '{0}'")]
    MissingParameter(&'static str),
    /// A parameter or body is malformed.
    #[error("{0}")]
    InvalidParameter(String),
    /// A `returnURL` that the redirect policy refuses.
    #[error("The redirect URL is not allowed")]
    RedirectNotAllowed,
    /// No (valid) session or bearer token.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The caller may not do this (e.g. a refused cross-site request).
    #[error("{0}")]
    Forbidden(&'static str),
    /// `provider` names no configured provider.
    #[error("{0}")]
    UnknownProvider(String),
    /// The requested token target is not configured or not permitted.
    #[error("No permitted token target matches the requested URL")]
    TargetNotAllowed,
    /// A back-channel logout token failed a check (the message names the clause).
    #[error("Invalid logout token: {0}")]
    InvalidLogoutToken(String),
    /// The login could not be completed; `upstream` marks a provider failure (502).
    #[error("Login failed: {message}")]
    LoginFailed {
        /// What went wrong, for people.
        message: String,
        /// True when the provider could not be reached or answered with a server error.
        upstream: bool,
    },
    /// The provider's discovery document or keys could not be loaded.
    #[error("The identity provider '{0}' is unavailable")]
    ProviderUnavailable(String),
    /// An upstream token endpoint failed.
    #[error("{0}")]
    TokenUnavailable(String),
    /// A proxied target did not answer in time or could not be reached (SPEC 9).
    #[error("The proxied target is unavailable")]
    UpstreamUnavailable,
    /// Redis (or the configured store) did not answer.
    #[error("The session store is unavailable")]
    SessionStoreUnavailable,
    /// The request body exceeds 64 KiB.
    #[error("The request body is too large")]
    PayloadTooLarge,
    /// No such endpoint.
    #[error("Not found")]
    NotFound,
    /// The endpoint exists but not for this method.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// A bug or an unexpected condition; details are logged only.
    #[error("Internal error")]
    Internal,
}

impl ApiError {
    /// The stable UPPER_SNAKE code of SPEC 2.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MissingParameter(_) => "MISSING_PARAMETER",
            Self::InvalidParameter(_) => "INVALID_PARAMETER",
            Self::RedirectNotAllowed => "REDIRECT_NOT_ALLOWED",
            Self::Unauthorized(_) => "UNAUTHORIZED",
            Self::Forbidden(_) => "FORBIDDEN",
            Self::UnknownProvider(_) => "UNKNOWN_PROVIDER",
            Self::TargetNotAllowed => "TARGET_NOT_ALLOWED",
            Self::InvalidLogoutToken(_) => "INVALID_LOGOUT_TOKEN",
            Self::LoginFailed { .. } => "LOGIN_FAILED",
            Self::ProviderUnavailable(_) => "PROVIDER_UNAVAILABLE",
            Self::TokenUnavailable(_) => "TOKEN_UNAVAILABLE",
            Self::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Self::SessionStoreUnavailable => "SESSION_STORE_UNAVAILABLE",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::Internal => "INTERNAL_ERROR",
        }
    }

    /// A login failure caused by the caller or by a failed check (400).
    pub fn login_failed(message: impl Into<String>) -> Self {
        Self::LoginFailed {
            message: message.into(),
            upstream: false,
        }
    }

    /// A login failure caused by the provider being unreachable or broken (502).
    pub fn login_upstream_failed(message: impl Into<String>) -> Self {
        Self::LoginFailed {
            message: message.into(),
            upstream: true,
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.code(),
            error_message: self.to_string(),
        }
    }
}

/// The JSON shape of every error (SPEC 2).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable UPPER_SNAKE code.
    #[schema(value_type = String, example = "MISSING_PARAMETER")]
    pub error: &'static str,
    /// Text for people; never holds a secret.
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::MissingParameter(_)
            | Self::InvalidParameter(_)
            | Self::RedirectNotAllowed
            | Self::UnknownProvider(_)
            | Self::InvalidLogoutToken(_) => StatusCode::BAD_REQUEST,
            Self::LoginFailed { upstream, .. } => {
                if *upstream {
                    StatusCode::BAD_GATEWAY
                } else {
                    StatusCode::BAD_REQUEST
                }
            }
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::TargetNotAllowed => StatusCode::FORBIDDEN,
            Self::ProviderUnavailable(_)
            | Self::TokenUnavailable(_)
            | Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::SessionStoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        json_response(self.status_code(), &self.body())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        tracing::warn!(%error, "session store call failed");
        Self::SessionStoreUnavailable
    }
}

/// Text from outside (a provider's error code, a provider id) made safe to echo in a
/// message: ASCII letters, digits, `_`, `-` and `.`, at most 64 characters.
pub fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .take(64)
        .collect()
}

/// A JSON response with our content type and `Cache-Control: no-store`.
pub fn json_response(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => HttpResponse::build(status)
            .insert_header((CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE)))
            .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .body(bytes),
        Err(error) => {
            tracing::error!(%error, "could not serialise a response body");
            HttpResponse::InternalServerError()
                .insert_header((CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE)))
                .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
                .body(r#"{"error":"INTERNAL_ERROR","errorMessage":"Internal error"}"#)
        }
    }
}
