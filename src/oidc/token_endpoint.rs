//! Calls to OAuth 2.0 token endpoints (RFC 6749 section 3.2) with any of our client
//! authentication methods: refresh grants, RFC 8693 token exchange, client credentials and
//! password grants all go through [`request_token`].

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::client_auth::{ClientKey, JWT_BEARER_ASSERTION};
use super::dpop::{self, Prover, SendError};
use crate::config::ClientAuth;
use crate::error::printable;

/// How long a token endpoint may take.
const TOKEN_ENDPOINT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest token lifetime we believe from upstream; a larger `expires_in` (or `exp`) is
/// cut to this, so a hostile answer cannot push a timestamp past what arithmetic and dates
/// can hold.
pub const MAX_TOKEN_LIFETIME_SECONDS: i64 = 366 * 24 * 3600;

/// The Unix time `expires_in` seconds after `now` (saturating, lifetime capped at
/// [`MAX_TOKEN_LIFETIME_SECONDS`]); `None` for a lifetime that is not a positive number.
pub fn expiry_after(now: i64, expires_in: f64) -> Option<i64> {
    if expires_in.is_nan() || expires_in <= 0.0 {
        return None;
    }
    // `as` saturates a float that is too large; the cap keeps the sum in range anyway.
    let seconds = (expires_in.ceil() as i64).min(MAX_TOKEN_LIFETIME_SECONDS);
    Some(now.saturating_add(seconds))
}

/// An upstream absolute time (`exp`) kept within [`MAX_TOKEN_LIFETIME_SECONDS`] of `now`
/// either way, so later differences with `now` cannot overflow.
pub fn capped_expiry(now: i64, expires_at: i64) -> i64 {
    expires_at.clamp(
        now.saturating_sub(MAX_TOKEN_LIFETIME_SECONDS),
        now.saturating_add(MAX_TOKEN_LIFETIME_SECONDS),
    )
}

/// A client as it authenticates at a token endpoint.
pub struct TokenClient<'a> {
    /// `client_id`.
    pub client_id: &'a str,
    /// The configured method and secret.
    pub auth: &'a ClientAuth,
    /// The loaded key, for `private_key_jwt`.
    pub key: Option<&'a ClientKey>,
}

