//! RP-Initiated Logout 1.0: the URL that sends the browser on to end the provider's
//! session (`end_session_endpoint` with `id_token_hint`, `client_id` and, when we want
//! the browser back, `post_logout_redirect_uri` and `state`).

use url::Url;

use super::ProviderRegistry;
use crate::session::LoadedSession;

/// A provider's end-session endpoint with the query for one session.
pub struct EndSession {
    endpoint: Url,
    query: Vec<(&'static str, String)>,
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
        let endpoint = provider.current()?.end_session_endpoint.clone()?;
        let mut query = vec![("client_id", provider.config.client_id.clone())];
        if let Some(id_token) = &session.record.tokens.id_token {
            query.insert(0, ("id_token_hint", id_token.clone()));
        }
        Some(Self { endpoint, query })
    }

    /// The URL that does not bring the browser back.
    pub fn url(self) -> String {
        with_query(self.endpoint, &self.query)
    }

    /// The URL that brings the browser back to `post_logout_redirect_uri` with `state`.
    pub fn url_returning_to(mut self, post_logout_redirect_uri: String, state: String) -> String {
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
