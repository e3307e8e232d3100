//! Sending one request to the target and the answer back, both bodies streamed on the
//! worker's thread: the client reads the browser's body chunk by chunk only as fast as the
//! target takes it (so memory stays flat and a slow target slows the browser down), counted
//! against `max_body`; the target's body is handed to actix as it arrives.
//!
//! `proxy.timeout` bounds waiting, not uploading: while the body streams, the target must
//! take a chunk at least every `timeout`, and once the last chunk is handed over its
//! response headers must come within `timeout` (SPEC 9); a long upload that keeps moving
//! is never cut off for its length.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::net::IpAddr;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{self, SizedStream};
use actix_web::http::header::{
    AUTHORIZATION, CONTENT_LENGTH, CONTENT_LOCATION, HeaderMap, HeaderName, HeaderValue, LOCATION,
    TRANSFER_ENCODING, WWW_AUTHENTICATE,
};
use actix_web::{HttpResponse, web};
use awc::error::SendRequestError;
use futures_util::Stream;
use futures_util::StreamExt as _;
use tokio::time::Instant;
use url::Url;

use super::headers::{self, Forwarding};
use super::location::Rewrite;
use super::path::add_query_token;
use super::upstream_io::wire_uri;
use super::{Proxy, ProxyRoute, UpstreamClient};
use crate::config::Transport;
use crate::extract::declared_length;
use crate::oidc::dpop::{DpopKey, DpopNonce, demands_nonce_header};

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
    /// The session's DPoP key, for the `DPOP` transport (SPEC 12).
    pub dpop_key: Option<DpopKey>,
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
        let parameter = match route.transport {
            Transport::Bearer => {
                let value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| ForwardError::Unavailable("token is not a valid header value"))?;
                authorization = Some(value);
                None
            }
            Transport::TokenParameter => Some("token"),
            Transport::AccessTokenParameter => Some("access_token"),
            // RFC 9449 section 7.1.
            Transport::Dpop => {
                let value = HeaderValue::from_str(&format!("DPoP {token}"))
                    .map_err(|_| ForwardError::Unavailable("token is not a valid header value"))?;
                authorization = Some(value);
                None
            }
        };
        if let Some(parameter) = parameter {
            add_query_token(&mut url, parameter, token);
        }
        let uri = wire_uri(&url, route.tls).ok_or(ForwardError::Unavailable("url"))?;
        // The upstream call's span; its trace context replaces any the browser sent.
        let span = crate::spans::outbound(
            "proxy",
            incoming.method.as_str(),
            url.host_str().unwrap_or_default(),
        );
        let trace_context: Vec<(HeaderName, HeaderValue)> = crate::spans::context_headers(&span)
            .into_iter()
            .filter_map(|(name, value)| {
                Some((
                    HeaderName::from_static(name),
                    HeaderValue::from_str(&value).ok()?,
                ))
            })
            .collect();
        let build = |proof: Option<HeaderValue>| {
            let mut request = client.0.request(incoming.method.clone(), uri.clone());
            let upstream_headers = request.headers_mut();
            headers::upstream_request_headers(incoming.headers, &forwarding, upstream_headers);
            for (name, value) in &trace_context {
                upstream_headers.insert(name.clone(), value.clone());
            }
            if let Some(value) = authorization.clone() {
                upstream_headers.insert(AUTHORIZATION, value);
            }
            if let Some(proof) = proof {
                upstream_headers.insert(HeaderName::from_static("dpop"), proof);
            }
            request
        };
        if let Some(key) = &incoming.dpop_key {
            let prover = ProxyProver {
                key,
                nonce: &route.dpop_nonce,
                method: incoming.method.as_str(),
                url: &url,
                token,
            };
            let rewrite = Rewrite {
                request_url: &url,
                target: &route.target_url,
                public_prefix: &route.public_prefix,
                parameter,
                token,
            };
            return self
                .forward_dpop(route, prover, build, incoming.headers, payload, &rewrite)
                .await;
        }
        let request = build(None);
        let started = Instant::now();
        let (sent, upload) = match body_length(incoming.headers) {
            Some(0) => {
                let send = request.send_body(body::None::new());
                (self.within_timeout(send, None, started).await, None)
            }
            Some(length) => {
                let (stream, upload) = self.upload(payload, started);
                let send = request.send_body(SizedStream::new(length, stream));
                (
                    self.within_timeout(send, Some(&upload), started).await,
                    Some(upload),
                )
            }
            None => {
                let (stream, upload) = self.upload(payload, started);
                let send = request.send_stream(stream);
                (
                    self.within_timeout(send, Some(&upload), started).await,
                    Some(upload),
                )
            }
        };
        self.metrics
            .upstream_latency
            .with_label_values(&[route.target_url.as_str()])
            .observe(started.elapsed().as_secs_f64());
        if upload.is_some_and(|upload| upload.exceeded.get()) {
            return Err(ForwardError::TooLarge);
        }
        let response = match sent {
            None => {
                crate::spans::finish_outbound(&span, None);
                return Err(ForwardError::Unavailable(
                    "no response within proxy.timeout",
                ));
            }
            Some(Err(SendRequestError::Connect(_))) => {
                crate::spans::finish_outbound(&span, None);
                return Err(ForwardError::Unavailable("cannot connect"));
            }
            Some(Err(_)) => {
                crate::spans::finish_outbound(&span, None);
                return Err(ForwardError::Unavailable("request failed"));
            }
            Some(Ok(response)) => response,
        };
        crate::spans::finish_outbound(&span, Some(response.status().as_u16()));
        if response.status().is_informational() {
            // Only a 101 gets here (other 1xx never reach awc): we never ask for an upgrade.
            // Dropping the response closes the connection.
            return Err(ForwardError::Unavailable(
                "upstream answered 101 Switching Protocols",
            ));
        }
        let rewrite = Rewrite {
            request_url: &url,
            target: &route.target_url,
            public_prefix: &route.public_prefix,
            parameter,
            token,
        };
        Ok(downstream(response, &rewrite))
    }

    /// The `DPOP` transport (SPEC 12): each attempt with a fresh proof for the upstream
    /// method and URL; a `use_dpop_nonce` 401 is sent once more with the target's new
    /// nonce when the body is empty or small enough to have been read whole
    /// ([`DPOP_RETRY_BODY`]); a streamed body goes once.
    async fn forward_dpop(
        &self,
        route: &ProxyRoute,
        prover: ProxyProver<'_>,
        build: impl Fn(Option<HeaderValue>) -> awc::ClientRequest,
        incoming_headers: &HeaderMap,
        mut payload: web::Payload,
        rewrite: &Rewrite<'_>,
    ) -> Result<HttpResponse, ForwardError> {
        let length = body_length(incoming_headers);
        let started = Instant::now();
        let observe = || {
            self.metrics
                .upstream_latency
                .with_label_values(&[route.target_url.as_str()])
                .observe(started.elapsed().as_secs_f64());
        };
        let body = match length {
            Some(length) if length <= DPOP_RETRY_BODY.min(self.max_body) => {
                Some(read_whole(&mut payload, length).await?)
            }
            _ => None,
        };
        let Some(body) = body else {
            let request = build(Some(prover.proof()?));
            let (stream, upload) = self.upload(payload, started);
            let sent = match length {
                Some(length) => {
                    let send = request.send_body(SizedStream::new(length, stream));
                    self.within_timeout(send, Some(&upload), started).await
                }
                None => {
                    let send = request.send_stream(stream);
                    self.within_timeout(send, Some(&upload), started).await
                }
            };
            observe();
            if upload.exceeded.get() {
                return Err(ForwardError::TooLarge);
            }
            let response = answered(sent)?;
            prover.remember(&response);
            return Ok(downstream(response, rewrite));
        };
        let send = build(Some(prover.proof()?)).send_body(body.clone());
        let response = answered(self.within_timeout(send, None, started).await)?;
        let fresh_nonce = prover.remember(&response);
        let demanded = response.status() == actix_web::http::StatusCode::UNAUTHORIZED
            && demands_nonce_header(
                response
                    .headers()
                    .get_all(WWW_AUTHENTICATE)
                    .map(HeaderValue::as_bytes),
            );
        if !(demanded && fresh_nonce) {
            observe();
            return Ok(downstream(response, rewrite));
        }
        let send = build(Some(prover.proof()?)).send_body(body);
        let response = answered(self.within_timeout(send, None, Instant::now()).await)?;
        observe();
        prover.remember(&response);
        Ok(downstream(response, rewrite))
    }

    /// Polls `send` to its answer unless `proxy.timeout` passes first, counted from the
    /// body's last movement (`upload`; without a body, from `started`): `None` then.
    async fn within_timeout<F: Future>(
        &self,
        send: F,
        upload: Option<&Rc<Upload>>,
        started: Instant,
    ) -> Option<F::Output> {
        let timeout = self.timeout;
        let deadline = || upload.map_or(started, |upload| upload.progress.get()) + timeout;
        let mut send = pin!(send);
        let mut sleep = pin!(tokio::time::sleep_until(deadline()));
        poll_fn(|cx| {
            if let Poll::Ready(output) = send.as_mut().poll(cx) {
                return Poll::Ready(Some(output));
            }
            let deadline = deadline();
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            sleep.as_mut().poll(cx).map(|()| None)
        })
        .await
    }

    /// The browser's body as the client reads it, and what it tells about its progress.
    fn upload(&self, payload: web::Payload, started: Instant) -> (Limited, Rc<Upload>) {
        let upload = Rc::new(Upload {
            exceeded: Cell::new(false),
            progress: Cell::new(started),
        });
        let stream = Limited {
            payload,
            total: 0,
            max_body: self.max_body,
            upload: upload.clone(),
        };
        (stream, upload)
    }
}

