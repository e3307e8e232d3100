//! Sending one request to the target and the answer back, both bodies streamed on the
//! worker's thread: the client reads the browser's body chunk by chunk only as fast as the
//! target takes it (so memory stays flat and a slow target slows the browser down), counted
//! against `max_body`; the target's body is handed to actix as it arrives.

use std::cell::Cell;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Instant;

use actix_web::body::{self, SizedStream};
use actix_web::http::Uri;
use actix_web::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, HeaderMap, HeaderValue, TRANSFER_ENCODING,
};
use actix_web::{HttpResponse, web};
use awc::error::SendRequestError;
use futures_util::StreamExt;
use url::Url;

use super::headers::{self, Forwarding};
use super::path::add_query_token;
use super::{Proxy, ProxyRoute, UpstreamClient};
use crate::config::Transport;
use crate::extract::declared_length;

/// The browser's request, as far as the proxy needs it.
pub struct Incoming<'a> {
    /// Its method.
    pub method: &'a actix_web::http::Method,
    /// Its headers.
    pub headers: &'a HeaderMap,
    /// The browser's address.
    pub peer: Option<IpAddr>,
    /// The resolved upstream URL (see [`super::path::upstream_url`]), without the token.
    pub url: Url,
}

/// Why nothing (or not all) came back from the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardError {
    /// The request body grew past `max_body` while streaming.
    TooLarge,
    /// The target could not be reached, failed, or sent no response headers in time;
    /// the text names the check for the log.
    Unavailable(&'static str),
}

/// Why the request body stream ended early (seen by the HTTP client only).
#[derive(Debug, thiserror::Error)]
#[error("the request body exceeds max_body")]
struct TooLarge;

impl Proxy {
    /// Whether `headers` declare a body longer than `max_body` (checked before anything else).
    pub fn declared_too_large(&self, headers: &HeaderMap) -> bool {
        declared_length(headers).is_some_and(|length| length > self.max_body)
    }

    /// Forwards `incoming` with `token` attached per the route's transport and streams the
    /// target's answer back (status and headers minus hop-by-hop and `Set-Cookie`).
    pub async fn forward(
        &self,
        route: &ProxyRoute,
        client: &UpstreamClient,
        incoming: Incoming<'_>,
        token: &str,
        payload: web::Payload,
    ) -> Result<HttpResponse, ForwardError> {
        let forwarding = Forwarding {
            peer: incoming.peer,
            peer_trusted: self.trusts(incoming.peer),
            proto: &self.public_proto,
            host: &self.public_host,
        };
        let mut url = incoming.url;
        let mut authorization = None;
        match route.transport {
            Transport::Bearer => {
                let value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| ForwardError::Unavailable("token is not a valid header value"))?;
                authorization = Some(value);
            }
            Transport::TokenParameter => add_query_token(&mut url, "token", token),
            Transport::AccessTokenParameter => add_query_token(&mut url, "access_token", token),
        }
        let uri = Uri::try_from(url.as_str()).map_err(|_| ForwardError::Unavailable("url"))?;
        let mut request = client.0.request(incoming.method.clone(), uri);
        let upstream_headers = request.headers_mut();
        headers::upstream_request_headers(incoming.headers, &forwarding, upstream_headers);
        if let Some(value) = authorization {
            upstream_headers.insert(AUTHORIZATION, value);
        }
        let exceeded = Rc::new(Cell::new(false));
        let started = Instant::now();
        let sent = match body_length(incoming.headers) {
            Some(0) => {
                tokio::time::timeout(self.timeout, request.send_body(body::None::new())).await
            }
            Some(length) => {
                let stream = self.limited(payload, exceeded.clone());
                tokio::time::timeout(
                    self.timeout,
                    request.send_body(SizedStream::new(length, stream)),
                )
                .await
            }
            None => {
                let stream = self.limited(payload, exceeded.clone());
                tokio::time::timeout(self.timeout, request.send_stream(stream)).await
            }
        };
        self.metrics
            .upstream_latency
            .with_label_values(&[route.target_url.as_str()])
            .observe(started.elapsed().as_secs_f64());
        if exceeded.get() {
            return Err(ForwardError::TooLarge);
        }
        let response = match sent {
            Err(_) => {
                return Err(ForwardError::Unavailable(
                    "no response within proxy.timeout",
                ));
            }
            Ok(Err(SendRequestError::Connect(_))) => {
                return Err(ForwardError::Unavailable("cannot connect"));
            }
            Ok(Err(_)) => return Err(ForwardError::Unavailable("request failed")),
            Ok(Ok(response)) => response,
        };
        Ok(downstream(response))
    }

    /// The browser's body, ending in an error (which aborts the upstream request) once it
    /// grows past `max_body`; `exceeded` tells the caller why.
    fn limited(
        &self,
        payload: web::Payload,
        exceeded: Rc<Cell<bool>>,
    ) -> impl futures_util::Stream<Item = Result<web::Bytes, Box<dyn std::error::Error>>> + 'static
    {
        let max_body = self.max_body;
        let mut total: u64 = 0;
        payload.map(move |chunk| {
            let bytes = chunk.map_err(|error| Box::new(error) as Box<dyn std::error::Error>)?;
            total = total.saturating_add(bytes.len() as u64);
            if total > max_body {
                exceeded.set(true);
                return Err(Box::new(TooLarge) as Box<dyn std::error::Error>);
            }
            Ok(bytes)
        })
    }
}

/// The length of the browser's body: `Some(0)` without one, `None` when chunked.
fn body_length(headers: &HeaderMap) -> Option<u64> {
    if headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    Some(declared_length(headers).unwrap_or(0))
}

/// The target's answer for the browser, its body streamed as it arrives.
fn downstream(response: awc::ClientResponse) -> HttpResponse {
    let mut builder = HttpResponse::build(response.status());
    for (name, value) in headers::downstream_response_headers(response.headers()) {
        builder.append_header((name.clone(), value.clone()));
    }
    let length = response
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    match length {
        Some(length) => builder.body(SizedStream::new(length, response)),
        None => builder.streaming(response),
    }
}
