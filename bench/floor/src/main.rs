//! Floors for `bench/run`: what actix-web alone costs on this machine, measured in the
//! same run as the service so that every case can be read as a ratio.
//!
//! `bench-floor d BIND WORKERS` answers `GET /` (and any other GET) with a small JSON object.
//! `bench-floor e BIND WORKERS REDIS_URL KEY BYTES` stores BYTES bytes at KEY, then answers
//! `GET /` with one Redis GET of KEY per request (one multiplexed `ConnectionManager` per
//! worker, as the service has) and a small JSON object carrying the value's length.
//! `bench-floor p BIND WORKERS UPSTREAM` forwards every GET to UPSTREAM + its path and
//! query as `bench/proxy.sh`'s nginx floor does (the browser's headers but `Host`,
//! `Connection` and `Cookie`; a fixed `Authorization`; `X-Forwarded-For`), one awc client
//! per worker with keep-alive as the service's proxy has, and streams the answer back
//! (with its length when the upstream gave one): a bare actix-web reverse proxy.

use actix_web::body::SizedStream;
use actix_web::{App, HttpResponse, HttpServer, web};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;

/// The Redis side of floor e.
#[derive(Clone)]
struct Stored {
    key: String,
}

async fn bare() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"authenticated": false, "floor": "d"}))
}

async fn one_get(manager: web::Data<ConnectionManager>, stored: web::Data<Stored>) -> HttpResponse {
    let mut connection = manager.get_ref().clone();
    match connection.get::<_, Option<Vec<u8>>>(&stored.key).await {
        Ok(Some(value)) => HttpResponse::Ok()
            .json(serde_json::json!({"authenticated": true, "bytes": value.len()})),
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().finish(),
    }
}

/// Where floor p forwards to (`http://host:port`, no trailing slash).
#[derive(Clone)]
struct Upstream(String);

async fn forward(
    request: actix_web::HttpRequest,
    client: web::Data<awc::Client>,
    upstream: web::Data<Upstream>,
) -> HttpResponse {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    // What the nginx floor is configured to do: the browser's headers pass, except
    // `Host`, `Connection` and `Cookie`; `Authorization` and `X-Forwarded-For` are ours.
    let mut upstream_request = client.get(format!("{}{path}", upstream.0));
    for (name, value) in request.headers() {
        if !matches!(
            name.as_str(),
            "host" | "connection" | "cookie" | "authorization" | "x-forwarded-for"
        ) {
            upstream_request = upstream_request.append_header((name.clone(), value.clone()));
        }
    }
    if let Some(peer) = request.peer_addr() {
        upstream_request =
            upstream_request.insert_header(("x-forwarded-for", peer.ip().to_string()));
    }
    let sent = upstream_request
        .insert_header(("authorization", "Bearer fixed"))
        .send()
        .await;
    match sent {
        Ok(response) => {
            let mut answer = HttpResponse::build(response.status());
            for (name, value) in response.headers() {
                if !matches!(
                    name.as_str(),
                    "content-length" | "connection" | "transfer-encoding" | "keep-alive"
                ) {
                    answer.append_header((name.clone(), value.clone()));
                }
            }
            let length = response
                .headers()
                .get("content-length")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok());
            match length {
                Some(length) => answer.body(SizedStream::new(length, response)),
                None => answer.streaming(response),
            }
        }
        Err(_) => HttpResponse::BadGateway().finish(),
    }
}

fn usage() -> std::io::Error {
    std::io::Error::other(
        "usage: bench-floor d BIND WORKERS | bench-floor e BIND WORKERS REDIS_URL KEY BYTES \
         | bench-floor p BIND WORKERS UPSTREAM",
    )
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, bind, workers) = match args.as_slice() {
        [mode, bind, workers, ..] => (
            mode.as_str(),
            bind.clone(),
            workers.parse::<usize>().map_err(|_| usage())?,
        ),
        _ => return Err(usage()),
    };
    match mode {
        "d" => {
            // Any other GET gets the same answer: the upstream of bench/run's proxied cases
            // (`--proxy-dpop`), one path per target.
            HttpServer::new(|| {
                App::new()
                    .route("/", web::get().to(bare))
                    .default_service(web::get().to(bare))
            })
            .workers(workers)
            .bind(bind)?
            .run()
            .await
        }
        "e" => {
            let [_, _, _, url, key, bytes] = args.as_slice() else {
                return Err(usage());
            };
            let bytes: usize = bytes.parse().map_err(|_| usage())?;
            let client = redis::Client::open(url.as_str()).map_err(std::io::Error::other)?;
            let mut setup = client
                .get_multiplexed_async_connection()
                .await
                .map_err(std::io::Error::other)?;
            let value = vec![b'x'; bytes];
            let () = setup
                .set_ex(key, value, 3600)
                .await
                .map_err(std::io::Error::other)?;
            let stored = Stored { key: key.clone() };
            HttpServer::new(move || {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(1)));
                let app = App::new().app_data(web::Data::new(stored.clone()));
                let app = match ConnectionManager::new_lazy_with_config(client.clone(), config) {
                    Ok(manager) => app.app_data(web::Data::new(manager)),
                    Err(_) => app,
                };
                app.route("/", web::get().to(one_get))
            })
            .workers(workers)
            .bind(bind)?
            .run()
            .await
        }
        "p" => {
            let [_, _, _, upstream] = args.as_slice() else {
                return Err(usage());
            };
            let upstream = Upstream(upstream.trim_end_matches('/').to_owned());
            HttpServer::new(move || {
                let client = awc::Client::builder()
                    .disable_redirects()
                    .no_default_headers()
                    .finish();
                App::new()
                    .app_data(web::Data::new(client))
                    .app_data(web::Data::new(upstream.clone()))
                    .default_service(web::get().to(forward))
            })
            .workers(workers)
            .bind(bind)?
            .run()
            .await
        }
        _ => Err(usage()),
    }
}