/// How the upload is going, shared between its stream and the waiting request.
struct Upload {
    /// The body grew past `max_body` (and the stream ended in an error).
    exceeded: Cell<bool>,
    /// When the client last took a chunk (or the end) of the body.
    progress: Cell<Instant>,
}

/// The browser's body, ending in an error (which aborts the upstream request) once it grows
/// past `max_body`; every chunk the client takes is progress.
struct Limited {
    payload: web::Payload,
    total: u64,
    max_body: u64,
    upload: Rc<Upload>,
}

impl Stream for Limited {
    type Item = Result<web::Bytes, Box<dyn std::error::Error>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = match Pin::new(&mut this.payload).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(item) => item,
        };
        this.upload.progress.set(Instant::now());
        Poll::Ready(match item {
            None => None,
            Some(Err(error)) => Some(Err(Box::new(error))),
            Some(Ok(bytes)) => {
                this.total = this.total.saturating_add(bytes.len() as u64);
                if this.total > this.max_body {
                    this.upload.exceeded.set(true);
                    Some(Err(Box::new(TooLarge)))
                } else {
                    Some(Ok(bytes))
                }
            }
        })
    }
}

/// The browser's whole body of declared `length` (at most [`DPOP_RETRY_BODY`]).
async fn read_whole(payload: &mut web::Payload, length: u64) -> Result<web::Bytes, ForwardError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ForwardError::Unavailable("request body broke off"))?;
        body.extend_from_slice(&chunk);
        if body.len() as u64 > length {
            return Err(ForwardError::TooLarge);
        }
    }
    Ok(body.freeze())
}

