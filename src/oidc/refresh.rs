//! Session access-token refresh (SPEC 5): when the session's access token has expired and
//! a refresh token exists, exactly one request (over all instances) refreshes it; the
//! others wait and read the new token. Rotating and non-rotating providers both work: a
//! new refresh token replaces the old one, an absent one keeps it. A refresh the provider
//! refuses ends the session.

use super::dpop::{DpopKey, Prover};
use super::id_token::{OriginalLogin, verify_refreshed};
use super::token_endpoint::{TokenClient, TokenError, expiry_after, request_token_with};
use crate::clock::unix_now;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::oidc::ProviderRegistry;
use crate::session::SessionService;
use crate::session::{AccessTokenEntry, LoadedSession, ProviderTokens, SessionTicket};
use crate::single_flight::SingleFlight;

/// An access token closer than this to expiry (or a fifth of its lifetime, if shorter)
/// is refreshed first.
const REFRESH_MARGIN_SECONDS: i64 = 10;

/// What a refresh needs: the sessions, the lock, the provider and upstream access.
pub struct RefreshDeps<'a> {
    /// Sessions (the refreshed tokens are written back; a refused refresh ends one).
    pub sessions: &'a SessionService,
    /// Once-at-a-time upstream calls.
    pub flights: &'a SingleFlight,
    /// Providers.
    pub providers: &'a ProviderRegistry,
    /// The upstream HTTP client.
    pub http: &'a reqwest::Client,
    /// `session.key_prefix`, for the refresh lock's key.
    pub key_prefix: &'a str,
    /// Upstream latency metrics.
    pub metrics: &'a Metrics,
}

/// The session's access token and its expiry, refreshed first when needed.
pub async fn access_token(
    state: &RefreshDeps<'_>,
    session: &LoadedSession,
) -> Result<(String, i64), ApiError> {
    if let Some(usable) = usable(session.record.tokens.access_token(), session.expires_at) {
        return Ok(usable);
    }
    if session.record.tokens.get().refresh_token.is_none() {
        return Err(ApiError::Unauthorized(
            "The session's access token has expired; log in again",
        ));
    }
    let ticket = session.ticket.clone();
    let original = session.record.tokens.get().access_token.clone();
    let lock = format!("{}:refresh", ticket.storage_key(state.key_prefix));
    state
        .flights
        .run(
            &lock,
            async || match state.sessions.load(ticket.clone()).await? {
                Some(current) => Ok(usable(
                    current.record.tokens.access_token(),
                    current.expires_at,
                )
                .or_else(|| renewed_since(current.record.tokens.get(), original.as_deref()))),
                None => Err(ApiError::Unauthorized("The session has ended")),
            },
            async || refresh(state, ticket.clone()).await,
        )
        .await
}

fn usable(access: Option<AccessTokenEntry>, session_end: i64) -> Option<(String, i64)> {
    let AccessTokenEntry {
        token,
        expires_at,
        issued_at,
    } = access?;
    let Some(expires_at) = expires_at else {
        // The provider named no lifetime: good for as long as the session.
        return Some((token, session_end));
    };
    let lifetime = issued_at.map_or(REFRESH_MARGIN_SECONDS * 5, |issued_at| {
        expires_at.saturating_sub(issued_at)
    });
    let margin = (lifetime / 5).clamp(0, REFRESH_MARGIN_SECONDS);
    (expires_at.saturating_sub(unix_now()) > margin).then_some((token, expires_at))
}

/// A token someone else obtained while we waited: take it while it lasts, even when it
/// is short-lived enough to be within the margin already (one refresh per burst).
fn renewed_since(tokens: &ProviderTokens, original: Option<&str>) -> Option<(String, i64)> {
    let token = tokens.access_token.as_deref()?;
    let expires_at = tokens.access_token_expires_at?;
    (Some(token) != original && expires_at > unix_now()).then(|| (token.to_owned(), expires_at))
}

