//! Finishing a login at `/callback` (OIDC Core 3.1.2.5 - 3.1.3.7): the pending login from
//! the browser's login cookie (which binds it to that browser: checked before anything
//! else, so a callback without it sends nothing to the provider), the provider's error,
//! the RFC 9207 `iss` check, the code exchange and ID token checks (in [`super::flow`]),
//! the profile, and a new session that replaces any older one.

use super::ProviderRegistry;
use super::{claims, flow, seam};
use crate::clock::{unix_now, unix_now_ms};
use crate::error::{ApiError, printable};
use crate::redirect::{RedirectPolicy, ReturnUrl};
use crate::session::{
    PendingLogins, SessionRecord, SessionService, SessionTicket, StoredProfile, browser_label,
};

/// What finishing a login needs.
pub struct LoginDeps<'a> {
    /// Logins in flight, carried by login cookies.
    pub pending_logins: &'a PendingLogins,
    /// SPEC 4, to check the returnURL the login cookie brings back.
    pub redirect_policy: &'a RedirectPolicy,
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
    /// The value of this state's login cookie, when the browser sent it.
    pub login_cookie: Option<String>,
    /// The session this browser had before, if any.
    pub previous: Option<SessionTicket>,
    /// The browser's `User-Agent`, for the session list's label (only the label is kept).
    pub user_agent: Option<&'a str>,
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
        .ok_or_else(|| refused("state", None, "the callback carries no state"))?;
    let now = unix_now();
    let (pending, issued_at): (flow::PendingLogin, i64) = deps
        .pending_logins
        .open(handle, callback.login_cookie.as_deref(), now)
        .map_err(|why| refused(why.check(), None, why.message()))?;
    let provider = deps.providers.get(&pending.provider).ok_or_else(|| {
        refused(
            "provider",
            Some(&pending.provider),
            "the provider is no longer configured",
        )
    })?;
    let id = provider.id();
    // The cookie came back from the browser: its returnURL passes SPEC 4 again.
    let return_url = ReturnUrl::parse(pending.return_url.as_str(), deps.redirect_policy)
        .map_err(|_| refused("returnURL", Some(id), "the returnURL is not allowed"))?;
    if let Some(error) = callback.error {
        let error = printable(error);
        tracing::warn!(check = "provider error", provider = %id, %error, "login refused");
        return Err(ApiError::login_failed(format!(
            "the provider answered '{error}'"
        )));
    }
    // FAPI 2.0 Security Profile 5.3.2.2: the response must name its issuer (RFC 9207).
    if provider.config.profile == crate::config::Profile::Fapi2 && callback.iss.is_none() {
        return Err(refused(
            "iss",
            Some(id),
            "the authorization response names no issuer (FAPI 2.0 requires RFC 9207 iss)",
        ));
    }
    // RFC 9207: a response naming another issuer is a mix-up attack.
    if let Some(issuer) = callback.iss
        && issuer != provider.issuer()
    {
        return Err(refused(
            "iss",
            Some(id),
            "the authorization response comes from another issuer",
        ));
    }
    let code = callback
        .code
        .ok_or_else(|| refused("code", Some(id), "the callback carries no code"))?;
    let outcome = seam::finish_login(provider, deps.http, &pending, code)
        .await
        .inspect_err(|error| {
            // Other errors (store, internal) are logged where they are made.
            if let ApiError::LoginFailed { message, .. } = error {
                tracing::warn!(check = "code exchange and ID token", provider = %id, reason = %message, "login refused");
            }
        })?;
    // Single use (SPEC 2): of two callbacks with this state, one creates a session.
    deps.pending_logins
        .claim(handle, issued_at, now)
        .await?
        .map_err(|why| refused(why.check(), Some(id), why.message()))?;
    let now = unix_now_ms();
    let record = SessionRecord {
        provider: provider.id().to_owned(),
        profile: StoredProfile::new(claims::map_profile(&provider.config, &outcome.claims))
            .map_err(ApiError::Internal)?,
        subject: outcome.subject,
        sid: outcome.sid,
        created_at_ms: now,
        last_touch_ms: now,
        tokens: outcome.tokens.into(),
    };
    // Never keep a pre-login session: the browser gets a new ticket, the old one dies.
    if let Some(previous) = callback.previous
        && let Some(previous) = deps.sessions.load(previous).await?
    {
        deps.sessions.delete(&previous).await?;
    }
    let browser = browser_label(callback.user_agent);
    let ticket = deps.sessions.create_listed(&record, &browser).await?;
    Ok(CompletedLogin {
        ticket,
        return_url,
        provider: record.provider,
    })
}

/// A login refused by `check`: one WARN line naming it and the provider, never the code,
/// the state or a cookie.
fn refused(check: &'static str, provider: Option<&str>, message: &'static str) -> ApiError {
    tracing::warn!(
        check,
        provider = provider.unwrap_or("-"),
        message,
        "login refused"
    );
    ApiError::login_failed(message)
}
