//! The cookies we set: the session cookie (`ctIDENTITY`, SPEC 7) and the short-lived
//! login cookies, one per login in flight, that carry the sealed pending login to
//! `/callback` and tie its `state` to the browser that started it (SPEC 7: an
//! unauthenticated `/login` stores nothing on the server).

use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite as CookieSameSite, time::Duration as CookieDuration};

use crate::config::{SameSite, SessionConfig};
use crate::session::SessionTicket;

/// A login cookie's lifetime when the configured one does not fit (never in practice).
const LOGIN_COOKIE_FALLBACK_SECONDS: i64 = 600;

/// Most login cookies a `/callback` request may bring before the others are cleared
/// (abandoned logins would otherwise swell the `Cookie` header until they expire).
pub const MAX_LOGIN_COOKIES: usize = 8;

/// Characters of the state's hash in a login cookie's name (base64url: 72 bits).
const LOGIN_NAME_HASH_LEN: usize = 12;

/// Cookie names and attributes from configuration.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    name: String,
    login_name: String,
    path: String,
    callback_path: String,
    secure: bool,
    same_site: CookieSameSite,
}

impl CookieSettings {
    /// Settings for `session` config under `base_path`.
    pub fn new(session: &SessionConfig, base_path: &str) -> Self {
        Self {
            name: session.cookie_name.clone(),
            login_name: format!("{}_login", session.cookie_name),
            path: if base_path.is_empty() {
                "/".to_owned()
            } else {
                base_path.to_owned()
            },
            callback_path: format!("{base_path}/callback"),
            secure: session.cookie_secure,
            same_site: match session.cookie_same_site {
                SameSite::Strict => CookieSameSite::Strict,
                SameSite::Lax => CookieSameSite::Lax,
                SameSite::None => CookieSameSite::None,
            },
        }
    }

    /// The session ticket the request carries, if well-formed.
    /// Reads the `Cookie` headers in place (the first cookie of that name counts), without
    /// building the request's cookie jar: this runs on every authenticated request.
    pub fn ticket(&self, request: &HttpRequest) -> Option<SessionTicket> {
        request
            .headers()
            .get_all(actix_web::http::header::COOKIE)
            .filter_map(|header| std::str::from_utf8(header.as_bytes()).ok())
            .flat_map(|header| header.split(';'))
            // Only the session cookie is parsed (and percent-decoded), not every other one.
            .find_map(|pair| {
                let value = pair
                    .trim_start()
                    .strip_prefix(self.name.as_str())?
                    .trim_start()
                    .strip_prefix('=')?;
                Some((pair, value.trim()))
            })
            .and_then(|(pair, value)| {
                // Our values are plain base64url; a quoted or percent-encoded one is
                // read the way the cookie crate reads it.
                if value.contains(['%', '"']) {
                    let cookie = Cookie::parse_encoded(pair.trim()).ok()?;
                    SessionTicket::parse(cookie.value().trim_matches('"'))
                } else {
                    SessionTicket::parse(value)
                }
            })
    }

    /// Whether the request carries a session cookie at all.
    pub fn has_session_cookie(&self, request: &HttpRequest) -> bool {
        request.cookie(&self.name).is_some()
    }

