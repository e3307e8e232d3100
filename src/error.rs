//! Every error the API answers with: one variant per SPEC code, declared once with its
//! status, rendered as `{"error": CODE, "errorMessage": text}` (or as the HTML error page
//! for browsers, which the `pages` module renders). Causes go to the logs, never into the body.

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
    /// The target's token would be bound to the session's DPoP key (SPEC 12).
    #[error("The target's token is sender-constrained (DPoP); use the API proxy")]
    SenderConstrained,
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
    /// A per-client limit of `[limits]` is used up; retry after this many seconds.
    #[error("Too many requests; retry in {0} s")]
    TooManyRequests(u64),
    /// No such endpoint.
    #[error("Not found")]
    NotFound,
    /// The endpoint exists but not for this method.
    #[error("Method not allowed")]
    MethodNotAllowed,
    /// A bug or an unexpected condition; the cause is logged once, never sent.
    #[error("Internal error")]
    Internal(#[source] InternalError),
}

/// Why a request failed inside the service: logged at the response boundary (see
/// [`ApiError::log_cause`]), never put into an answer. Holds no secret.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// The system random generator or the AEAD failed.
    #[error("cryptography failed")]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A value we own could not be turned into JSON.
    #[error("could not serialise {what}")]
    Serialize {
        /// What was being serialised.
        what: &'static str,
        /// The serde error (names a field, never a value).
        #[source]
        source: serde_json::Error,
    },
    /// A JWT could not be signed.
    #[error("could not sign a JWT")]
    Sign(#[source] jsonwebtoken::errors::Error),
    /// A response header could not be built.
    #[error("could not build a response header")]
    Header(#[source] actix_web::error::HttpError),
    /// An HTML page could not be rendered.
    #[error("could not render the template {name}")]
    Template {
        /// The template's file name.
        name: String,
        /// The engine's error.
        #[source]
        source: minijinja::Error,
    },
    /// A value we own could not be put into its compact stored form.
    #[error("could not encode {what}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
    },
    /// The task that keeps a single-flight lock alive ended before the call it guards.
    #[error("the single-flight lock renewal ended early")]
    LockRenewalEnded,
}

