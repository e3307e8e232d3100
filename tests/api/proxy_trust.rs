//! Issue 17 points 1 and 6 / SPEC 9: the proxy never crosses answers between users
//! (interim `1xx` responses are consumed), keeps trust headers and dot segments with
//! parameters from reaching the target, keeps its token out of `Location` and
//! `Content-Location`, and bounds the wait for the answer, not the upload. The upstream is
//! written by hand on a raw socket so that it can send what a client library would not
//! (`103` before the answer, a `Location` carrying the token); so is the browser where a
//! client would normalise the request or hide a `1xx`.

use std::net::TcpListener as StdListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use identity_service::startup::Application;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::fake_op::{FakeOp, TestUser};
use crate::helpers::{
    APP_URL, AppOptions, TestApp, browser, config_text, load_config_text, session_cookie, urlencode,
};
use crate::refusal_logs::{LoggedService, one_warning};

/// One request as the raw upstream read it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body_length: usize,
    /// Which connection (in accept order) carried it.
    connection: usize,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A hand-written HTTP/1.1 upstream with keep-alive. It answers by the request path's last
/// segment: `hint-<id>` sends `103 Early Hints`, waits, then `200 answer <id>`;
/// `many-<id>` sends `100`, `102` and a `103` cut into pieces before a `200` also cut;
/// `switch` sends `101`; `loc` answers `301` with `Location` and `Content-Location` taken
/// from the query parameters `l` and `cl` (`{token}` replaced by the token parameter it
/// received); `silent` reads the body and never answers; anything else `200` with the
/// body length it read.
#[derive(Clone)]
struct RawUpstream {
    address: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// With TLS: the PEM of the private CA that signed its certificate.
    ca_pem: Option<String>,
}

impl RawUpstream {
    async fn start() -> Self {
        Self::start_with(None).await
    }

