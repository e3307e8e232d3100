//! Who is calling (SPEC 5): a bearer token when the request carries
//! `Authorization: Bearer …` (a bad one is 401, even beside a valid cookie), else the
//! session named by the cookie. Other `Authorization` schemes are ignored.

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
        if let Some(token) = bearer_token(request) {
            if !state
                .providers
                .all()
                .iter()
                .any(|provider| provider.config.accept_bearer)
            {
                return Err(ApiError::Unauthorized("Bearer tokens are not accepted"));
            }
            return match state
                .bearer
                .verify(state.providers, state.http, token)
                .await
            {
                Ok(identity) => Ok(Some(Self::Bearer(identity))),
                Err(reason) => {
                    tracing::info!(reason, "bearer token refused");
                    Err(ApiError::Unauthorized("The bearer token is not valid"))
                }
            };
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
    pub async fn identify_with(
        state: &CallerDeps<'_>,
        request: &HttpRequest,
        also: impl FnOnce(&SessionTicket) -> Option<String>,
    ) -> Result<(Option<Self>, Option<(String, Option<Vec<u8>>)>), ApiError> {
        if bearer_token(request).is_some() {
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
        let (session, value) = state.sessions.load_with(ticket, &key).await?;
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
            Self::Session(session) => &session.record.profile,
            Self::Bearer(identity) => &identity.profile,
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

/// The token of an `Authorization: Bearer` header (scheme case-insensitive).
fn bearer_token(request: &HttpRequest) -> Option<&str> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
