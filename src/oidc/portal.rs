//! The provider seam's `arcgis` side (SPEC 10): what the code flow, refresh and logout do
//! when the provider is an ArcGIS portal. The flow keeps its shape — state, PKCE (S256)
//! and single use as for OpenID providers; there is no nonce and no ID token — and the
//! user is who `community/self` says the new token belongs to.

use openidconnect::{PkceCodeChallenge, PkceCodeVerifier};

use super::flow::{LoginOutcome, LoginStart, PendingLogin};
use super::token_endpoint::{TokenAnswer, TokenError, expiry_after};
use crate::arcgis::{Portal, PortalError};
use crate::clock::unix_now;
use crate::crypto;
use crate::error::ApiError;
use crate::redirect::ReturnUrl;
use crate::session::{LOGIN_SECRET_LEN, LoginSecret, ProviderTokens};

/// The authorization request at the portal's `oauth2/authorize`: the login's secret (whose
/// hash is the `state`) and the PKCE verifier are random, drawn with the nonce that seals
/// the pending login, as for OpenID providers; there is no OpenID `nonce`.
pub fn begin_login(portal: &Portal, return_url: ReturnUrl) -> Result<LoginStart, ApiError> {
    let random = crypto::random_bytes::<{ LOGIN_SECRET_LEN + 32 + crypto::SEAL_NONCE_LEN }>()?;
    let (secret, rest) = random.split_at(LOGIN_SECRET_LEN);
    let (verifier, seal_nonce) = rest.split_at(32);
    let seal_nonce = seal_nonce.try_into().map_err(|_| crypto::CryptoError)?;
    let secret = LoginSecret::new(secret.try_into().map_err(|_| crypto::CryptoError)?);
    let state = secret.state();
    let verifier = PkceCodeVerifier::new(crypto::b64(verifier));
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    Ok(LoginStart {
        authorize_url: portal.authorize_url(&state, challenge.as_str()),
        state,
        secret,
        pending: PendingLogin {
            provider: portal.id().to_owned(),
            pkce_verifier: verifier.secret().clone(),
            nonce: String::new(),
            return_url,
        },
        seal_nonce,
    })
}

/// Redeems `code` at `oauth2/token` and reads the user from `community/self` with the new
/// token; the token answer's `username` must be that user's.
pub async fn finish_login(
    portal: &Portal,
    http: &reqwest::Client,
    pending: &PendingLogin,
    code: &str,
) -> Result<LoginOutcome, ApiError> {
    let answer = portal
        .redeem_code(http, code, &pending.pkce_verifier)
        .await
        .map_err(|error| login_error(portal, "oauth2/token", &error))?;
    let claims = portal
        .profile(http, &answer.access_token)
        .await
        .map_err(|error| login_error(portal, "community/self", &error))?;
    let username = claims
        .get("username")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if answer.username.as_deref() != Some(username.as_str()) {
        return Err(ApiError::login_failed(
            "the portal's token answer names another user than community/self",
        ));
    }
    let now = unix_now();
    Ok(LoginOutcome {
        subject: username,
        sid: None,
        claims,
        tokens: ProviderTokens {
            id_token: None,
            access_token_expires_at: answer
                .expires_in
                .and_then(|lifetime| expiry_after(now, lifetime)),
            access_token: Some(answer.access_token),
            access_token_issued_at: Some(now),
            refresh_token: answer.refresh_token,
            dpop_key: None,
        },
    })
}

/// A refused step is `LOGIN_FAILED` (400), a portal down or broken 502; the message names
/// the operation (the login's one WARN line carries it), never a token or the code.
fn login_error(portal: &Portal, operation: &'static str, error: &PortalError) -> ApiError {
    tracing::debug!(provider = %portal.id(), operation, %error, "portal login step failed");
    match error {
        PortalError::Refused { .. } => {
            ApiError::login_failed(format!("the portal refused the login at {operation}"))
        }
        PortalError::Unavailable(_) | PortalError::Unusable(_) => {
            ApiError::login_upstream_failed(format!("the portal's {operation} could not be used"))
        }
    }
}

/// `grant_type=refresh_token` at the portal, in the shape of an OAuth token answer so the
/// refresh that keeps the session (single flight, write-back) is the one for every kind.
pub async fn refresh(
    portal: &Portal,
    http: &reqwest::Client,
    refresh_token: &str,
) -> Result<TokenAnswer, TokenError> {
    match portal.refresh(http, refresh_token).await {
        Ok(answer) => Ok(TokenAnswer {
            access_token: answer.access_token,
            expires_in: answer.expires_in,
            refresh_token: answer.refresh_token,
            id_token: None,
            token_type: None,
        }),
        Err(PortalError::Refused { code }) => Err(TokenError::Refused {
            code: format!("arcgis error {code}"),
            status: 400,
        }),
        Err(PortalError::Unavailable(_)) => Err(TokenError::Unreachable),
        Err(PortalError::Unusable(_)) => Err(TokenError::Malformed),
    }
}