/// The largest body the `DPOP` transport reads whole so that a nonce retry can resend it
/// (SPEC 12).
pub const DPOP_RETRY_BODY: u64 = 64 * 1024;

/// What a `DPOP` attempt proves and with which key.
struct ProxyProver<'a> {
    key: &'a DpopKey,
    nonce: &'a DpopNonce,
    method: &'a str,
    url: &'a Url,
    token: &'a str,
}

impl ProxyProver<'_> {
    /// A fresh proof for the upstream request, with `ath` and the target's nonce.
    fn proof(&self) -> Result<HeaderValue, ForwardError> {
        let proof = self
            .key
            .proof(
                self.method,
                self.url,
                Some(self.token),
                self.nonce.get().as_deref(),
            )
            .map_err(|_| ForwardError::Unavailable("DPoP proof could not be made"))?;
        HeaderValue::from_str(&proof).map_err(|_| ForwardError::Unavailable("DPoP proof"))
    }

    /// Keeps the target's `DPoP-Nonce`; whether it is new.
    fn remember(&self, response: &awc::ClientResponse) -> bool {
        self.nonce.remember_value(
            response
                .headers()
                .get("dpop-nonce")
                .and_then(|value| value.to_str().ok()),
        )
    }
}

/// The upstream answer, or why there is none (a 101 included: we never ask for one).
fn answered(
    sent: Option<Result<awc::ClientResponse, SendRequestError>>,
) -> Result<awc::ClientResponse, ForwardError> {
    match sent {
        None => Err(ForwardError::Unavailable(
            "no response within proxy.timeout",
        )),
        Some(Err(SendRequestError::Connect(_))) => Err(ForwardError::Unavailable("cannot connect")),
        Some(Err(_)) => Err(ForwardError::Unavailable("request failed")),
        Some(Ok(response)) if response.status().is_informational() => Err(
            ForwardError::Unavailable("upstream answered 101 Switching Protocols"),
        ),
        Some(Ok(response)) => Ok(response),
    }
}

/// The length of the browser's body: `Some(0)` without one, `None` when chunked.
fn body_length(headers: &HeaderMap) -> Option<u64> {
    if headers.contains_key(TRANSFER_ENCODING) {
        return None;
    }
    Some(declared_length(headers).unwrap_or(0))
}

/// The target's answer for the browser, its body streamed as it arrives; `Location` and
/// `Content-Location` go through `rewrite`.
fn downstream(response: awc::ClientResponse, rewrite: &Rewrite<'_>) -> HttpResponse {
    let mut builder = HttpResponse::build(response.status());
    for (name, value) in headers::downstream_response_headers(response.headers()) {
        if name == LOCATION || name == CONTENT_LOCATION {
            if let Some(value) = rewrite.rewrite(value) {
                builder.append_header((name.clone(), value));
            }
            continue;
        }
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
