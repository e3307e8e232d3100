//! Finishing a login at `/callback` (OIDC Core 3.1.2.5 - 3.1.3.7): the browser binding,
//! the provider's error, the RFC 9207 `iss` check, the code exchange and ID token checks
//! (in [`super::flow`]), the profile, and a new session that replaces any older one.

use super::ProviderRegistry;
use super::{claims, flow};
use crate::clock::unix_now_ms;
use crate::crypto;
use crate::error::{ApiError, printable};
use crate::redirect::ReturnUrl;
use crate::session::{SealedSlots, SessionRecord, SessionService, SessionTicket};

/// What finishing a login needs.
pub struct LoginDeps<'a> {
    /// Logins in flight, by `state`.
    pub pending_logins: &'a SealedSlots,
    /// Providers.
    pub providers: &'a ProviderRegistry,
    /// The upstream HTTP client.
    pub http: &'a reqwest::Client,
    /// Sessions.
    pub sessions: &'a SessionService,
}

/// The authorization response as the browser brought it back, with its cookies.
#[derive(Default)]
pub struct Callback<'a> {
    /// `state`.
    pub state: Option<&'a str>,
    /// `code`.
    pub code: Option<&'a str>,
    /// RFC 9207 `iss`.
    pub iss: Option<&'a str>,
    /// `error`.
    pub error: Option<&'a str>,
    /// The browser-binding cookie's value.
    pub binding: Option<String>,
    /// The session this browser had before, if any.
    pub previous: Option<SessionTicket>,
}

/// A finished login.
pub struct CompletedLogin {
    /// The new session's ticket (for the cookie).
    pub ticket: SessionTicket,
    /// Where the browser goes now.
    pub return_url: ReturnUrl,
    /// The provider's id.
    pub provider: String,
}

/// Finishes the login `callback` answers and creates its session.
pub async fn complete_login(
    deps: &LoginDeps<'_>,
    callback: Callback<'_>,
) -> Result<CompletedLogin, ApiError> {
    let handle = callback
        .state
        .ok_or_else(|| refused("state", "the callback carries no state"))?;
    let pending: flow::PendingLogin = deps
        .pending_logins
        .take(handle)
        .await?
        .ok_or_else(|| refused("state", "the login is unknown, expired or already finished"))?;
    let same_browser = callback.binding.is_some_and(|binding| {
        crypto::derive_name("login-binding", binding.as_bytes()) == pending.browser_binding
    });
    if !same_browser {
        return Err(refused(
            "browser binding",
            "the login was started in another browser",
        ));
    }
    let provider = deps
        .providers
        .get(&pending.provider)
        .ok_or_else(|| refused("provider", "the provider is no longer configured"))?;
    if let Some(error) = callback.error {
        return Err(ApiError::login_failed(format!(
            "the provider answered '{}'",
            printable(error)
        )));
    }
    // RFC 9207: a response naming another issuer is a mix-up attack.
    if let Some(issuer) = callback.iss
        && issuer != provider.issuer()
    {
        return Err(refused(
            "iss",
            "the authorization response comes from another issuer",
        ));
    }
    let code = callback
        .code
        .ok_or_else(|| refused("code", "the callback carries no code"))?;
    let outcome = flow::finish_login(provider, deps.http, &pending, code).await?;
    let now = unix_now_ms();
    let record = SessionRecord {
        provider: provider.id().to_owned(),
        profile: claims::map_profile(&provider.config, &outcome.claims),
        subject: outcome.subject,
        sid: outcome.sid,
        created_at_ms: now,
        last_touch_ms: now,
        tokens: outcome.tokens,
    };
    // Never keep a pre-login session: the browser gets a new ticket, the old one dies.
    if let Some(previous) = callback.previous
        && let Some(previous) = deps.sessions.load(previous).await?
    {
        deps.sessions.delete(&previous).await?;
    }
    let ticket = deps.sessions.create(&record).await?;
    Ok(CompletedLogin {
        ticket,
        return_url: pending.return_url,
        provider: record.provider,
    })
}

/// A login refused by `check`: one WARN line naming it, never the code or state.
fn refused(check: &'static str, message: &'static str) -> ApiError {
    tracing::warn!(check, message, "login refused");
    ApiError::login_failed(message)
}
