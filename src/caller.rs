//! Who is calling (SPEC 5): a bearer token when the request carries
//! `Authorization: Bearer …` (a bad one is 401, even beside a valid cookie; one that no
//! provider could judge in time is 502 `PROVIDER_UNAVAILABLE`), else the session named by
//! the cookie. Other `Authorization` schemes are ignored.

use actix_web::HttpRequest;
use actix_web::http::header::AUTHORIZATION;

use crate::cookies::CookieSettings;
use crate::error::ApiError;
use crate::oidc::ProviderRegistry;
use crate::oidc::bearer::{BearerIdentity, BearerVerifier};
use crate::session::{LoadedSession, Profile, SessionService, SessionTicket};

/// What identifying a caller needs: cookies and sessions, providers and bearer checks.
pub struct CallerDeps<'a> {
    /// Providers (bearer tokens are checked against them).
    pub providers: &'a ProviderRegistry,
    /// Bearer token checks and the introspection cache.
    pub bearer: &'a BearerVerifier,
    /// The upstream HTTP client (keys, introspection).
    pub http: &'a reqwest::Client,
    /// Sessions.
    pub sessions: &'a SessionService,
    /// The session cookie's name.
    pub cookies: &'a CookieSettings,
}

/// An authenticated caller.
pub enum Caller {
    /// A browser session.
    Session(Box<LoadedSession>),
    /// A bearer token.
    Bearer(BearerIdentity),
}

impl Caller {
    /// Identifies the caller of `request`; `None` when nobody is logged in.
    pub async fn identify(
        state: &CallerDeps<'_>,
        request: &HttpRequest,
    ) -> Result<Option<Self>, ApiError> {
        match bearer_token(request) {
            BearerHeader::Absent => {}
            BearerHeader::Unreadable => {
                tracing::warn!(
                    check = "the Bearer header is not visible ASCII",
                    "bearer token refused"
                );
                return Err(ApiError::Unauthorized("The bearer token is not valid"));
            }
            BearerHeader::Token(token) => {
                if !state
                    .providers
                    .all()
                    .iter()
                    .any(|provider| provider.config.accept_bearer)
                {
                    tracing::warn!(
                        check = "no provider accepts bearer tokens",
                        "bearer token refused"
                    );
                    return Err(ApiError::Unauthorized("Bearer tokens are not accepted"));
                }
                return match state
                    .bearer
                    .verify(state.providers, state.http, token)
                    .await
                {
                    Ok(identity) => Ok(Some(Self::Bearer(identity))),
                    Err(refusal) if refusal.unavailable => {
                        let provider = refusal.provider.unwrap_or_default();
                        tracing::warn!(
                            check = refusal.check,
                            provider = %provider,
                            "bearer token not checked: no introspection answer in time"
                        );
                        Err(ApiError::ProviderUnavailable(provider))
                    }
                    Err(refusal) => {
                        tracing::warn!(
                            check = refusal.check,
                            provider = refusal.provider.as_deref().unwrap_or("-"),
                            "bearer token refused"
                        );
                        Err(ApiError::Unauthorized("The bearer token is not valid"))
                    }
                };
            }
        }
        let Some(ticket) = state.cookies.ticket(request) else {
            return Ok(None);
        };
        Ok(state
            .sessions
            .load(ticket)
            .await?
            .map(|session| Self::Session(Box::new(session))))
    }

    /// [`Self::identify`]; for a cookie caller, also reads the store value under the key
    /// that `also` names for its ticket, in the same store round trip as the session.
    /// Returns that key and its value beside the caller.
    pub async fn identify_with<K: AsRef<str>>(
        state: &CallerDeps<'_>,
        request: &HttpRequest,
        also: impl FnOnce(&SessionTicket) -> Option<K>,
    ) -> Result<(Option<Self>, Option<(K, Option<Vec<u8>>)>), ApiError> {
        if !matches!(bearer_token(request), BearerHeader::Absent) {
            return Ok((Self::identify(state, request).await?, None));
        }
        let Some(ticket) = state.cookies.ticket(request) else {
            return Ok((None, None));
        };
        let Some(key) = also(&ticket) else {
            let session = state.sessions.load(ticket).await?;
            return Ok((
                session.map(|session| Self::Session(Box::new(session))),
                None,
            ));
        };
        let (session, value) = state.sessions.load_with(ticket, key.as_ref()).await?;
        Ok((
            session.map(|session| Self::Session(Box::new(session))),
            Some((key, value)),
        ))
    }

    /// Provider id.
    pub fn provider(&self) -> &str {
        match self {
            Self::Session(session) => &session.record.provider,
            Self::Bearer(identity) => &identity.provider,
        }
    }

    /// The provider's subject.
    pub fn subject(&self) -> &str {
        match self {
            Self::Session(session) => &session.record.subject,
            Self::Bearer(identity) => &identity.subject,
        }
    }

    /// Name, roles, groups, attributes.
    pub fn profile(&self) -> &Profile {
        match self {
            Self::Session(session) => session.record.profile.get(),
            Self::Bearer(identity) => &identity.profile,
        }
    }

    /// The profile as one JSON object (`name`, `roles`, `groups`, `attributes`): a
    /// session's as stored, without parsing it.
    pub fn profile_json(&self) -> Result<std::borrow::Cow<'_, str>, serde_json::Error> {
        match self {
            Self::Session(session) => Ok(session.record.profile.json().into()),
            Self::Bearer(identity) => serde_json::to_string(&identity.profile).map(Into::into),
        }
    }

    /// Unix seconds when this authentication ends (session idle end or token `exp`).
    pub fn expires_at(&self) -> i64 {
        match self {
            Self::Session(session) => session.expires_at,
            Self::Bearer(identity) => identity.expires_at,
        }
    }
}

/// What the `Authorization` header says about a bearer token.
enum BearerHeader<'a> {
    /// No `Authorization` header, or another scheme (ignored, SPEC 5).
    Absent,
    /// A `Bearer` header whose token is missing or not visible ASCII (RFC 6750 section 2.1
    /// `b64token`): a bad token, never "no token".
    Unreadable,
    /// The token.
    Token(&'a str),
}

/// The token of an `Authorization: Bearer` header (scheme case-insensitive). The scheme is
/// judged on the raw bytes, so a header with latin-1 letters is still seen as `Bearer`.
fn bearer_token(request: &HttpRequest) -> BearerHeader<'_> {
    let Some(value) = request.headers().get(AUTHORIZATION) else {
        return BearerHeader::Absent;
    };
    let mut parts = value.as_bytes().splitn(2, |byte| *byte == b' ');
    let scheme = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default();
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return BearerHeader::Absent;
    }
    match std::str::from_utf8(rest).map(str::trim) {
        Ok(token) if !token.is_empty() && token.bytes().all(|byte| byte.is_ascii_graphic()) => {
            BearerHeader::Token(token)
        }
        _ => BearerHeader::Unreadable,
    }
}
