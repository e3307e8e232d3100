//! A local upstream API for the proxy tests: an actix server on port 0 that records what
//! it received (method, path and query, headers, body length and whether the body had the
//! expected pattern) and answers per path:
//! `/status/<code>` that status with a body; `/silent` nothing for 30 s;
//! `/hold` headers and a first chunk, the rest once [`Upstream::release`] is called;
//! `/download/<bytes>` that many pattern bytes, streamed; `/cookie` Set-Cookie and
//! hop-by-hop headers; anything else 200 `{"echo": true}`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use tokio::sync::Notify;

/// Byte `i` of every test body.
pub fn pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// `length` pattern bytes in chunks of 64 KiB, generated as they are read.
pub fn pattern_stream(
    length: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
    const CHUNK: u64 = 64 * 1024;
    futures_util::stream::unfold(0u64, move |offset| async move {
        (offset < length).then(|| {
            let end = (offset + CHUNK).min(length);
            let chunk: Vec<u8> = (offset..end).map(pattern).collect();
            (Ok(Bytes::from(chunk)), end)
        })
    })
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method.
    pub method: String,
    /// Path and query, as received.
    pub uri: String,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// Body length.
    pub body_length: u64,
    /// Whether every body byte matched [`pattern`].
    pub body_is_pattern: bool,
}

impl Recorded {
    /// Every value of header `name`.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The running upstream.
#[derive(Clone)]
pub struct Upstream {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    requests: Arc<Mutex<Vec<Recorded>>>,
    hold: Arc<Notify>,
}

impl Upstream {
    /// Starts it on a free port.
    pub async fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let hold = Arc::new(Notify::new());
        let data = web::Data::new((requests.clone(), hold.clone()));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(answer))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        Self {
            address: format!("http://127.0.0.1:{port}"),
            requests,
            hold,
        }
    }

    /// What it received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// The one request it received.
    pub fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(requests.len(), 1, "{requests:?}");
        requests[0].clone()
    }

    /// Lets a `/hold` answer finish.
    pub fn release(&self) {
        self.hold.notify_one();
    }
}

type Shared = web::Data<(Arc<Mutex<Vec<Recorded>>>, Arc<Notify>)>;

async fn answer(request: HttpRequest, mut payload: web::Payload, shared: Shared) -> HttpResponse {
    let mut body_length = 0u64;
    let mut body_is_pattern = true;
    while let Some(Ok(chunk)) = payload.next().await {
        for byte in chunk.iter() {
            body_is_pattern &= *byte == pattern(body_length);
            body_length += 1;
        }
    }
    shared.0.lock().unwrap().push(Recorded {
        method: request.method().to_string(),
        uri: request.uri().to_string(),
        headers: request
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
            .collect(),
        body_length,
        body_is_pattern,
    });
    let path = request.path();
    if let Some(code) = path.strip_prefix("/status/") {
        let status = actix_web::http::StatusCode::from_u16(code.parse().unwrap()).unwrap();
        return HttpResponse::build(status)
            .insert_header(("x-upstream", "yes"))
            .body(format!("upstream says {code}"));
    }
    if let Some(length) = path.strip_prefix("/download/") {
        let length: u64 = length.parse().unwrap();
        return HttpResponse::Ok()
            .content_type("application/octet-stream")
            .streaming(pattern_stream(length));
    }
    match path {
        "/silent" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            HttpResponse::Ok().finish()
        }
        "/hold" => {
            let hold = shared.1.clone();
            let first = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(Bytes::from_static(b"first;"))
            });
            let rest = futures_util::stream::once(async move {
                hold.notified().await;
                Ok::<_, std::io::Error>(Bytes::from_static(b"rest"))
            });
            HttpResponse::Ok().streaming(first.chain(rest))
        }
        "/cookie" => HttpResponse::Ok()
            .insert_header(("set-cookie", "upstream=secret; Path=/"))
            .insert_header(("proxy-authenticate", "Basic"))
            .insert_header(("trailer", "x-checksum"))
            .insert_header(("x-kept", "1"))
            .body("ok"),
        _ => HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"echo":true}"#),
    }
}