    /// The same over TLS, its certificate (for 127.0.0.1) from a private CA.
    async fn start_tls() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let mut upstream = Self::start_with(Some(acceptor)).await;
        upstream.ca_pem = Some(ca.pem());
        upstream
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let address = format!("{scheme}://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = seen.clone();
        tokio::spawn(async move {
            let mut connection = 0;
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                match tls.clone() {
                    None => {
                        tokio::spawn(serve_connection(stream, connection, shared));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            if let Ok(stream) = acceptor.accept(stream).await {
                                serve_connection(stream, connection, shared).await;
                            }
                        });
                    }
                }
                connection += 1;
            }
        });
        Self {
            address,
            seen,
            ca_pem: None,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one request head (and its `Content-Length` body) from `stream`.
async fn read_request<S: AsyncRead + Unpin>(stream: &mut S, buffer: &mut Vec<u8>) -> Option<Seen> {
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    buffer.drain(..end + 4);
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    while buffer.len() < length {
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    buffer.drain(..length);
    Some(Seen {
        method,
        target,
        headers,
        body_length: length,
        connection: 0,
    })
}

fn final_answer(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    connection: usize,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut buffer = Vec::new();
    while let Some(mut request) = read_request(&mut stream, &mut buffer).await {
        request.connection = connection;
        seen.lock().unwrap().push(request.clone());
        let url = url::Url::parse(&format!("http://x{}", request.target)).unwrap();
        let last = url.path().rsplit('/').next().unwrap_or_default().to_owned();
        let query = |name: &str| {
            url.query_pairs()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.into_owned())
        };
        let pieces: Vec<(String, u64)> = if let Some(id) = last.strip_prefix("hint-") {
            vec![
                (
                    "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n".into(),
                    500,
                ),
                (final_answer("200 OK", &format!("answer {id}")), 0),
            ]
        } else if let Some(id) = last.strip_prefix("many-") {
            vec![
                (
                    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n".into(),
                    50,
                ),
                ("HTT".into(), 50),
                ("P/1.1 103 Early Hints\r\nLi".into(), 50),
                ("nk: </a.js>; rel=preload\r\n\r\nHTTP/1.".into(), 300),
                // The rest of "HTTP/1.1 200 OK…".
                (
                    final_answer("200 OK", &format!("answer {id}"))[7..].to_owned(),
                    0,
                ),
            ]
        } else if last == "switch" {
            vec![(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n"
                    .into(),
                0,
            )]
        } else if last == "loc" {
            let token = query("token")
                .or_else(|| query("access_token"))
                .unwrap_or_default();
            let mut head = "HTTP/1.1 301 Moved Permanently\r\nContent-Length: 0\r\n".to_owned();
            if let Some(location) = query("l") {
                head += &format!("Location: {}\r\n", location.replace("{token}", &token));
            }
            if let Some(location) = query("cl") {
                head += &format!(
                    "Content-Location: {}\r\n",
                    location.replace("{token}", &token)
                );
            }
            vec![(head + "\r\n", 0)]
        } else if last == "silent" {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return;
        } else {
            let length = seen.lock().unwrap().last().unwrap().body_length;
            vec![(final_answer("200 OK", &length.to_string()), 0)]
        };
        for (bytes, pause) in pieces {
            if stream.write_all(bytes.as_bytes()).await.is_err() {
                return;
            }
            stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }
}

/// Targets on the raw upstream: `/api/raw` (Bearer), `/api/rawp` (`?token=`), `/api/rawa`
/// (`?access_token=`).
fn raw_targets(upstream: &RawUpstream, proxy: &str) -> String {
    let up = &upstream.address;
    let tls = upstream.ca_pem.as_ref().map_or(String::new(), |pem| {
        let file = crate::helpers::temp_file("pem", pem);
        format!("[tls]\nca_file = \"{}\"\n", file.display())
    });
    format!(
        r#"
{tls}
[proxy]
{proxy}

[[targets]]
url = "{up}/r/"
strategy = "access_token"
proxy_path = "/api/raw"

[[targets]]
url = "{up}/p/"
strategy = "access_token"
transport = ["TOKEN_PARAMETER"]
proxy_path = "/api/rawp"

[[targets]]
url = "{up}/a"
strategy = "access_token"
transport = ["ACCESS_TOKEN_PARAMETER"]
proxy_path = "/api/rawa"
"#
    )
}

/// The app with ONE worker (so every request shares one upstream pool) in front of `upstream`.
async fn one_worker_app(op: &FakeOp, upstream: &RawUpstream, proxy: &str) -> TestApp {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let options = AppOptions {
        tail: raw_targets(upstream, proxy),
        ..AppOptions::default()
    };
    let text = config_text(op, port, &options).replacen("[server]\n", "[server]\nworkers = 1\n", 1);
    let config = load_config_text(&text).unwrap();
    assert_eq!(config.server.workers, 1);
    let application = Application::build_with_listener(config, listener)
        .await
        .unwrap();
    tokio::spawn(application.run_until_stopped());
    let app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        op: op.clone(),
        client: browser(),
        prefix: options.prefix,
    };
    app.wait_until_ready().await;
    app
}

/// The `name=value` of a fresh session cookie for `user`.
async fn cookie_of(app: &TestApp, user: &TestUser) -> String {
    let response = app.login_with(&browser(), user).await;
    let cookie = session_cookie(&response).unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// An answer read from a raw socket.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl RawAnswer {
    fn header(&self, name: &str) -> Option<String> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one whole answer (the connection is `close`): status, head, body (de-chunked).
async fn read_answer(stream: &mut TcpStream) -> RawAnswer {
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the answer did not end in time")
        .unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut rest = raw[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut body = Vec::new();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
            if size == 0 {
                break;
            }
            body.extend_from_slice(&rest[line_end + 2..line_end + 2 + size]);
            rest.drain(..line_end + 2 + size + 2);
        }
        rest = body;
    }
    RawAnswer {
        status,
        head,
        body: rest,
    }
}

/// Sends `head_extra` and `body` exactly as written (the path is not normalised), the body
/// in `pieces` with `pause` between them; returns the answer.
async fn raw_send(
    app: &TestApp,
    cookie: &str,
    request_line: &str,
    head_extra: &str,
    body: &[u8],
    pieces: usize,
    pause: Duration,
) -> RawAnswer {
    let address = app.address.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    let length = if body.is_empty() && !request_line.starts_with("PUT") {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let head = format!(
        "{request_line} HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\nX-Requested-With: x\r\n{length}{head_extra}Connection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    if !body.is_empty() {
        let size = body.len().div_ceil(pieces);
        for piece in body.chunks(size) {
            if stream.write_all(piece).await.is_err() {
                break;
            }
            tokio::time::sleep(pause).await;
        }
    }
    read_answer(&mut stream).await
}

async fn raw_get(app: &TestApp, cookie: &str, path: &str) -> RawAnswer {
    raw_send(
        app,
        cookie,
        &format!("GET {path}"),
        "",
        &[],
        1,
        Duration::ZERO,
    )
    .await
}

#[tokio::test]
async fn an_early_hint_is_consumed_and_the_next_user_gets_their_own_answer() {
    let upstream = RawUpstream::start().await;
    let op = FakeOp::start().await;
    let app = one_worker_app(&op, &upstream, "").await;
    let alice = cookie_of(&app, &TestUser::alice()).await;
    let bob = cookie_of(&app, &TestUser::bob()).await;
    let mut answers = Vec::new();
    let mut expected = Vec::new();
    for round in 0..3 {
        for (user, cookie) in [("alice", &alice), ("bob", &bob)] {
            let answer = raw_get(&app, cookie, &format!("/api/raw/x/hint-{user}{round}")).await;
            // The interim head's `Link` does not leak into the answer either.
            assert_eq!(answer.header("link"), None, "{answer:?}");
            answers.push((user, answer.status, answer.text()));
            expected.push((user, 200, format!("answer {user}{round}")));
        }
    }
    assert_eq!(answers, expected);
    // Keep-alive still works: the six requests shared one upstream connection.
    let seen = upstream.seen();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert!(seen.iter().all(|s| s.connection == 0), "{seen:?}");
}

#[tokio::test]
async fn an_early_hint_from_an_https_target_is_consumed_too() {
    // TLS is done by our connector, below the filter: the same holds over TLS.
    let upstream = RawUpstream::start_tls().await;
    let op = FakeOp::start().await;
    let app = one_worker_app(&op, &upstream, "").await;
    let alice = cookie_of(&app, &TestUser::alice()).await;
    let bob = cookie_of(&app, &TestUser::bob()).await;
    let mut answers = Vec::new();
    for (user, cookie) in [("alice", &alice), ("bob", &bob), ("alice", &alice)] {
        let answer = raw_get(&app, cookie, &format!("/api/raw/hint-{user}")).await;
        answers.push((user, answer.status, answer.text()));
    }
    assert_eq!(
        answers,
        [
            ("alice", 200, "answer alice".to_owned()),
            ("bob", 200, "answer bob".to_owned()),
            ("alice", 200, "answer alice".to_owned())
        ]
    );
    let seen = upstream.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.connection == 0), "{seen:?}");
    assert_eq!(
        seen[0].header("host"),
        [upstream.address.trim_start_matches("https://")]
    );
}

