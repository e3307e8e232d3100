//! Small value checks shared by the section validators (`validate.rs`, `providers.rs`,
//! `targets.rs`, `operate.rs`). This module depends only on `take.rs`, so the validators
//! can use each other's results without importing one another in a cycle.

use std::time::Duration;

use super::take::{Problems, Section};

/// Keeps `Ok` values and records `Err` messages at `key`.
pub(super) fn checked<T>(p: &mut Problems, key: String, result: Result<T, String>) -> Option<T> {
    match result {
        Ok(v) => Some(v),
        Err(message) => {
            p.push(key, message);
            None
        }
    }
}

/// http(s), a host, no query, fragment or credentials.
pub(super) fn check_http_url(url: &url::Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "must be an http or https URL, not {}:",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err("needs a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    Ok(())
}

/// A duration that must be longer than zero.
pub(super) fn positive(p: &mut Problems, s: &mut Section, key: &str) -> Option<Duration> {
    let d = s.duration(p, key)?;
    if d.is_zero() {
        p.push(s.path_of(key), "must be longer than 0");
        return None;
    }
    Some(d)
}
