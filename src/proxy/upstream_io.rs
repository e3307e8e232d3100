//! The proxy's upstream connections (SPEC 9, "Interim `1xx` responses … are consumed"):
//! a connector for awc that opens the TCP connection, does the TLS handshake itself for an
//! `https` target, and hands awc an [`UpstreamIo`] that removes interim response heads
//! from the byte stream before awc's HTTP/1.1 parser sees them.
//!
//! Why at the byte level: awc 3 (actix-http's `h1::ClientCodec`) takes a `1xx` head as
//! the final response. It answers the browser with it and, since a `1xx` has no body,
//! puts the connection back into its keep-alive pool while the real answer is still on
//! its way — the next request on that connection then reads the previous user's answer.
//! awc has no hook to skip informational responses, so [`UpstreamIo`] does it underneath:
//!
//! - **Where a response starts.** awc speaks HTTP/1.1 without pipelining: it writes a
//!   whole request (head and body; we never send `Expect`, so it reads nothing before the
//!   body is sent), then reads one whole response, and only then may the connection go
//!   back to the pool. So the first byte read after a write is the first byte of the
//!   response to that request: a write after the previous response switches the reader
//!   back to [`Read::Start`]. A connection also starts there.
//! - **What is removed.** At the start of a response, empty lines (which the parser would
//!   skip too) are dropped, then the status line's first 12 bytes are looked at:
//!   `HTTP/1.x 1dd` other than `101` is an interim response, and its head — up to and
//!   including the empty line that ends it (RFC 9110 15.2: an interim response has no
//!   content) — is dropped; then the next response starts. Anything else is the final
//!   response, and from there every byte passes untouched until the next request is
//!   written. A `101` is passed on (we never ask for an upgrade; the proxy answers 502).
//! - **Bytes are never invented or reordered.** Bytes of a status line that arrive before
//!   the 12 needed are held back (in a 12-byte array) until the decision, then handed on
//!   first; nothing is allocated. The common path — a final response — costs one 12-byte comparison per
//!   response and no copy.
//! - **Keep-alive stays sound.** A connection goes back to the pool only once awc has
//!   read a final response to its end; one whose answer was cut short (timeout, browser
//!   gone) is dropped with its request, and awc's pool check drops one with unread bytes.
//!
//! TLS is done here rather than by awc so that this filter sits above it, on the plain
//! HTTP bytes: the route's client is built for its target's scheme, and an `https` target
//! is requested from awc as `http://host:port` (see [`wire_uri`]) — the request line
//! (origin form) and `Host` are the same either way.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use actix_web::dev::Service;
use actix_web::http::Uri;
use actix_web::rt::net::{ActixStream, Ready, TcpStream};
use futures_util::future::LocalBoxFuture;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use url::Url;

/// How many bytes of a status line decide whether it is interim: `HTTP/1.1 103`.
const STATUS_PREFIX: usize = 12;

/// Where the reader is in the stream of responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// Before the first byte of a response's status line.
    Start,
    /// Inside an interim response's head, being dropped; `line` counts the bytes of the
    /// current line (without `\r`): an empty line ends the head.
    Interim { line: usize },
    /// Inside the final response: bytes pass untouched.
    Final,
}

/// Whether `prefix` (12 bytes) begins the status line of an interim response to drop.
fn is_interim(prefix: &[u8]) -> bool {
    matches!(
        prefix,
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'0' | b'1', b' ', b'1', tens, ones]
            if tens.is_ascii_digit() && ones.is_ascii_digit() && (*tens, *ones) != (b'0', b'1')
    )
}

/// The plain or TLS stream underneath.
enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// The reading side's state machine (see the module documentation).
struct Interims {
    read: Read,
    /// Bytes of a status line held back until [`STATUS_PREFIX`] of them decide.
    held: [u8; STATUS_PREFIX],
    held_len: usize,
}

/// One upstream connection as awc sees it: interim responses removed (see the module
/// documentation).
pub struct UpstreamIo {
    transport: Transport,
    interims: Interims,
}

impl fmt::Debug for UpstreamIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamIo")
            .field("tls", &matches!(self.transport, Transport::Tls(_)))
            .field("read", &self.interims.read)
            .finish_non_exhaustive()
    }
}

impl UpstreamIo {
    fn new(transport: Transport) -> Self {
        Self {
            transport,
            interims: Interims::new(),
        }
    }

    fn tcp(&self) -> &TcpStream {
        match &self.transport {
            Transport::Plain(tcp) => tcp,
            Transport::Tls(tls) => tls.get_ref().0,
        }
    }