#[tokio::test]
async fn several_interim_responses_in_pieces_and_an_unsolicited_continue_are_consumed() {
    let upstream = RawUpstream::start().await;
    let op = FakeOp::start().await;
    let app = one_worker_app(&op, &upstream, "").await;
    let alice = cookie_of(&app, &TestUser::alice()).await;
    let bob = cookie_of(&app, &TestUser::bob()).await;
    for round in 0..2 {
        let a = raw_get(&app, &alice, &format!("/api/raw/many-alice{round}")).await;
        let b = raw_get(&app, &bob, &format!("/api/raw/many-bob{round}")).await;
        assert_eq!((a.status, a.text()), (200, format!("answer alice{round}")));
        assert_eq!((b.status, b.text()), (200, format!("answer bob{round}")));
        // Also with a request body (the interim answers come after it).
        let c = raw_send(
            &app,
            &alice,
            &format!("POST /api/raw/many-post{round}"),
            "",
            b"some body",
            1,
            Duration::ZERO,
        )
        .await;
        assert_eq!((c.status, c.text()), (200, format!("answer post{round}")));
        let post = upstream.seen().pop().unwrap();
        assert_eq!((post.method.as_str(), post.body_length), ("POST", 9));
    }
    assert!(upstream.seen().iter().all(|s| s.connection == 0));
}