/// A successful token response.
#[derive(Deserialize)]
pub struct TokenAnswer {
    /// The access token (or, for token exchange, the issued token).
    pub access_token: String,
    /// Lifetime in seconds, when given.
    #[serde(default)]
    pub expires_in: Option<f64>,
    /// A refresh token, when issued.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// A new ID token (refresh grants of some providers).
    #[serde(default)]
    pub id_token: Option<String>,
    /// `token_type` (`Bearer`, `DPoP`, …).
    #[serde(default)]
    pub token_type: Option<String>,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TokenAnswer")
            .field("access_token", &"***")
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .field("id_token", &self.id_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Why a token request failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The endpoint answered with an OAuth error (`error` code, HTTP status).
    #[error("the token endpoint refused the request ({code}, HTTP {status})")]
    Refused {
        /// The OAuth `error` code (e.g. `invalid_grant`), or `unknown`.
        code: String,
        /// HTTP status.
        status: u16,
    },
    /// The endpoint could not be reached or timed out.
    #[error("the token endpoint could not be reached")]
    Unreachable,
    /// The answer was not a token response.
    #[error("the token endpoint answered with something that is not a token response")]
    Malformed,
    /// We could not sign our client assertion.
    #[error("the client assertion could not be signed")]
    Assertion,
    /// A DPoP call got a token whose `token_type` is not `DPoP` (RFC 9449 section 5).
    #[error("the token endpoint issued a token that is not DPoP-bound")]
    NotDpopBound,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
}

/// POSTs `form` to `token_url`, authenticating as `client`.
pub async fn request_token(
    http: &reqwest::Client,
    token_url: &Url,
    client: &TokenClient<'_>,
    form: Vec<(&'static str, String)>,
) -> Result<TokenAnswer, TokenError> {
    request_token_with(http, token_url, client, form, None).await
}

/// [`request_token`], with a DPoP proof (RFC 9449 section 5) when `prover` is given; the
/// answer must then be a `DPoP` token.
pub async fn request_token_with(
    http: &reqwest::Client,
    token_url: &Url,
    client: &TokenClient<'_>,
    form: Vec<(&'static str, String)>,
    prover: Option<Prover<'_>>,
) -> Result<TokenAnswer, TokenError> {
    let response = match prover {
        None => {
            let request =
                authenticated_post(http, token_url, client, form)?.timeout(TOKEN_ENDPOINT_TIMEOUT);
            crate::http_client::send(request, "token")
                .await
                .map_err(|_| TokenError::Unreachable)?
        }
        Some(prover) => {
            // Built anew for a nonce retry: a client assertion is single use too.
            let build = || {
                authenticated_post(http, token_url, client, form.clone())
                    .map_err(|_| SendError::Build)?
                    .timeout(TOKEN_ENDPOINT_TIMEOUT)
                    .build()
                    .map_err(|_| SendError::Build)
            };
            dpop::send(http, build, prover, "token")
                .await
                .map_err(|error| match error {
                    SendError::Proof | SendError::Build => TokenError::Assertion,
                    SendError::Http(_) => TokenError::Unreachable,
                })?
        }
    };
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|_| TokenError::Unreachable)?;
    if status.is_success() {
        let answer =
            serde_json::from_slice::<TokenAnswer>(&body).map_err(|_| TokenError::Malformed)?;
        if prover.is_some()
            && !answer
                .token_type
                .as_deref()
                .is_some_and(dpop::is_dpop_token_type)
        {
            return Err(TokenError::NotDpopBound);
        }
        return Ok(answer);
    }
    let code = serde_json::from_slice::<ErrorAnswer>(&body)
        .map(|answer| printable(&answer.error))
        .unwrap_or_else(|_| "unknown".to_owned());
    Err(TokenError::Refused {
        code,
        status: status.as_u16(),
    })
}

/// A form POST to `endpoint` (token or introspection) carrying `client`'s authentication
/// (RFC 6749 section 2.3, RFC 7523 section 2.2 for `private_key_jwt`).
pub fn authenticated_post(
    http: &reqwest::Client,
    endpoint: &Url,
    client: &TokenClient<'_>,
    mut form: Vec<(&'static str, String)>,
) -> Result<reqwest::RequestBuilder, TokenError> {
    let mut request = http.post(endpoint.clone());
    match client.auth {
        ClientAuth::ClientSecretBasic { secret } => {
            request = request.basic_auth(
                form_encode(client.client_id),
                Some(form_encode(secret.expose())),
            );
        }
        ClientAuth::ClientSecretPost { secret } => {
            form.push(("client_id", client.client_id.to_owned()));
            form.push(("client_secret", secret.expose().to_owned()));
        }
        ClientAuth::PrivateKeyJwt { .. } => {
            let key = client.key.ok_or(TokenError::Assertion)?;
            let assertion = key
                .assertion(client.client_id, endpoint.as_str())
                .map_err(|_| TokenError::Assertion)?;
            form.push(("client_id", client.client_id.to_owned()));
            form.push(("client_assertion_type", JWT_BEARER_ASSERTION.to_owned()));
            form.push(("client_assertion", assertion));
        }
        ClientAuth::None => form.push(("client_id", client.client_id.to_owned())),
    }
    Ok(request
        .form(&form)
        .header(reqwest::header::ACCEPT, "application/json"))
}

/// RFC 6749 section 2.3.1: client id and secret are form-encoded before HTTP Basic.
pub fn form_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_lifetimes_neither_wrap_nor_panic() {
        let now = 1_800_000_000;
        assert_eq!(
            expiry_after(now, i64::MAX as f64),
            Some(now + MAX_TOKEN_LIFETIME_SECONDS)
        );
        assert_eq!(
            expiry_after(i64::MAX, 60.0),
            Some(i64::MAX),
            "saturates instead of wrapping"
        );
        assert_eq!(
            expiry_after(now, f64::INFINITY),
            Some(now + MAX_TOKEN_LIFETIME_SECONDS)
        );
        assert_eq!(expiry_after(now, -5.0), None);
        assert_eq!(expiry_after(now, f64::NAN), None);
        assert_eq!(expiry_after(now, 300.0), Some(now + 300));
        assert_eq!(
            capped_expiry(now, i64::MAX),
            now + MAX_TOKEN_LIFETIME_SECONDS
        );
        assert_eq!(capped_expiry(now, now + 60), now + 60);
        assert_eq!(
            capped_expiry(now, i64::MIN),
            now - MAX_TOKEN_LIFETIME_SECONDS
        );
    }
}
