//! Request input in our error shape: query parameters (an empty value counts as absent),
//! and the extractor configurations that cap bodies at 64 KiB and turn every malformed
//! input into a 4xx JSON error.

use std::borrow::Cow;

use actix_web::dev::ServiceRequest;
use actix_web::error::{JsonPayloadError, PayloadError, QueryPayloadError, UrlencodedError};
use actix_web::http::header::{CONTENT_LENGTH, HeaderMap};
use actix_web::web;

use crate::error::ApiError;

/// Largest request body we read (SPEC 7).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The 64 KiB cap on declared bodies (SPEC 7): a request whose `Content-Length` says more
/// than [`MAX_BODY_BYTES`] is answered 413 `PAYLOAD_TOO_LARGE` before any handler, so
/// before authentication. The API proxy's paths keep their own cap (`proxy.max_body`).
/// Bodies without a `Content-Length` are still capped by the extractors.
pub struct DeclaredBodyCap {
    /// `<base_path><proxy_path>` of every proxied target.
    proxy_prefixes: Vec<String>,
}

impl DeclaredBodyCap {
    /// The cap for every path but those under `base_path` + one of `proxy_paths`.
    pub fn new<'a>(base_path: &str, proxy_paths: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            proxy_prefixes: proxy_paths
                .into_iter()
                .map(|path| format!("{base_path}{path}"))
                .collect(),
        }
    }

    /// `Err(PAYLOAD_TOO_LARGE)` (logged) for a declared body over the cap.
    pub fn check(&self, request: &ServiceRequest) -> Result<(), ApiError> {
        let Some(length) = declared_length(request.headers()) else {
            return Ok(());
        };
        // The path the router serves (percent-decoded), not its spelling: an encoded
        // proxy path is proxied and an encoded route is capped like its plain spelling.
        let path = request.match_info().as_str();
        let proxied = self.proxy_prefixes.iter().any(|prefix| {
            path.strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        });
        if length <= MAX_BODY_BYTES as u64 || proxied {
            return Ok(());
        }
        tracing::warn!(
            check = "Content-Length over 64 KiB",
            path = %path,
            "request body refused"
        );
        Err(ApiError::PayloadTooLarge)
    }
}

/// The `Content-Length` a request declares (the HTTP layer already refused malformed ones).
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Decoded query or form parameters in order; a name or value that needed no decoding
/// borrows from the text it was parsed from.
#[derive(Debug, Default)]
pub struct Params<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Params<'a> {
    /// Parses `a=1&b=2` (as the `application/x-www-form-urlencoded` rules say; never fails).
    pub fn parse(encoded: &'a str) -> Self {
        Self {
            pairs: form_urlencoded::parse(encoded.as_bytes()).collect(),
        }
    }

    /// The same parameters, owning their text.
    pub fn into_owned(self) -> Params<'static> {
        Params {
            pairs: self
                .pairs
                .into_iter()
                .map(|(name, value)| {
                    (
                        Cow::Owned(name.into_owned()),
                        Cow::Owned(value.into_owned()),
                    )
                })
                .collect(),
        }
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.as_ref())
    }

    /// How many times `name` occurs (empty values included).
    pub fn count(&self, name: &str) -> usize {
        self.pairs.iter().filter(|(key, _)| key == name).count()
    }
}

/// Body-size limit for raw payloads.
pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(MAX_BODY_BYTES)
}

/// Form bodies: 64 KiB, errors in our shape.
pub fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|error, _| match error {
            UrlencodedError::Overflow { .. } | UrlencodedError::Payload(PayloadError::Overflow) => {
                ApiError::PayloadTooLarge.into()
            }
            UrlencodedError::ContentType => ApiError::InvalidParameter(
                "Expected an application/x-www-form-urlencoded body".to_owned(),
            )
            .into(),
            _ => ApiError::InvalidParameter("The form body is malformed".to_owned()).into(),
        })
}

/// JSON bodies: 64 KiB, errors in our shape.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|error, _| match error {
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::PayloadTooLarge.into()
            }
            _ => ApiError::InvalidParameter("The JSON body is malformed".to_owned()).into(),
        })
}

/// Query strings: errors in our shape.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error: QueryPayloadError, _| {
        tracing::debug!(%error, "malformed query");
        ApiError::InvalidParameter("The query string is malformed".to_owned()).into()
    })
}

/// Reads a form body as [`Params`], enforcing the size limit.
pub async fn read_form(
    request: &actix_web::HttpRequest,
    payload: web::Payload,
) -> Result<Params<'static>, ApiError> {
    let content_type = request
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(ApiError::InvalidParameter(
            "Expected an application/x-www-form-urlencoded body".to_owned(),
        ));
    }
    let body = payload
        .to_bytes_limited(MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?
        .map_err(|_| ApiError::InvalidParameter("The body could not be read".to_owned()))?;
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::InvalidParameter("The form body is not UTF-8".to_owned()))?;
    Ok(Params::parse(text).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_absent() {
        let params = Params::parse("returnURL=&provider=local&x=1&x=2");
        assert_eq!(params.get("returnURL"), None);
        assert_eq!(params.get("provider"), Some("local"));
        assert_eq!(params.get("x"), Some("1"));
        assert_eq!(params.count("x"), 2);
    }
}
