//! Sending one request to the target and the answer back, both bodies streamed: the
//! browser's body is pumped chunk by chunk through a small bounded channel (so memory
//! stays flat and a slow target slows the browser down), counted against `max_body`;
//! the target's body is handed to actix as it arrives.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use actix_web::body::SizedStream;
use actix_web::http::StatusCode;
use actix_web::http::header::{
    CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue, TRANSFER_ENCODING,
};
use actix_web::{HttpResponse, web};
use futures_util::StreamExt;
use url::Url;

use super::headers::{self, Forwarding};
use super::path::add_query_token;
use super::{Proxy, ProxyRoute};
use crate::config::Transport;

/// Request body chunks in flight between the browser and the target.
const BODY_CHUNKS_IN_FLIGHT: usize = 4;

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
enum BodyError {
    #[error("the request body exceeds max_body")]
    TooLarge,
    #[error("the browser's request body failed")]
    Browser,
}

impl Proxy {
    /// Whether `headers` declare a body longer than `max_body` (checked before anything else).
    pub fn declared_too_large(&self, headers: &HeaderMap) -> bool {
        headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .is_some_and(|length| length > self.max_body)
    }

    /// Forwards `incoming` with `token` attached per the route's transport and streams the
    /// target's answer back (status and headers minus hop-by-hop and `Set-Cookie`).
    pub async fn forward(
        &self,
        route: &ProxyRoute,
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
        let mut upstream_headers = headers::upstream_request_headers(incoming.headers, &forwarding);
        let mut url = incoming.url;
        match route.transport {
            Transport::Bearer => {
                let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| ForwardError::Unavailable("token is not a valid header value"))?;
                upstream_headers.insert(reqwest::header::AUTHORIZATION, value);
            }
            Transport::TokenParameter => add_query_token(&mut url, "token", token),
            Transport::AccessTokenParameter => add_query_token(&mut url, "access_token", token),
        }
        let method = reqwest::Method::from_bytes(incoming.method.as_str().as_bytes())
            .map_err(|_| ForwardError::Unavailable("method"))?;
        let mut request = route.client.request(method, url).headers(upstream_headers);
        let exceeded = Arc::new(AtomicBool::new(false));
        if has_body(incoming.headers) {
            request = request.body(self.pump(payload, exceeded.clone()));
        }
        let started = Instant::now();
        let sent = tokio::time::timeout(self.timeout, request.send()).await;
        self.metrics
            .upstream_latency
            .with_label_values(&[route.target_url.as_str()])
            .observe(started.elapsed().as_secs_f64());
        if exceeded.load(Ordering::Acquire) {
            return Err(ForwardError::TooLarge);
        }
        let response = match sent {
            Err(_) => {
                return Err(ForwardError::Unavailable(
                    "no response within proxy.timeout",
                ));
            }
            Ok(Err(error)) if error.is_connect() => {
                return Err(ForwardError::Unavailable("cannot connect"));
            }
            Ok(Err(_)) => return Err(ForwardError::Unavailable("request failed")),
            Ok(Ok(response)) => response,
        };
        Ok(downstream(response))
    }

    /// The browser's body as a stream the HTTP client can send from another task: a local
    /// task reads the (single-threaded) actix payload into a bounded channel.
    fn pump(&self, mut payload: web::Payload, exceeded: Arc<AtomicBool>) -> reqwest::Body {
        let (sender, receiver) =
            tokio::sync::mpsc::channel::<Result<web::Bytes, BodyError>>(BODY_CHUNKS_IN_FLIGHT);
        let max_body = self.max_body;
        actix_web::rt::spawn(async move {
            let mut total: u64 = 0;
            while let Some(chunk) = payload.next().await {
                let item = match chunk {
                    Ok(bytes) => {
                        total = total.saturating_add(bytes.len() as u64);
                        if total > max_body {
                            exceeded.store(true, Ordering::Release);
                            let _ = sender.send(Err(BodyError::TooLarge)).await;
                            return;
                        }
                        Ok(bytes)
                    }
                    Err(_) => Err(BodyError::Browser),
                };
                let failed = item.is_err();
                if sender.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        reqwest::Body::wrap_stream(stream)
    }
}

/// Whether the browser sent a body (a length above zero, or chunked).
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(TRANSFER_ENCODING)
        || headers
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .is_some_and(|length| length > 0)
}

/// The target's answer for the browser, its body streamed as it arrives.
fn downstream(response: reqwest::Response) -> HttpResponse {
    let status =
        StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut builder = HttpResponse::build(status);
    for (name, value) in headers::downstream_response_headers(response.headers()) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_str().as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            builder.append_header((name, value));
        }
    }
    let length = response.content_length();
    let body = response.bytes_stream();
    match length {
        Some(length) => builder.body(SizedStream::new(length, body)),
        None => builder.streaming(body),
    }
}
