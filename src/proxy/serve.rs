//! One proxied request from start to finish (SPEC 9): the checks in their order (body
//! size, session, CSRF, target permission, path), the token as `POST /token` would issue
//! it, then [`Proxy::forward`]. Every refusal logs one WARN line naming the check and the
//! target, never a token or cookie.

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, ORIGIN};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, web};

use super::path::upstream_url;
use super::{ForwardError, Incoming, Proxy, ProxyRoute, UpstreamClient};
use crate::caller::Caller;
use crate::config::Transport;
use crate::error::ApiError;
use crate::oidc::dpop::DpopKey;
use crate::origin::{OriginPolicy, allows_credentialed_request};
use crate::session::{SessionService, SessionTicket};
use crate::targets::{TargetTable, TokenDeps, issue_token, sender_constrained};

/// The browser's request as the handler parsed it.
pub struct ProxyCall<'a> {
    /// Its method.
    pub method: &'a Method,
    /// Its headers.
    pub headers: &'a HeaderMap,
    /// The browser's address.
    pub peer: Option<IpAddr>,
    /// The session cookie's ticket, if one came.
    pub ticket: Option<SessionTicket>,
    /// The path below `proxy_path`, still percent-encoded.
    pub rest: &'a str,
    /// The query string, without `?`.
    pub query: &'a str,
}

/// What a proxied request needs besides the proxy itself.
pub struct ProxyDeps<'a> {
    /// Session lookup.
    pub sessions: &'a SessionService,
    /// Which caller may use which target.
    pub targets: &'a TargetTable,
    /// Issuing the target token.
    pub tokens: TokenDeps<'a>,
    /// `[cors] allowed_origins`.
    pub cors: &'a OriginPolicy,
}

impl Proxy {
    /// Checks `call` against `route` and forwards it; the error is the refusal to send.
    pub async fn serve(
        &self,
        route: &ProxyRoute,
        client: &UpstreamClient,
        call: ProxyCall<'_>,
        deps: ProxyDeps<'_>,
        payload: web::Payload,
    ) -> Result<HttpResponse, ApiError> {
        let target = route.target_url.as_str();
        let refuse = |check: &str, error: ApiError| {
            tracing::warn!(check, target, "proxy request refused");
            error
        };
        if self.declared_too_large(call.headers) {
            return Err(refuse(
                "body exceeds proxy.max_body",
                ApiError::PayloadTooLarge,
            ));
        }
        // A session only: the browser's Authorization header is the target's business, not ours.
        let session = match call.ticket {
            Some(ticket) => deps.sessions.load(ticket).await?,
            None => None,
        };
        let Some(session) = session else {
            return Err(refuse(
                "session",
                ApiError::Unauthorized("Authentication required"),
            ));
        };
        let caller = Caller::Session(Box::new(session));
        if !self.same_site(call.headers, deps.cors) {
            return Err(refuse(
                "X-Requested-With or allowed Origin",
                ApiError::Forbidden("Proxied requests need X-Requested-With or an allowed Origin"),
            ));
        }
        let target_entry = deps
            .targets
            .find(&route.target_url, &caller)
            .map_err(|error| refuse("provider and roles", error))?;
        let url = upstream_url(&route.target_url, call.rest, call.query).map_err(|refusal| {
            refuse(
                refusal.check(),
                ApiError::InvalidParameter("The path leaves the proxied target".to_owned()),
            )
        })?;
        // SPEC 12: a DPoP-bound token travels only with a proof of the session's key.
        let dpop_key = match route.transport {
            Transport::Dpop => {
                Some(session_dpop_key(&caller).map_err(|error| refuse("DPoP key", error))?)
            }
            _ if sender_constrained(&deps.tokens, &caller, target_entry) => {
                return Err(refuse("sender-constrained", ApiError::SenderConstrained));
            }
            _ => None,
        };
        let token = issue_token(&deps.tokens, &caller, target_entry)
            .await
            .map_err(|error| refuse("token", error))?;
        let incoming = Incoming {
            method: call.method,
            headers: call.headers,
            peer: call.peer,
            url,
            dpop_key,
        };
        self.forward(route, client, incoming, &token.value, payload)
            .await
            .map_err(|error| match error {
                ForwardError::TooLarge => {
                    refuse("body exceeds proxy.max_body", ApiError::PayloadTooLarge)
                }
                ForwardError::Unavailable(check) => refuse(check, ApiError::UpstreamUnavailable),
            })
    }

    /// Counts one answer in `identity_proxy_requests_total{target, status}`.
    pub fn count(&self, route: &ProxyRoute, status: StatusCode) {
        self.metrics
            .requests
            .with_label_values(&[route.target_url.as_str(), status.as_str()])
            .inc();
    }

    /// SPEC 9, the rule `POST /token` uses ([`allows_credentialed_request`]): an `Origin`
    /// that is present must be ours or in `[cors]`; only without one does
    /// `X-Requested-With` stand in for it.
    fn same_site(&self, headers: &HeaderMap, cors: &OriginPolicy) -> bool {
        allows_credentialed_request(
            headers.get(ORIGIN).map(|value| value.as_bytes()),
            headers.contains_key("x-requested-with"),
            &self.own_origin,
            cors,
        )
    }
}

/// The session's DPoP key, for a `DPOP` target (403 for a session without one: its
/// provider does not bind tokens, so there is nothing to prove).
fn session_dpop_key(caller: &Caller) -> Result<DpopKey, ApiError> {
    let Caller::Session(session) = caller else {
        return Err(ApiError::SenderConstrained);
    };
    let stored = session
        .record
        .tokens
        .get()
        .dpop_key
        .clone()
        .ok_or(ApiError::Forbidden(
            "The session's tokens are not DPoP-bound; this target needs DPoP",
        ))?;
    DpopKey::from_stored(&stored)
        .map_err(|_| ApiError::TokenUnavailable("The session's DPoP key is unreadable".to_owned()))
}
