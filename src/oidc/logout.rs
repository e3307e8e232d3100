//! RP-Initiated Logout 1.0: the URL that sends the browser on to end the provider's
//! session (`end_session_endpoint` with `id_token_hint`, `client_id` and, when we want
//! the browser back, `post_logout_redirect_uri` and `state`), and `log_out`, which ends
//! the session here and says where the browser goes next.

use std::time::Duration;

use url::Url;

use super::ProviderRegistry;
use super::revoke::{RevokeDeps, revoke_session_tokens};
use crate::crypto;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::redirect::ReturnUrl;
use crate::session::{LoadedSession, SealedSlots, SessionService, SessionTicket};

/// What a logout needs.
pub struct LogoutDeps<'a> {
    /// Sessions (the caller's is deleted).
    pub sessions: &'a SessionService,
    /// Providers, for their end-session endpoints.
    pub providers: &'a ProviderRegistry,
    /// Where the `returnURL` waits while the browser visits the provider.
    pub pending_logouts: &'a SealedSlots,
    /// How long it waits.
    pub pending_ttl: Duration,
    /// The service's public base URL, for `post_logout_redirect_uri`.
    pub public_base: &'a str,
    /// The logout counter.
    pub metrics: &'a Metrics,
    /// The upstream HTTP client (token revocation, SPEC 11).
    pub http: &'a reqwest::Client,
}

/// Where a logout sends the caller.
pub enum LoggedOut {
    /// No `returnURL` was given: the provider's end-session URL, if any, for the
    /// frontend to navigate to.
    Answer {
        /// RP-initiated logout URL (holds the ID token hint; not for logs).
        end_session_url: Option<String>,
    },
    /// Redirect the browser here (the provider's end-session endpoint or the `returnURL`).
    Redirect(String),
}

impl std::fmt::Debug for LoggedOut {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Both URLs may hold the ID token (id_token_hint).
        match self {
            Self::Answer { .. } => formatter.write_str("Answer(***)"),
            Self::Redirect(_) => formatter.write_str("Redirect(***)"),
        }
    }
}

/// Ends the session of `ticket` (if any) and, with `return_url`, parks it for
/// `/logout/callback` when the provider's session is to be ended too.
pub async fn log_out(
    deps: &LogoutDeps<'_>,
    ticket: Option<SessionTicket>,
    return_url: Option<ReturnUrl>,
) -> Result<LoggedOut, ApiError> {
    let session = match ticket {
        Some(ticket) => deps.sessions.load(ticket).await?,
        None => None,
    };
    let end_session = match &session {
        Some(session) => {
            deps.sessions.delete(session).await?;
            deps.metrics.logouts.with_label_values(&["user"]).inc();
            deps.metrics
                .sessions_ended
                .with_label_values(&["logout"])
                .inc();
            let revoke = RevokeDeps {
                providers: deps.providers,
                http: deps.http,
                metrics: deps.metrics,
            };
            revoke_session_tokens(&revoke, session).await;
            EndSession::for_session(deps.providers, session)
        }
        None => None,
    };
    let Some(return_url) = return_url else {
        return Ok(LoggedOut::Answer {
            end_session_url: end_session.map(EndSession::url),
        });
    };
    Ok(LoggedOut::Redirect(match end_session {
        Some(end_session) => {
            let handle = crypto::random_token::<32>()?;
            deps.pending_logouts
                .put(&handle, &return_url, deps.pending_ttl)
                .await?;
            end_session.url_returning_to(format!("{}/logout/callback", deps.public_base), handle)
        }
        None => return_url.as_str().to_owned(),
    }))
}

/// A provider's end-session endpoint with the query for one session.
pub struct EndSession {
    endpoint: Url,
    query: Vec<(&'static str, String)>,
    /// An ArcGIS portal's `oauth2/signout`: the way back is its `redirect_uri`, which
    /// carries our state in its own query.
    arcgis: bool,
}

impl std::fmt::Debug for EndSession {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The query holds the ID token (id_token_hint).
        formatter
            .debug_struct("EndSession")
            .field("endpoint", &self.endpoint.as_str())
            .field("query", &"***")
            .finish()
    }
}

impl EndSession {
    /// The end-session request for `session`, when its provider is configured for
    /// RP-initiated logout and announces an `end_session_endpoint`.
    pub fn for_session(providers: &ProviderRegistry, session: &LoadedSession) -> Option<Self> {
        let provider = providers.get(&session.record.provider)?;
        if !provider.config.logout.rp_initiated {
            return None;
        }
        if let Some(portal) = provider.portal() {
            // SPEC 10: `oauth2/signout` takes `client_id` and `redirect_uri`, no state.
            return Some(Self {
                endpoint: Url::parse(&portal.signout_url()).ok()?,
                query: Vec::new(),
                arcgis: true,
            });
        }
        let endpoint = provider.current()?.end_session_endpoint.clone()?;
        let mut query = vec![("client_id", provider.config.client_id.clone())];
        if let Some(id_token) = &session.record.tokens.get().id_token {
            query.insert(0, ("id_token_hint", id_token.clone()));
        }
        Some(Self {
            endpoint,
            query,
            arcgis: false,
        })
    }

    /// The URL that does not bring the browser back.
    pub fn url(self) -> String {
        with_query(self.endpoint, &self.query)
    }

    /// The URL that brings the browser back to `post_logout_redirect_uri` with `state`.
    pub fn url_returning_to(mut self, post_logout_redirect_uri: String, state: String) -> String {
        if self.arcgis {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("state", &state)
                .finish();
            self.query.push((
                "redirect_uri",
                format!("{post_logout_redirect_uri}?{query}"),
            ));
            return with_query(self.endpoint, &self.query);
        }
        self.query
            .push(("post_logout_redirect_uri", post_logout_redirect_uri));
        self.query.push(("state", state));
        with_query(self.endpoint, &self.query)
    }
}

fn with_query(mut endpoint: Url, query: &[(&str, String)]) -> String {
    {
        let mut pairs = endpoint.query_pairs_mut();
        for (name, value) in query {
            pairs.append_pair(name, value);
        }
    }
    endpoint.into()
}