async fn refresh(
    state: &RefreshDeps<'_>,
    ticket: SessionTicket,
) -> Result<(String, i64), ApiError> {
    let Some(mut session) = state.sessions.load(ticket).await? else {
        return Err(ApiError::Unauthorized("The session has ended"));
    };
    let refresh_token = session
        .record
        .tokens
        .get()
        .refresh_token
        .clone()
        .ok_or(ApiError::Unauthorized("The session cannot be refreshed"))?;
    let provider = state
        .providers
        .get(&session.record.provider)
        .ok_or(ApiError::Unauthorized(
            "The session's provider is not configured",
        ))?;
    let started = std::time::Instant::now();
    let answer = match provider.portal() {
        Some(portal) => super::portal::refresh(portal, state.http, &refresh_token).await,
        None => {
            let discovered = provider.discovered(state.http).await?;
            let token_url = discovered.token_endpoint.clone().ok_or_else(|| {
                ApiError::TokenUnavailable("The provider has no token endpoint".to_owned())
            })?;
            let client = TokenClient {
                client_id: &provider.config.client_id,
                auth: &provider.config.client_auth,
                key: provider.client_key.as_ref(),
            };
            let form = vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", refresh_token),
            ];
            // RFC 9449 section 5: a DPoP session refreshes with a proof of its own key.
            let dpop_key = match (
                provider.config.dpop,
                session.record.tokens.get().dpop_key.as_deref(),
            ) {
                (false, _) => None,
                (true, Some(stored)) => Some(DpopKey::from_stored(stored).map_err(|_| {
                    ApiError::TokenUnavailable("The session's DPoP key is unreadable".to_owned())
                })?),
                (true, None) => {
                    return Err(ApiError::Unauthorized(
                        "The session has no DPoP key; log in again",
                    ));
                }
            };
            let prover = dpop_key.as_ref().map(|key| Prover {
                key,
                nonce: &provider.dpop_nonce,
                access_token: None,
            });
            request_token_with(state.http, &token_url, &client, form, prover).await
        }
    };
    state
        .metrics
        .upstream_latency
        .with_label_values(&[provider.id(), "refresh"])
        .observe(started.elapsed().as_secs_f64());
    match answer {
        Ok(answer) => {
            // SPEC 5, OIDC Core 12.2: a new ID token is checked before anything of this
            // answer is kept or handed out.
            if let Some(id_token) = &answer.id_token {
                let original = OriginalLogin {
                    id_token: session.record.tokens.get().id_token.as_deref(),
                    subject: &session.record.subject,
                };
                if let Err(check) =
                    verify_refreshed(provider, state.http, id_token, &original, unix_now()).await
                {
                    tracing::warn!(provider = %provider.id(), check = %check, "refreshed ID token refused; the refresh hands out nothing");
                    return Err(ApiError::TokenUnavailable(
                        "The provider's refreshed ID token is not valid".to_owned(),
                    ));
                }
            }
            let now = unix_now();
            let mut tokens = session.record.tokens.get().clone();
            tokens.access_token = Some(answer.access_token.clone());
            tokens.access_token_issued_at = Some(now);
            tokens.access_token_expires_at = answer
                .expires_in
                .and_then(|seconds| expiry_after(now, seconds));
            if let Some(rotated) = answer.refresh_token {
                tokens.refresh_token = Some(rotated);
            }
            if let Some(id_token) = answer.id_token {
                tokens.id_token = Some(id_token);
            }
            let expires_at = tokens.access_token_expires_at.unwrap_or(session.expires_at);
            session.record.tokens.replace(tokens);
            if !state.sessions.update(&session).await? {
                return Err(ApiError::Unauthorized("The session has ended"));
            }
            tracing::info!(provider = %provider.id(), "session tokens refreshed");
            Ok((answer.access_token, expires_at))
        }
        Err(TokenError::Refused { code, status }) if status < 500 => {
            tracing::info!(provider = %provider.id(), %code, "refresh refused; ending the session");
            state.sessions.delete(&session).await?;
            Err(ApiError::Unauthorized(
                "The provider refused to refresh the session; log in again",
            ))
        }
        Err(error) => {
            tracing::warn!(provider = %provider.id(), %error, "session refresh failed");
            Err(ApiError::TokenUnavailable(
                "The provider could not refresh the session's token".to_owned(),
            ))
        }
    }
}