#[tokio::test]
async fn a_switching_protocols_answer_is_502_and_the_next_user_is_unaffected() {
    let upstream = RawUpstream::start().await;
    let op = FakeOp::start().await;
    let app = one_worker_app(&op, &upstream, "").await;
    let alice = cookie_of(&app, &TestUser::alice()).await;
    let answer = raw_get(&app, &alice, "/api/raw/switch").await;
    assert_eq!(answer.status, 502, "{answer:?}");
    assert!(answer.text().contains("UPSTREAM_UNAVAILABLE"), "{answer:?}");
    let answer = raw_get(&app, &alice, "/api/raw/hint-next").await;
    assert_eq!((answer.status, answer.text()), (200, "answer next".into()));
}

#[tokio::test]
async fn trust_headers_from_the_browser_never_reach_the_target() {
    let upstream = RawUpstream::start().await;
    let op = FakeOp::start().await;
    let app = one_worker_app(&op, &upstream, "").await;
    let alice = cookie_of(&app, &TestUser::alice()).await;
    let forged = [
        ("X-Real-IP", "6.6.6.6"),
        ("True-Client-IP", "6.6.6.6"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Prefix", "/admin"),
        ("X-Forwarded-Server", "evil.example"),
        ("X-Forwarded-Ssl", "on"),
        ("X-Forwarded-Client-Cert", "Hash=1"),
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("Forwarded", "for=6.6.6.6;proto=https"),
    ];
    let extra: String = forged
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let answer = raw_send(
        &app,
        &alice,
        "GET /api/raw/plain",
        &format!("{extra}X-Custom: kept\r\n"),
        &[],
        1,
        Duration::ZERO,
    )
    .await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let seen = upstream.seen().pop().unwrap();
    assert_eq!(seen.target, "/r/plain");
    for (name, _) in forged {
        let name = name.to_ascii_lowercase();
        let values = seen.header(&name);
        match name.as_str() {
            "x-forwarded-for" => assert_eq!(values, ["127.0.0.1"], "{seen:?}"),
            "x-forwarded-proto" => assert_eq!(values, ["http"], "{seen:?}"),
            "x-forwarded-host" => {
                let host = app.address.trim_start_matches("http://");
                assert_eq!(values, [host], "{seen:?}");
            }
            _ => assert!(values.is_empty(), "{name} reached the target: {seen:?}"),
        }
    }
    assert_eq!(seen.header("x-custom"), ["kept"]);
}

#[tokio::test]
async fn dot_segments_with_parameters_are_400_and_never_sent() {
    let upstream = RawUpstream::start().await;
    let op = FakeOp::start().await;
    let app = one_worker_app(&op, &upstream, "").await;
    let alice = cookie_of(&app, &TestUser::alice()).await;
    for path in [
        "/api/raw/..;/p/x",
        "/api/raw/a/..;/..;/p/x",
        "/api/raw/a/..;x/b",
        "/api/raw/.;x/b",
        "/api/raw/.;/b",
        "/api/raw/%2e%2e;/p/x",
        "/api/raw/..%3b/p/x",
        "/api/raw/..%3B/p/x",
        "/api/raw/%2E%2E%3Bjsessionid=1/p/x",
        "/api/raw/.%3bx/b",
        "/api/raw/%2e;x/b",
        "/api/raw/a/..;",
    ] {
        let answer = raw_get(&app, &alice, path).await;
        assert_eq!(answer.status, 400, "{path}: {answer:?}");
        assert!(
            answer.text().contains("INVALID_PARAMETER"),
            "{path}: {answer:?}"
        );
    }
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
    // Parameters on ordinary segments are the target's business.
    let answer = raw_get(&app, &alice, "/api/raw/a;v=1/b;x=2").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(upstream.seen().pop().unwrap().target, "/r/a;v=1/b;x=2");
}

/// The `Location` and `Content-Location` the browser gets for an upstream `301` whose
/// headers are `l` and `cl` (`{token}`: the token the upstream received).
async fn redirect_seen(
    app: &TestApp,
    proxy_path: &str,
    l: &str,
    cl: Option<&str>,
) -> (Option<String>, Option<String>) {
    let mut query = format!("l={}", urlencode(l));
    if let Some(cl) = cl {
        query += &format!("&cl={}", urlencode(cl));
    }
    let response = app
        .client
        .get(app.url(&format!("{proxy_path}/loc?{query}")))
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 301);
    let get = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    (get("location"), get("content-location"))
}

