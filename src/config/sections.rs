//! The plain sections of the validated configuration: `[server]`, `[session]`,
//! `[redirects]` and `[cors]`, with their built-in defaults and masked output.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::{duration, secret};
use crate::origin::OriginPattern;

/// `[server]`.
#[derive(Debug, Clone, Serialize)]
pub struct ServerConfig {
    /// Listen address, `host:port`.
    pub bind: String,
    /// How browsers and providers reach the service: http(s), no query or fragment.
    pub public_url: url::Url,
    /// `""` or `/x/y`: leading slash, no trailing slash.
    pub base_path: String,
    /// Worker threads; 0 = one per core.
    pub workers: usize,
    /// Networks whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// A folder whose templates override the built-in ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templates_dir: Option<PathBuf>,
    /// A second listener, `host:port`, that alone serves `/metrics` (and detailed
    /// readiness); `None`: metrics on the main listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_bind: Option<String>,
}

/// The built-in public URL.
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

#[expect(
    clippy::unreachable,
    reason = "a constant that parses; the defaults test pins it"
)]
fn default_public_url() -> url::Url {
    match url::Url::parse(DEFAULT_PUBLIC_URL) {
        Ok(url) => url,
        // A constant that parses; the defaults test pins it.
        Err(e) => unreachable!("DEFAULT_PUBLIC_URL does not parse: {e}"),
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: default_public_url(),
            base_path: String::new(),
            workers: 0,
            trusted_proxies: Vec::new(),
            templates_dir: None,
            metrics_bind: None,
        }
    }
}

/// Where sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// In this process only.
    Memory,
    /// In Redis (shared by instances).
    Redis,
}

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (needs `Secure`).
    None,
}

/// `[session]`. `Debug` and `Serialize` mask a password in `redis_url`.
#[derive(Clone, Serialize)]
pub struct SessionConfig {
    /// Session store.
    pub store: StoreKind,
    /// Redis URL (`redis://`, `rediss://`, `redis+cluster://`, `redis+sentinel://`); may hold a password.
    #[serde(serialize_with = "serialize_redis_url")]
    pub redis_url: String,
    /// Prefix of every Redis key.
    pub key_prefix: String,
    /// Session cookie name.
    pub cookie_name: String,
    /// `Secure` cookie attribute (`"auto"` resolved: true unless public_url is http).
    pub cookie_secure: bool,
    /// `SameSite` cookie attribute.
    pub cookie_same_site: SameSite,
    /// A session unused this long ends.
    #[serde(serialize_with = "duration::serialize")]
    pub idle_timeout: Duration,
    /// A session ends this long after login, used or not.
    #[serde(serialize_with = "duration::serialize")]
    pub max_lifetime: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            store: StoreKind::Memory,
            redis_url: "redis://127.0.0.1:6379".into(),
            key_prefix: "identity:".into(),
            cookie_name: "ctIDENTITY".into(),
            cookie_secure: false,
            cookie_same_site: SameSite::Lax,
            idle_timeout: Duration::from_secs(30 * 60),
            max_lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("store", &self.store)
            .field("redis_url", &mask_url_password(&self.redis_url))
            .field("key_prefix", &self.key_prefix)
            .field("cookie_name", &self.cookie_name)
            .field("cookie_secure", &self.cookie_secure)
            .field("cookie_same_site", &self.cookie_same_site)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .finish()
    }
}

/// The URL with its password, if any, replaced by `***` (for logs and output).
pub fn mask_url_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Cannot fail: only URLs that cannot hold a password refuse one, and this one holds one.
            let _ = parsed.set_password(Some(secret::MASK));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        // Unparsable (e.g. a cluster list `redis+cluster://a,b`): mask everything between `:` and `@`.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(start), Some(at)) if at > start + 3 => {
                let userinfo = &url[start + 3..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => {
                        format!("{}{user}:{}{}", &url[..start + 3], secret::MASK, &url[at..])
                    }
                    None => url.to_owned(),
                }
            }
            _ => url.to_owned(),
        },
    }
}

fn serialize_redis_url<S: Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mask_url_password(url))
}

/// `[redirects]`: where `returnURL` may point (SPEC section 4).
#[derive(Debug, Clone, Serialize)]
pub struct RedirectsConfig {
    /// Origins (patterns) that absolute return URLs may have.
    #[serde(serialize_with = "serialize_patterns")]
    pub allowed_origins: Vec<OriginPattern>,
    /// Whether relative return URLs (`/app`) are allowed.
    pub allow_relative: bool,
}

impl Default for RedirectsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allow_relative: true,
        }
    }
}

/// `[cors]`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CorsConfig {
    /// Frontend origins (patterns) allowed to call the API with credentials.
    #[serde(serialize_with = "serialize_patterns")]
    pub allowed_origins: Vec<OriginPattern>,
}

fn serialize_patterns<S: Serializer>(patterns: &[OriginPattern], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(patterns.iter().map(OriginPattern::as_str))
}
