//! The one HTTP client for upstream calls (providers, token endpoints, targets): timeouts,
//! no redirects, and TLS on rustls with the aws-lc-rs crypto provider (the only one built
//! in) trusting the bundled web PKI roots, the system's roots and `[tls] ca_file`; and
//! the roots the Redis client trusts for `rediss://` ([`redis_roots_pem`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::RootCertStore;

use crate::config::{TlsConfig, read_ca_file};

/// Connecting to an upstream may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A whole upstream call may take this long.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the upstream client for `[tls]`.
pub fn build(tls: &TlsConfig) -> Result<reqwest::Client, String> {
    let tls_config = rustls_config(tls)?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(TOTAL_TIMEOUT)
        .user_agent(concat!("identity-service/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|error| format!("cannot build the HTTP client: {error}"))
}

/// The TLS settings of every upstream client (also the API proxy's, one per target).
pub fn rustls_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, String> {
    let roots = root_store(tls.ca_file.as_deref())?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("cannot set up TLS: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The bundled web PKI roots, the system's roots (when it has any) and `ca_file`.
fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let system = rustls_native_certs::load_native_certs();
    if let Some(error) = system.errors.first() {
        tracing::warn!(%error, "some system root certificates could not be read");
    }
    roots.add_parsable_certificates(system.certs);
    if let Some(path) = ca_file {
        for certificate in read_ca_file(path)? {
            roots
                .add(certificate)
                .map_err(|error| format!("tls.ca_file {}: {error}", path.display()))?;
        }
    }
    Ok(roots)
}

/// The roots for `rediss://` when `[tls] ca_file` is set: the system's roots (what the
/// Redis client trusts by itself) and `ca_file`, as one PEM bundle (the form the Redis
/// client takes; its list replaces the system's). `None` without `ca_file`.
pub fn redis_roots_pem(tls: &TlsConfig) -> Result<Option<Vec<u8>>, String> {
    let Some(path) = tls.ca_file.as_deref() else {
        return Ok(None);
    };
    let system = rustls_native_certs::load_native_certs();
    if let Some(error) = system.errors.first() {
        tracing::warn!(%error, "some system root certificates could not be read");
    }
    let mut pem = String::new();
    for certificate in system.certs.iter().chain(read_ca_file(path)?.iter()) {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let encoded = base64::engine::general_purpose::STANDARD.encode(certificate.as_ref());
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(line));
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    Ok(Some(pem.into_bytes()))
}

/// Sends `request` as the outbound call `call` (`discovery`, `jwks`, `token`, `userinfo`,
/// `introspection`, …): with traces on, inside its own span and carrying that span's
/// `traceparent`, so the callee continues the trace. The one place outbound calls of this
/// client are sent from.
pub async fn send(
    request: reqwest::RequestBuilder,
    call: &'static str,
) -> Result<reqwest::Response, reqwest::Error> {
    if !crate::spans::enabled() {
        return request.send().await;
    }
    let (client, request) = request.build_split();
    let mut request = request?;
    let span = crate::spans::outbound(
        call,
        request.method().as_str(),
        request.url().host_str().unwrap_or_default(),
    );
    for (name, value) in crate::spans::context_headers(&span) {
        if let Ok(value) = reqwest::header::HeaderValue::from_str(&value) {
            request.headers_mut().insert(name, value);
        }
    }
    let answer = tracing::Instrument::instrument(client.execute(request), span.clone()).await;
    crate::spans::finish_outbound(
        &span,
        answer
            .as_ref()
            .ok()
            .map(|response| response.status().as_u16()),
    );
    answer
}

/// [`send`] for the `oauth2`/`openidconnect` requests (`request_async(&client)` with
/// `|request| http_client::send_http(http, request, "token")`).
pub async fn send_http(
    http: &reqwest::Client,
    request: openidconnect::HttpRequest,
    call: &'static str,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let request = reqwest::Request::try_from(request)?;
    let response = send(
        reqwest::RequestBuilder::from_parts(http.clone(), request),
        call,
    )
    .await?;
    let mut answer = openidconnect::http::Response::builder().status(response.status());
    if let Some(headers) = answer.headers_mut() {
        *headers = response.headers().clone();
    }
    let body = response.bytes().await?;
    // The builder was given only a status and headers taken from a valid response.
    Ok(answer
        .body(body.to_vec())
        .unwrap_or_else(|_| openidconnect::http::Response::new(Vec::new())))
}