#[tokio::test]
async fn locations_into_the_target_come_back_under_the_proxy_path_without_the_token() {
    let upstream = RawUpstream::start().await;
    let op = FakeOp::start().await;
    let app = one_worker_app(&op, &upstream, "").await;
    app.login(&TestUser::alice()).await;
    let up = &upstream.address;
    let me = &app.address;

    // A directory redirect that copies the query, token included (absolute).
    let (location, content) = redirect_seen(
        &app,
        "/api/rawp/dir",
        &format!("{up}/p/dir/?a=1&token={{token}}&b=%20"),
        Some(&format!("{up}/p/items/7?token={{token}}")),
    )
    .await;
    // The upstream really received a token and put it in the Location.
    let received = upstream.seen().pop().unwrap();
    assert!(received.target.contains("&token=ey"), "{received:?}");
    assert_eq!(location.unwrap(), format!("{me}/api/rawp/dir/?a=1&b=%20"));
    assert_eq!(content.unwrap(), format!("{me}/api/rawp/items/7"));

    // Relative values are resolved against the upstream request URL first.
    let (location, _) =
        redirect_seen(&app, "/api/rawp/x/y", "dir/?token={token}&b=2#top", None).await;
    assert_eq!(location.unwrap(), format!("{me}/api/rawp/x/y/dir/?b=2#top"));
    let (location, _) = redirect_seen(&app, "/api/rawp/x", "/p/abs?token={token}", None).await;
    assert_eq!(location.unwrap(), format!("{me}/api/rawp/abs"));
    let (location, _) = redirect_seen(&app, "/api/rawp/x", "../../p", None).await;
    assert_eq!(location.unwrap(), format!("{me}/api/rawp"));

    // Pointing elsewhere: only the token parameter goes.
    let (location, _) = redirect_seen(
        &app,
        "/api/rawp/x",
        "https://other.example/cb?token={token}&x=1",
        None,
    )
    .await;
    assert_eq!(location.unwrap(), "https://other.example/cb?x=1");
    let (location, _) = redirect_seen(&app, "/api/rawp/x", "/elsewhere?token={token}", None).await;
    assert_eq!(location.unwrap(), "/elsewhere");
    let (location, _) = redirect_seen(
        &app,
        "/api/rawp/x",
        &format!("{up}/q/?token={{token}}&k=v"),
        None,
    )
    .await;
    assert_eq!(location.unwrap(), format!("{up}/q/?k=v"));

    // `access_token=` for that transport; a target URL without a trailing slash.
    let (location, _) = redirect_seen(
        &app,
        "/api/rawa/x",
        &format!("{up}/a/next?access_token={{token}}&token=theirs"),
        None,
    )
    .await;
    assert_eq!(
        location.unwrap(),
        format!("{me}/api/rawa/next?token=theirs")
    );
    let (location, _) = redirect_seen(&app, "/api/rawa/x", &format!("{up}/ab/"), None).await;
    assert_eq!(location.unwrap(), format!("{up}/ab/"));

    // Bearer: the location still comes back under the proxy path.
    let (location, _) = redirect_seen(&app, "/api/raw/x", &format!("{up}/r/y?z=1"), None).await;
    assert_eq!(location.unwrap(), format!("{me}/api/raw/y?z=1"));
}