    /// The cookie that hands `ticket` to the browser.
    pub fn session(&self, ticket: &SessionTicket) -> Cookie<'static> {
        self.build(self.name.clone(), ticket.cookie_value())
    }

    /// The cookie that removes the session cookie.
    pub fn session_removal(&self) -> Cookie<'static> {
        let mut cookie = self.build(self.name.clone(), String::new());
        cookie.make_removal();
        cookie
    }

    /// The name of the login cookie of `state`: `<cookie_name>_login_<hash of state>`,
    /// one per login in flight, so several tabs can log in at once.
    pub fn login_cookie_name(&self, state: &str) -> String {
        let hash = crate::crypto::derive_name("login-cookie", state.as_bytes());
        format!(
            "{}_{}",
            self.login_name,
            hash.get(..LOGIN_NAME_HASH_LEN).unwrap_or(&hash)
        )
    }

    /// The login cookie carrying `value` (a sealed pending login) for `lifetime`: sent
    /// only to `/callback`, HttpOnly, and Lax at most so that the provider's top-level
    /// redirect back carries it.
    pub fn login_cookie(&self, name: String, value: String, lifetime: Duration) -> Cookie<'static> {
        let mut cookie = self.build(name, value);
        cookie.set_path(self.callback_path.clone());
        cookie.set_max_age(CookieDuration::seconds(
            i64::try_from(lifetime.as_secs()).unwrap_or(LOGIN_COOKIE_FALLBACK_SECONDS),
        ));
        if self.same_site == CookieSameSite::Strict {
            cookie.set_same_site(CookieSameSite::Lax);
        }
        cookie
    }

    /// The cookie that removes the login cookie `name`.
    pub fn login_cookie_removal(&self, name: String) -> Cookie<'static> {
        let mut cookie = self.login_cookie(name, String::new(), Duration::ZERO);
        cookie.make_removal();
        cookie
    }

    /// The value of the login cookie `name`, if the request carries it.
    pub fn login_cookie_value(&self, request: &HttpRequest, name: &str) -> Option<String> {
        request
            .cookie(name)
            .map(|cookie| cookie.value().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// Removals for the login cookie `used` (when the request carries it) and, when the
    /// request brings more than [`MAX_LOGIN_COOKIES`], for all the others too.
    pub fn login_cookies_to_clear(
        &self,
        request: &HttpRequest,
        used: Option<&str>,
    ) -> Vec<Cookie<'static>> {
        let names = self.login_cookie_names(request);
        let too_many = names.len() > MAX_LOGIN_COOKIES;
        names
            .into_iter()
            .filter(|name| too_many || Some(name.as_str()) == used)
            .map(|name| self.login_cookie_removal(name))
            .collect()
    }

    /// The names of all login cookies the request carries.
    pub fn login_cookie_names(&self, request: &HttpRequest) -> Vec<String> {
        let prefix = format!("{}_", self.login_name);
        request
            .cookies()
            .map(|cookies| {
                cookies
                    .iter()
                    .map(|cookie| cookie.name())
                    .filter(|name| name.starts_with(&prefix))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn build(&self, name: String, value: String) -> Cookie<'static> {
        Cookie::build(name, value)
            .path(self.path.clone())
            .http_only(true)
            .secure(self.secure)
            .same_site(self.same_site)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(base_path: &str, same_site: SameSite) -> CookieSettings {
        let session = crate::config::SessionConfig {
            cookie_same_site: same_site,
            ..Default::default()
        };
        CookieSettings::new(&session, base_path)
    }

    #[test]
    fn login_cookies_are_named_per_state_and_sent_only_to_the_callback() {
        let settings = settings("/id", SameSite::Strict);
        let name = settings.login_cookie_name("state-a");
        assert!(name.starts_with("ctIDENTITY_login_"), "{name}");
        assert_eq!(name.len(), "ctIDENTITY_login_".len() + LOGIN_NAME_HASH_LEN);
        assert_ne!(name, settings.login_cookie_name("state-b"));
        assert!(!name.contains("state-a"));
        let cookie = settings.login_cookie(name, "v".to_owned(), Duration::from_secs(600));
        assert_eq!(cookie.path(), Some("/id/callback"));
        assert_eq!(cookie.max_age(), Some(CookieDuration::seconds(600)));
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(cookie.same_site(), Some(CookieSameSite::Lax));
        let root = settings_root();
        let cookie = root.login_cookie("n".to_owned(), "v".to_owned(), Duration::from_secs(1));
        assert_eq!(cookie.path(), Some("/callback"));
        let removal = root.login_cookie_removal("n".to_owned());
        assert_eq!(removal.path(), Some("/callback"));
        assert_eq!(removal.max_age(), Some(CookieDuration::ZERO));
    }

    #[test]
    fn the_ticket_is_found_among_other_cookies_with_similar_names() {
        let ticket = SessionTicket::generate().unwrap();
        let value = ticket.cookie_value();
        let request = actix_web::test::TestRequest::default()
            .insert_header((
                "cookie",
                format!("ctIDENTITY_login_abc=x; ctIDENTITYX=y; a=b; ctIDENTITY = {value}; z=1"),
            ))
            .to_http_request();
        let found = settings_root().ticket(&request).unwrap();
        assert_eq!(found.cookie_value(), value);
        let without = actix_web::test::TestRequest::default()
            .insert_header(("cookie", "ctIDENTITYX=y; ctIDENTITY_login_abc=x"))
            .to_http_request();
        assert!(settings_root().ticket(&without).is_none());
    }

    #[test]
    fn a_quoted_or_percent_encoded_ticket_is_read_and_the_first_one_counts() {
        let ticket = SessionTicket::generate().unwrap();
        let value = ticket.cookie_value();
        let encoded = value.replace('.', "%2E");
        for header in [
            format!("ctIDENTITY={encoded}"),
            format!("ctIDENTITY=\"{value}\""),
            format!("ctIDENTITY={value}; ctIDENTITY=other.value"),
        ] {
            let request = actix_web::test::TestRequest::default()
                .insert_header(("cookie", header.clone()))
                .to_http_request();
            let found = settings_root().ticket(&request);
            assert_eq!(
                found.map(|t| t.cookie_value()),
                Some(value.clone()),
                "{header}"
            );
        }
        let first_is_broken = actix_web::test::TestRequest::default()
            .insert_header(("cookie", format!("ctIDENTITY=broken; ctIDENTITY={value}")))
            .to_http_request();
        assert!(settings_root().ticket(&first_is_broken).is_none());
    }

    fn settings_root() -> CookieSettings {
        settings("", SameSite::Lax)
    }
}