    fn poll_inner_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.transport {
            Transport::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl Interims {
    fn new() -> Self {
        Self {
            read: Read::Start,
            held: [0; STATUS_PREFIX],
            held_len: 0,
        }
    }

    /// Runs the response-start state machine over `region` (freshly read bytes, the held
    /// ones first) and moves the bytes the parser is to see to its front; returns their
    /// number. Bytes of an undecided status line at the end are moved into `held`.
    fn filter(&mut self, region: &mut [u8]) -> usize {
        let mut at = 0;
        while let Some(&byte) = region.get(at) {
            match self.read {
                Read::Final => break,
                Read::Interim { line } => {
                    self.read = match byte {
                        b'\n' if line == 0 => Read::Start,
                        b'\n' => Read::Interim { line: 0 },
                        b'\r' => Read::Interim { line },
                        _ => Read::Interim { line: line + 1 },
                    };
                    at += 1;
                }
                // Empty lines before a status line are skipped (as the parser would).
                Read::Start if byte == b'\r' || byte == b'\n' => at += 1,
                Read::Start => {
                    let line = region.get(at..).unwrap_or_default();
                    if line.iter().take(STATUS_PREFIX).any(|&b| b == b'\n') {
                        // Too short for a status line: the parser will say what it is.
                        self.read = Read::Final;
                    } else {
                        match line.get(..STATUS_PREFIX) {
                            Some(prefix) if is_interim(prefix) => {
                                self.read = Read::Interim { line: 0 };
                            }
                            Some(_) => self.read = Read::Final,
                            None => {
                                if let Some(held) = self.held.get_mut(..line.len()) {
                                    held.copy_from_slice(line);
                                    self.held_len = line.len();
                                }
                                return 0;
                            }
                        }
                    }
                }
            }
        }
        if self.read != Read::Final {
            return 0;
        }
        if at > 0 {
            // Everything before `at` was interim: the final response moves to the front.
            region.copy_within(at.., 0);
        }
        region.len() - at
    }

    /// A request is being written: the next byte read starts its response.
    fn on_write(&mut self, written: usize) {
        if written > 0 && self.read == Read::Final {
            self.read = Read::Start;
        }
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.interims.read == Read::Final {
                return this.poll_inner_read(cx, buf);
            }
            let start = buf.filled().len();
            let held = this.interims.held_len;
            if buf.remaining() <= held {
                // awc's reader always offers kilobytes; a reader this small cannot be served
                // without holding more than a status line back.
                return Poll::Ready(Err(io::Error::other(
                    "read buffer too small at the start of a response",
                )));
            }
            // The held bytes go first and are looked at again with what follows them.
            buf.put_slice(this.interims.held.get(..held).unwrap_or_default());
            match this.poll_inner_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                other => {
                    buf.set_filled(start);
                    return other;
                }
            }
            let end = buf.filled().len();
            if end == start + held {
                // End of stream: hand over what was held; the parser reports the truncation.
                this.interims.held_len = 0;
                this.interims.read = Read::Final;
                return Poll::Ready(Ok(()));
            }
            this.interims.held_len = 0;
            let kept = buf
                .filled_mut()
                .get_mut(start..end)
                .map_or(0, |region| this.interims.filter(region));
            buf.set_filled(start + kept);
            if kept > 0 {
                return Poll::Ready(Ok(()));
            }
            // Everything read was interim (or is held): read on.
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = match &mut this.transport {
            Transport::Plain(tcp) => Pin::new(tcp).poll_write(cx, data),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, data),
        };
        if let Poll::Ready(Ok(written)) = result {
            this.interims.on_write(written);
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = match &mut this.transport {
            Transport::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, data),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, data),
        };
        if let Poll::Ready(Ok(written)) = result {
            this.interims.on_write(written);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        match &self.transport {
            Transport::Plain(tcp) => tcp.is_write_vectored(),
            Transport::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().transport {
            Transport::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Transport::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

impl ActixStream for UpstreamIo {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_read_ready(self.tcp(), cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        ActixStream::poll_write_ready(self.tcp(), cx)
    }
}

/// awc's connector for one route: TCP (actix-tls's resolver and connector), TLS for an
/// `https` target, then [`UpstreamIo`]. awc bounds the whole call by its connect timeout.
#[derive(Clone)]
pub struct UpstreamConnector {
    tcp: actix_tls::connect::ConnectorService,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl UpstreamConnector {
    /// A connector that speaks TLS with `tls` when given, plain TCP otherwise.
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>) -> Self {
        Self {
            tcp: actix_tls::connect::Connector::default().service(),
            tls: tls.map(tokio_rustls::TlsConnector::from),
        }
    }
}

impl Service<ConnectInfo<Uri>> for UpstreamConnector {
    type Response = Connection<Uri, UpstreamIo>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_web::dev::always_ready!();

    fn call(&self, info: ConnectInfo<Uri>) -> Self::Future {
        let host = info
            .hostname()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let connecting = self.tcp.call(info);
        let tls = self.tls.clone();
        Box::pin(async move {
            let connection = connecting.await?;
            let (tcp, connection) = connection.replace_io(());
            let transport = match tls {
                None => Transport::Plain(tcp),
                Some(tls) => {
                    let name =
                        ServerName::try_from(host).map_err(|_| ConnectError::InvalidInput)?;
                    let stream = tls.connect(name, tcp).await.map_err(ConnectError::Io)?;
                    Transport::Tls(Box::new(stream))
                }
            };
            let (_, connection) = connection.replace_io(UpstreamIo::new(transport));
            Ok(connection)
        })
    }
}

/// The URI awc is given for `url`: itself for an `http` target; for an `https` one the same
/// place as `http://host:port` (with the port written out), since TLS is this connector's
/// business (see the module documentation).
pub fn wire_uri(url: &Url, tls: bool) -> Option<Uri> {
    if !tls {
        return Uri::try_from(url.as_str()).ok();
    }
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    let rest = &url[url::Position::BeforePath..];
    Uri::try_from(format!("http://{host}:{port}{rest}")).ok()
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )]
    use super::*;

    /// What the parser sees when `pieces` arrive one read at a time, after one write.
    fn through(pieces: &[&[u8]]) -> Vec<u8> {
        let mut interims = Interims::new();
        let mut out = Vec::new();
        for piece in pieces {
            let mut region = [&interims.held[..interims.held_len], piece].concat();
            interims.held_len = 0;
            let kept = interims.filter(&mut region);
            out.extend_from_slice(&region[..kept]);
        }
        out
    }

    #[test]
    fn interim_heads_are_removed_whole_and_final_bytes_pass() {
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        assert_eq!(through(&[answer]), answer);
        let with_hint = [
            &b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"[..],
            &answer[..],
        ]
        .concat();
        assert_eq!(through(&[&with_hint]), answer);
        // Byte by byte, with several interim heads, bare LF and a leading empty line.
        let many = [
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 102 Processing\n\n\r\nHTTP/1.1 199 X\r\nA: b\r\n\r\n"[..],
            &answer[..],
        ]
        .concat();
        let bytes: Vec<&[u8]> = many.chunks(1).collect();
        assert_eq!(through(&bytes), answer);
        let pieces: Vec<&[u8]> = many.chunks(5).collect();
        assert_eq!(through(&pieces), answer);
    }

    #[test]
    fn switching_protocols_and_junk_are_left_to_the_parser() {
        let switch = b"HTTP/1.1 101 Switching Protocols\r\n\r\n";
        assert_eq!(through(&[switch]), switch);
        assert_eq!(through(&[b"garbage\r\n"]), b"garbage\r\n");
        assert_eq!(through(&[b"HTTP/1.1 1xx\r\n"]), b"HTTP/1.1 1xx\r\n");
        // The body of a final answer is never looked at, even when it looks like a head.
        let answer = b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\n";
        assert_eq!(through(&[answer]), answer);
    }

    #[test]
    fn status_classes() {
        assert!(is_interim(b"HTTP/1.1 103"));
        assert!(is_interim(b"HTTP/1.0 100"));
        assert!(!is_interim(b"HTTP/1.1 101"));
        assert!(!is_interim(b"HTTP/1.1 200"));
        assert!(!is_interim(b"HTTP/2.0 100"));
    }

    #[test]
    fn https_targets_are_asked_for_as_http_with_the_port() {
        let url = Url::parse("https://api.example.com/v1/x?a=1").unwrap();
        assert_eq!(
            wire_uri(&url, true).unwrap().to_string(),
            "http://api.example.com:443/v1/x?a=1"
        );
        let url = Url::parse("http://127.0.0.1:8080/v1/").unwrap();
        assert_eq!(
            wire_uri(&url, false).unwrap().to_string(),
            "http://127.0.0.1:8080/v1/"
        );
    }
}