#[tokio::test]
async fn a_slow_upload_is_not_cut_off_and_a_silent_target_is_502_after_the_body() {
    let upstream = RawUpstream::start().await;
    let op = FakeOp::start().await;
    let app = one_worker_app(&op, &upstream, "timeout = \"1s\"").await;
    let alice = cookie_of(&app, &TestUser::alice()).await;
    let body = vec![b'u'; 300_000];
    // About 2.4 s of upload with a 1 s timeout.
    let started = Instant::now();
    let answer = raw_send(
        &app,
        &alice,
        "PUT /api/raw/upload",
        "",
        &body,
        30,
        Duration::from_millis(80),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(
        (answer.status, answer.text()),
        (200, "300000".into()),
        "after {elapsed:?}"
    );
    assert!(elapsed > Duration::from_secs(2), "{elapsed:?}");

    // The same upload to a target that never answers: 502 about 1 s after the body.
    let started = Instant::now();
    let answer = raw_send(
        &app,
        &alice,
        "PUT /api/raw/silent",
        "",
        &body,
        30,
        Duration::from_millis(80),
    )
    .await;
    let elapsed = started.elapsed();
    assert_eq!(answer.status, 502, "{answer:?}");
    assert!(answer.text().contains("UPSTREAM_UNAVAILABLE"));
    assert_eq!(upstream.seen().pop().unwrap().body_length, 300_000);
    assert!(
        elapsed > Duration::from_millis(2900) && elapsed < Duration::from_millis(6000),
        "{elapsed:?}"
    );
    // Without a body: about the timeout.
    let started = Instant::now();
    let answer = raw_get(&app, &alice, "/api/raw/silent").await;
    assert_eq!(answer.status, 502);
    let elapsed = started.elapsed();
    assert!(
        elapsed > Duration::from_millis(900) && elapsed < Duration::from_millis(3000),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn proxy_refusals_log_one_warn_line_naming_the_check_without_the_token() {
    let upstream = RawUpstream::start().await;
    let op = FakeOp::start().await;
    let mut service = LoggedService::start(
        &op,
        AppOptions {
            store: "memory",
            tail: raw_targets(&upstream, "timeout = \"500ms\""),
            ..AppOptions::default()
        },
    )
    .await;
    let alice = browser();
    let address = service.url("");
    let response = {
        let authorize = alice
            .get(service.url(&format!("/login?returnURL={}", urlencode(APP_URL))))
            .send()
            .await
            .unwrap();
        let callback = op.authorize(&crate::helpers::location(&authorize), &TestUser::alice());
        alice.get(callback).send().await.unwrap()
    };
    let cookie = session_cookie(&response).unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    service.new_warnings().await;
    let app = TestApp {
        address: address.clone(),
        op: op.clone(),
        client: alice.clone(),
        prefix: String::new(),
    };

    let answer = raw_get(&app, &cookie, "/api/raw/..;/p/x").await;
    assert_eq!(answer.status, 400);
    one_warning(
        &mut service,
        "dot segment",
        &["proxy request refused", "dot segment with parameters"],
    )
    .await;

    let answer = raw_get(&app, &cookie, "/api/raw/switch").await;
    assert_eq!(answer.status, 502);
    one_warning(&mut service, "101", &["proxy request refused", "101"]).await;

    let answer = raw_get(&app, &cookie, "/api/rawp/silent").await;
    assert_eq!(answer.status, 502);
    one_warning(
        &mut service,
        "timeout",
        &["proxy request refused", "proxy.timeout"],
    )
    .await;

    let token = upstream
        .seen()
        .iter()
        .find_map(|seen| seen.target.split_once("token=").map(|(_, t)| t.to_owned()))
        .unwrap();
    let log = service.all();
    assert!(!log.contains(&token), "the token is in the log");
    assert!(
        !log.contains(cookie.split_once('=').unwrap().1),
        "the cookie is in the log"
    );
}
