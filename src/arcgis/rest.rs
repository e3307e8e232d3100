//! One call to a portal's REST API and how its answer is read (SPEC 10): a form POST (a
//! token goes in the body or `X-Esri-Authorization`, never in a URL), a deadline, and
//! ArcGIS's error style — an `error` member is a failure whatever the HTTP status.
//!
//! Reference: "Common parameters" and the error format of the ArcGIS REST API,
//! <https://developers.arcgis.com/rest/users-groups-and-items/common-parameters/>.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Deadline of one portal call.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// Why a portal call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortalError {
    /// The portal said no: an `error` member (codes 498 invalid or expired token, 499 token
    /// required, 400, 403) or an HTTP 4xx.
    #[error("the portal refused the request (code {code})")]
    Refused {
        /// The `error.code` or the HTTP status.
        code: i64,
    },
    /// The portal is down, silent, or answered 5xx (or `error.code` 500 and above).
    #[error("the portal could not be reached or failed ({0})")]
    Unavailable(String),
    /// The answer is not what the operation returns.
    #[error("the portal's answer is unusable ({0})")]
    Unusable(&'static str),
}

impl PortalError {
    /// The portal is down or failing (not a refusal of what we sent).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// POSTs `form` to `url` and reads the answer as `T` (after the `error` member check).
pub async fn post_form<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    deadline: Duration,
) -> Result<T, PortalError> {
    let request = http
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(form)
        .timeout(deadline);
    read(crate::http_client::send(request, "portal").await).await
}

/// GETs `url` (no token in it) and reads the answer as `T`.
pub async fn get<T: DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    deadline: Duration,
) -> Result<T, PortalError> {
    let request = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(deadline);
    read(crate::http_client::send(request, "portal").await).await
}

async fn read<T: DeserializeOwned>(
    sent: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, PortalError> {
    let response = sent.map_err(|error| PortalError::Unavailable(describe(&error)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|error| PortalError::Unavailable(describe(&error)))?;
    let value: Option<Value> = serde_json::from_slice(&body).ok();
    if let Some(code) = value.as_ref().and_then(error_code) {
        return Err(if code >= 500 {
            PortalError::Unavailable(format!("error code {code}"))
        } else {
            PortalError::Refused { code }
        });
    }
    if status.is_server_error() {
        return Err(PortalError::Unavailable(format!(
            "HTTP {}",
            status.as_u16()
        )));
    }
    if !status.is_success() {
        return Err(PortalError::Refused {
            code: i64::from(status.as_u16()),
        });
    }
    let value = value.ok_or(PortalError::Unusable("not JSON"))?;
    serde_json::from_value(value).map_err(|_| PortalError::Unusable("missing or mistyped fields"))
}

/// `error.code` of an ArcGIS error answer (`{"error": {"code": 498, "message": …}}`); an
/// `error` member without a numeric code counts as 400.
fn error_code(value: &Value) -> Option<i64> {
    let error = value.as_object()?.get("error")?;
    if error.is_null() {
        return None;
    }
    Some(error.get("code").and_then(Value::as_i64).unwrap_or(400))
}

/// The kind of transport failure, never the URL (which may name the portal's users).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "no answer in time".to_owned()
    } else if error.is_connect() {
        "connection failed".to_owned()
    } else {
        "transport error".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn any_error_member_is_a_failure() {
        assert_eq!(
            error_code(&json!({"error": {"code": 498, "message": "Invalid token."}})),
            Some(498)
        );
        assert_eq!(error_code(&json!({"error": "nope"})), Some(400));
        assert_eq!(error_code(&json!({"error": null})), None);
        assert_eq!(error_code(&json!({"token": "t"})), None);
    }
}