/// Why the service cannot start (exit code 1; configuration errors are found earlier).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// `server.bind` cannot be listened on.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The server could not be started on its listener.
    #[error("cannot serve: {0}")]
    Serve(#[source] std::io::Error),
    /// The upstream HTTP client could not be built (TLS set-up).
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The session store could not be set up.
    #[error("{0}")]
    Store(#[source] crate::store::StoreError),
    /// The Prometheus registry refused our metrics.
    #[error("cannot set up metrics: {0}")]
    Metrics(#[source] prometheus::Error),
    /// A part refused its configuration (providers, targets, templates, signing key);
    /// the message names the key or file.
    #[error("{0}")]
    Part(String),
}

impl From<StartupError> for String {
    fn from(error: StartupError) -> Self {
        error.to_string()
    }
}

impl From<crate::crypto::CryptoError> for ApiError {
    fn from(error: crate::crypto::CryptoError) -> Self {
        Self::Internal(InternalError::Crypto(error))
    }
}

impl From<InternalError> for ApiError {
    fn from(error: InternalError) -> Self {
        Self::Internal(error)
    }
}

impl ApiError {
    /// The one table of SPEC 2: each variant's stable UPPER_SNAKE code and its status.
    pub fn code_and_status(&self) -> (&'static str, StatusCode) {
        match self {
            Self::MissingParameter(_) => ("MISSING_PARAMETER", StatusCode::BAD_REQUEST),
            Self::InvalidParameter(_) => ("INVALID_PARAMETER", StatusCode::BAD_REQUEST),
            Self::RedirectNotAllowed => ("REDIRECT_NOT_ALLOWED", StatusCode::BAD_REQUEST),
            Self::Unauthorized(_) => ("UNAUTHORIZED", StatusCode::UNAUTHORIZED),
            Self::Forbidden(_) => ("FORBIDDEN", StatusCode::FORBIDDEN),
            Self::UnknownProvider(_) => ("UNKNOWN_PROVIDER", StatusCode::BAD_REQUEST),
            Self::TargetNotAllowed | Self::SenderConstrained => {
                ("TARGET_NOT_ALLOWED", StatusCode::FORBIDDEN)
            }
            Self::InvalidLogoutToken(_) => ("INVALID_LOGOUT_TOKEN", StatusCode::BAD_REQUEST),
            Self::LoginFailed {
                upstream: false, ..
            } => ("LOGIN_FAILED", StatusCode::BAD_REQUEST),
            Self::LoginFailed { upstream: true, .. } => ("LOGIN_FAILED", StatusCode::BAD_GATEWAY),
            Self::ProviderUnavailable(_) => ("PROVIDER_UNAVAILABLE", StatusCode::BAD_GATEWAY),
            Self::TokenUnavailable(_) => ("TOKEN_UNAVAILABLE", StatusCode::BAD_GATEWAY),
            Self::UpstreamUnavailable => ("UPSTREAM_UNAVAILABLE", StatusCode::BAD_GATEWAY),
            Self::SessionStoreUnavailable => {
                ("SESSION_STORE_UNAVAILABLE", StatusCode::SERVICE_UNAVAILABLE)
            }
            Self::PayloadTooLarge => ("PAYLOAD_TOO_LARGE", StatusCode::PAYLOAD_TOO_LARGE),
            Self::TooManyRequests(_) => ("TOO_MANY_REQUESTS", StatusCode::TOO_MANY_REQUESTS),
            Self::NotFound => ("NOT_FOUND", StatusCode::NOT_FOUND),
            Self::MethodNotAllowed => ("METHOD_NOT_ALLOWED", StatusCode::METHOD_NOT_ALLOWED),
            Self::Internal(_) => ("INTERNAL_ERROR", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// The stable UPPER_SNAKE code of SPEC 2.
    pub fn code(&self) -> &'static str {
        self.code_and_status().0
    }

    /// Logs the cause of an internal error (once, where the answer is made).
    pub fn log_cause(&self) {
        if let Self::Internal(cause) = self {
            let chain = error_chain(cause);
            tracing::error!(cause = %chain, "internal error");
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
        self.code_and_status().1
    }

    fn error_response(&self) -> HttpResponse {
        self.log_cause();
        let (code, status) = self.code_and_status();
        if status.is_client_error()
            && let Some(refusals) = crate::metrics::refusals()
        {
            refusals.with_label_values(&[code]).inc();
        }
        let mut response = json_response(self.status_code(), &self.body());
        if let Self::TooManyRequests(seconds) = self {
            response.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                HeaderValue::from(*seconds),
            );
        }
        response
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        tracing::warn!(%error, "session store call failed");
        Self::SessionStoreUnavailable
    }
}

/// An error and its sources, joined by `: `.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
        Ok(bytes) => json_text_response(status, bytes),
        Err(error) => {
            tracing::error!(%error, "could not serialise a response body");
            HttpResponse::InternalServerError()
                .insert_header((CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE)))
                .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
                .body(r#"{"error":"INTERNAL_ERROR","errorMessage":"Internal error"}"#)
        }
    }
}

/// A response whose body is JSON already (`no-store`, like [`json_response`]).
pub fn json_text_response(
    status: StatusCode,
    json: impl actix_web::body::MessageBody + 'static,
) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE)))
        .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant with its status and exact body: a changed code, status or message
    /// shows up here.
    #[test]
    fn every_error_has_its_pinned_status_and_body() {
        let table: Vec<(ApiError, u16, &str)> = vec![
            (
                ApiError::MissingParameter("returnURL"),
                400,
                r#"{"error":"MISSING_PARAMETER","errorMessage":"Missing parameter value for 'returnURL'"}"#,
            ),
            (
                ApiError::InvalidParameter("bad".to_owned()),
                400,
                r#"{"error":"INVALID_PARAMETER","errorMessage":"bad"}"#,
            ),
            (
                ApiError::RedirectNotAllowed,
                400,
                r#"{"error":"REDIRECT_NOT_ALLOWED","errorMessage":"The redirect URL is not allowed"}"#,
            ),
            (
                ApiError::Unauthorized("Authentication required"),
                401,
                r#"{"error":"UNAUTHORIZED","errorMessage":"Authentication required"}"#,
            ),
            (
                ApiError::Forbidden("no"),
                403,
                r#"{"error":"FORBIDDEN","errorMessage":"no"}"#,
            ),
            (
                ApiError::UnknownProvider("Unknown provider 'x'".to_owned()),
                400,
                r#"{"error":"UNKNOWN_PROVIDER","errorMessage":"Unknown provider 'x'"}"#,
            ),
            (
                ApiError::TargetNotAllowed,
                403,
                r#"{"error":"TARGET_NOT_ALLOWED","errorMessage":"No permitted token target matches the requested URL"}"#,
            ),
            (
                ApiError::SenderConstrained,
                403,
                r#"{"error":"TARGET_NOT_ALLOWED","errorMessage":"The target's token is sender-constrained (DPoP); use the API proxy"}"#,
            ),
            (
                ApiError::InvalidLogoutToken("the jti was already used (replay)".to_owned()),
                400,
                r#"{"error":"INVALID_LOGOUT_TOKEN","errorMessage":"Invalid logout token: the jti was already used (replay)"}"#,
            ),
            (
                ApiError::login_failed("the callback carries no code"),
                400,
                r#"{"error":"LOGIN_FAILED","errorMessage":"Login failed: the callback carries no code"}"#,
            ),
            (
                ApiError::login_upstream_failed("the provider is unreachable"),
                502,
                r#"{"error":"LOGIN_FAILED","errorMessage":"Login failed: the provider is unreachable"}"#,
            ),
            (
                ApiError::ProviderUnavailable("op".to_owned()),
                502,
                r#"{"error":"PROVIDER_UNAVAILABLE","errorMessage":"The identity provider 'op' is unavailable"}"#,
            ),
            (
                ApiError::TokenUnavailable("The provider has no token endpoint".to_owned()),
                502,
                r#"{"error":"TOKEN_UNAVAILABLE","errorMessage":"The provider has no token endpoint"}"#,
            ),
            (
                ApiError::UpstreamUnavailable,
                502,
                r#"{"error":"UPSTREAM_UNAVAILABLE","errorMessage":"The proxied target is unavailable"}"#,
            ),
            (
                ApiError::SessionStoreUnavailable,
                503,
                r#"{"error":"SESSION_STORE_UNAVAILABLE","errorMessage":"The session store is unavailable"}"#,
            ),
            (
                ApiError::PayloadTooLarge,
                413,
                r#"{"error":"PAYLOAD_TOO_LARGE","errorMessage":"The request body is too large"}"#,
            ),
            (
                ApiError::TooManyRequests(30),
                429,
                r#"{"error":"TOO_MANY_REQUESTS","errorMessage":"Too many requests; retry in 30 s"}"#,
            ),
            (
                ApiError::NotFound,
                404,
                r#"{"error":"NOT_FOUND","errorMessage":"Not found"}"#,
            ),
            (
                ApiError::MethodNotAllowed,
                405,
                r#"{"error":"METHOD_NOT_ALLOWED","errorMessage":"Method not allowed"}"#,
            ),
            (
                ApiError::Internal(InternalError::LockRenewalEnded),
                500,
                r#"{"error":"INTERNAL_ERROR","errorMessage":"Internal error"}"#,
            ),
        ];
        for (error, status, body) in table {
            pinned(&error);
            assert_eq!(error.status_code().as_u16(), status, "{error:?}");
            assert_eq!(serde_json::to_string(&error.body()).unwrap(), body);
        }
    }

    /// Fails to compile when a variant is added without a row in the table above.
    fn pinned(error: &ApiError) {
        match error {
            ApiError::MissingParameter(_)
            | ApiError::InvalidParameter(_)
            | ApiError::RedirectNotAllowed
            | ApiError::Unauthorized(_)
            | ApiError::Forbidden(_)
            | ApiError::UnknownProvider(_)
            | ApiError::TargetNotAllowed
            | ApiError::SenderConstrained
            | ApiError::InvalidLogoutToken(_)
            | ApiError::LoginFailed { .. }
            | ApiError::ProviderUnavailable(_)
            | ApiError::TokenUnavailable(_)
            | ApiError::UpstreamUnavailable
            | ApiError::SessionStoreUnavailable
            | ApiError::PayloadTooLarge
            | ApiError::TooManyRequests(_)
            | ApiError::NotFound
            | ApiError::MethodNotAllowed
            | ApiError::Internal(_) => {}
        }
    }

    #[test]
    fn an_internal_error_keeps_its_cause_out_of_the_body() {
        let cause = serde_json::from_str::<u8>("no").unwrap_err();
        let error = ApiError::Internal(InternalError::Serialize {
            what: "a session",
            source: cause,
        });
        assert!(std::error::Error::source(&error).is_some());
        assert_eq!(error.to_string(), "Internal error");
        assert!(error_chain(&InternalError::LockRenewalEnded).contains("lock renewal"));
    }
}
