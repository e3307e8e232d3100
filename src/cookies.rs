//! The cookies we set: the session cookie (`ctIDENTITY`, SPEC 7) and the short-lived
//! login-binding cookie that ties a login's `state` to the browser that started it.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite as CookieSameSite, time::Duration as CookieDuration};

use crate::config::{SameSite, SessionConfig};
use crate::session::SessionTicket;

/// How long the login-binding cookie lives (as long as a pending login).
const LOGIN_BINDING_SECONDS: i64 = 600;

/// Cookie names and attributes from configuration.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    name: String,
    login_name: String,
    path: String,
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
            secure: session.cookie_secure,
            same_site: match session.cookie_same_site {
                SameSite::Strict => CookieSameSite::Strict,
                SameSite::Lax => CookieSameSite::Lax,
                SameSite::None => CookieSameSite::None,
            },
        }
    }

    /// The session ticket the request carries, if well-formed.
    pub fn ticket(&self, request: &HttpRequest) -> Option<SessionTicket> {
        SessionTicket::parse(request.cookie(&self.name)?.value())
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

    /// The login-binding value the request carries.
    pub fn login_binding(&self, request: &HttpRequest) -> Option<String> {
        request
            .cookie(&self.login_name)
            .map(|cookie| cookie.value().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// The cookie carrying a login-binding value; Lax at most, so the provider's
    /// top-level redirect back to `/callback` carries it.
    pub fn login_binding_cookie(&self, value: String) -> Cookie<'static> {
        let mut cookie = self.build(self.login_name.clone(), value);
        cookie.set_max_age(CookieDuration::seconds(LOGIN_BINDING_SECONDS));
        if self.same_site == CookieSameSite::Strict {
            cookie.set_same_site(CookieSameSite::Lax);
        }
        cookie
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
