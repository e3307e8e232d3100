//! Validation: turns the layered table into [`Config`], section by section,
//! recording every problem instead of stopping at the first (defaults from SPEC
//! section 3). Providers and targets have their own files; cross-references
//! (target -> provider id, duplicate ids and urls) are checked here.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use toml::{Table, Value};

use super::checks::{check_http_url, checked, positive};
use super::operate;
use super::providers::provider;
use super::take::{Problems, Section};
use super::targets::target;
use super::{
    AdminConfig, BackchannelConfig, Config, CorsConfig, RedirectsConfig, SameSite, ServerConfig,
    SessionConfig, SigningConfig, StoreKind, TargetConfig,
};
use crate::origin::OriginPattern;

/// Builds the whole configuration. `None` (or problems recorded) means invalid.
pub(crate) fn config(table: Table, p: &mut Problems) -> Option<Config> {
    let mut root = Section::root(table);
    let server = server(root.section(p, "server"), p);
    let session = session(root.section(p, "session"), p, &server.public_url);
    let redirects = redirects(root.section(p, "redirects"), p);
    let cors = cors(root.section(p, "cors"), p);

    let mut provider_ids: Vec<(String, String)> = Vec::new();
    let mut providers = Vec::new();
    let mut providers_ok = true;
    for section in root.sections(p, "providers") {
        let path = section.path().to_owned();
        let (id, provider) = provider(section, p);
        if let Some(id) = id {
            let id_path = format!("{path}.id");
            match provider_ids.iter().find(|(seen, _)| seen.eq_ignore_ascii_case(&id)) {
                Some((_, first)) => p.push(
                    id_path,
                    format!("duplicate provider id \"{id}\" (also {first}; ids are compared ignoring case)"),
                ),
                None => provider_ids.push((id, id_path)),
            }
        }
        match provider {
            Some(provider) => providers.push(provider),
            None => providers_ok = false,
        }
    }

    // FAPI 2.0 (SPEC 12): the redirect URI, under `public_url`, uses https.
    if let Some(fapi) = providers
        .iter()
        .find(|provider| provider.profile == super::Profile::Fapi2)
        && let Err(problem) = super::providers::check_https_or_loopback(&server.public_url)
    {
        p.push(
            "server.public_url",
            format!(
                "{problem}: provider \"{}\" has profile \"fapi2\", whose redirect URI must be https (SPEC 12)",
                fapi.id
            ),
        );
    }

    let log = operate::log(root.section(p, "log"), p);
    let limits = operate::limits(root.section(p, "limits"), p);
    let tls = operate::tls(root.section(p, "tls"), p);
    let backchannel = backchannel(root.section(p, "backchannel"), p);
    let signing = signing(root.section(p, "signing"), p);
    let telemetry = operate::telemetry(root.section(p, "telemetry"), p);

    let ids: Vec<&str> = provider_ids.iter().map(|(id, _)| id.as_str()).collect();
    let mut targets: Vec<TargetConfig> = Vec::new();
    let mut targets_ok = true;
    let mut target_urls: Vec<(String, String)> = Vec::new();
    for section in root.sections(p, "targets") {
        let path = section.path().to_owned();
        match target(section, p, &ids) {
            Some(target) => {
                let url = target.url.as_str().to_owned();
                match target_urls.iter().find(|(seen, _)| *seen == url) {
                    Some((_, first)) => p.push(
                        format!("{path}.url"),
                        format!("duplicate target url (also {first})"),
                    ),
                    None => target_urls.push((url, format!("{path}.url"))),
                }
                targets.push(target);
            }
            None => targets_ok = false,
        }
    }
    let proxy_paths: Vec<(String, String)> = targets
        .iter()
        .enumerate()
        .filter_map(|(i, t)| Some((t.proxy_path.clone()?, format!("targets[{i}].proxy_path"))))
        .collect();
    super::proxy::check_proxy_paths(&proxy_paths, p);
    let proxy = super::proxy::proxy(root.section(p, "proxy"), p);
    let admin = admin(root.section(p, "admin"), p);
    root.finish(p);

    (providers_ok && targets_ok).then_some(Config {
        server,
        session,
        redirects,
        cors,
        providers,
        backchannel,
        signing,
        targets,
        proxy,
        log,
        limits,
        tls,
        admin,
        telemetry,
    })
}

fn server(mut s: Section, p: &mut Problems) -> ServerConfig {
    let d = ServerConfig::default();
    let bind = s
        .string(p, "bind")
        .and_then(|b| checked(p, s.path_of("bind"), check_bind(&b).map(|()| b)))
        .unwrap_or(d.bind);
    let public_url = if s.has("public_url") {
        s.required_url(p, "public_url")
            .and_then(|u| checked(p, s.path_of("public_url"), check_public_url(u)))
            .unwrap_or(d.public_url)
    } else {
        d.public_url
    };
    let base_path = s
        .string(p, "base_path")
        .and_then(|b| checked(p, s.path_of("base_path"), check_base_path(&b)))
        .unwrap_or(d.base_path);
    let workers = s.usize(p, "workers").unwrap_or(d.workers);
    let trusted_proxies = s
        .parsed_list(p, "trusted_proxies", parse_net)
        .unwrap_or(d.trusted_proxies);
    let metrics_bind = s.opt_string(p, "metrics_bind").and_then(|m| {
        let result = check_bind(&m).and_then(|()| {
            if m == bind {
                Err("must differ from server.bind".to_owned())
            } else {
                Ok(m)
            }
        });
        checked(p, s.path_of("metrics_bind"), result)
    });
    let templates_dir = s.opt_string(p, "templates_dir").and_then(|dir| {
        let path = PathBuf::from(dir);
        let result = if path.is_dir() {
            Ok(path)
        } else {
            Err(format!("{} is not a readable directory", path.display()))
        };
        checked(p, s.path_of("templates_dir"), result)
    });
    s.finish(p);
    ServerConfig {
        bind,
        public_url,
        base_path,
        workers,
        trusted_proxies,
        templates_dir,
        metrics_bind,
    }
}

fn check_bind(bind: &str) -> Result<(), String> {
    if bind.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let usage = format!("\"{bind}\" is not host:port, e.g. \"127.0.0.1:8080\" or \"[::]:8080\"");
    let (host, port) = bind.rsplit_once(':').ok_or_else(|| usage.clone())?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if !host_ok || port.parse::<u16>().is_err() {
        return Err(usage);
    }
    Ok(())
}

fn check_public_url(mut url: url::Url) -> Result<url::Url, String> {
    check_http_url(&url)?;
    if url.path() != "/" && url.path().ends_with('/') {
        let trimmed = url.path().trim_end_matches('/').to_owned();
        url.set_path(if trimmed.is_empty() { "/" } else { &trimmed });
    }
    Ok(url)
}

fn check_base_path(path: &str) -> Result<String, String> {
    if path.is_empty() || path == "/" {
        return Ok(String::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("\"{path}\" must start with \"/\" (or be \"\")"));
    };
    if rest.ends_with('/') {
        return Err(format!("\"{path}\" must not end with \"/\""));
    }
    for segment in rest.split('/') {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@%".contains(c);
        if segment.is_empty() || segment == "." || segment == ".." || !segment.chars().all(allowed)
        {
            return Err(format!(
                "\"{path}\" is not a plain URL path like \"/auth\" or \"/x/y\""
            ));
        }
    }
    Ok(path.to_owned())
}

fn parse_net(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| {
            format!("\"{text}\" is not an IP address or CIDR network (e.g. \"10.0.0.0/8\")")
        })
}

const STORES: [(&str, StoreKind); 2] = [("memory", StoreKind::Memory), ("redis", StoreKind::Redis)];
const SAME_SITES: [(&str, SameSite); 3] = [
    ("strict", SameSite::Strict),
    ("lax", SameSite::Lax),
    ("none", SameSite::None),
];
const REDIS_SCHEMES: [&str; 4] = [
    "redis://",
    "rediss://",
    "redis+cluster://",
    "redis+sentinel://",
];

fn session(mut s: Section, p: &mut Problems, public_url: &url::Url) -> SessionConfig {
    let d = SessionConfig::default();
    let store = s.choice(p, "store", &STORES).unwrap_or(d.store);
    let redis_url = s.string(p, "redis_url").unwrap_or(d.redis_url);
    if store == StoreKind::Redis
        && !REDIS_SCHEMES
            .iter()
            .any(|scheme| redis_url.starts_with(scheme))
    {
        // The URL itself is not repeated: it may hold a password.
        p.push(
            s.path_of("redis_url"),
            format!(
                "must start with {} when store = \"redis\"",
                REDIS_SCHEMES.join(", ")
            ),
        );
    }
    let key_prefix = s.string(p, "key_prefix").unwrap_or(d.key_prefix);
    let cookie_name = s.string(p, "cookie_name").and_then(|name| {
        checked(
            p,
            s.path_of("cookie_name"),
            check_cookie_name(&name).map(|()| name),
        )
    });
    let cookie_secure_path = s.path_of("cookie_secure");
    let auto_secure = public_url.scheme() == "https";
    let cookie_secure = match s.take("cookie_secure") {
        None => auto_secure,
        Some(Value::Boolean(b)) => b,
        Some(Value::String(text)) if text == "auto" => auto_secure,
        Some(_) => {
            p.push(cookie_secure_path, "expected true, false or \"auto\"");
            auto_secure
        }
    };
    let same_site_given = s.has("cookie_same_site");
    let cookie_same_site = s
        .choice(p, "cookie_same_site", &SAME_SITES)
        .unwrap_or(d.cookie_same_site);
    if same_site_given && cookie_same_site == SameSite::None && !cookie_secure {
        p.push(
            s.path_of("cookie_same_site"),
            "\"none\" needs cookie_secure = true (browsers drop SameSite=None cookies without Secure)",
        );
    }
    let idle_timeout = positive(p, &mut s, "idle_timeout").unwrap_or(d.idle_timeout);
    let max_lifetime = positive(p, &mut s, "max_lifetime").unwrap_or(d.max_lifetime);
    // Independent limits (SPEC 3): whichever comes first ends the session, so either
    // may be the shorter one.
    s.finish(p);
    SessionConfig {
        store,
        redis_url,
        key_prefix,
        cookie_name: cookie_name.unwrap_or(d.cookie_name),
        cookie_secure,
        cookie_same_site,
        idle_timeout,
        max_lifetime,
    }
}

/// A cookie name must be an RFC 6265 token.
fn check_cookie_name(name: &str) -> Result<(), String> {
    let separator = |c: char| "()<>@,;:\\\"/[]?={} \t".contains(c);
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_graphic() && !separator(c)) {
        return Err(format!(
            "\"{name}\" is not a valid cookie name (letters, digits and !#$%&'*+-.^_`|~)"
        ));
    }
    Ok(())
}

fn redirects(mut s: Section, p: &mut Problems) -> RedirectsConfig {
    let d = RedirectsConfig::default();
    let allowed_origins = s
        .parsed_list(p, "allowed_origins", OriginPattern::parse)
        .unwrap_or(d.allowed_origins);
    let allow_relative = s.bool(p, "allow_relative").unwrap_or(d.allow_relative);
    s.finish(p);
    RedirectsConfig {
        allowed_origins,
        allow_relative,
    }
}

fn cors(mut s: Section, p: &mut Problems) -> CorsConfig {
    let allowed_origins = s
        .parsed_list(p, "allowed_origins", OriginPattern::parse)
        .unwrap_or_default();
    s.finish(p);
    CorsConfig { allowed_origins }
}

fn backchannel(mut s: Section, p: &mut Problems) -> BackchannelConfig {
    let max_age = positive(p, &mut s, "max_age").unwrap_or(BackchannelConfig::default().max_age);
    s.finish(p);
    BackchannelConfig { max_age }
}

/// `[admin]`: `token = ""` (the default) means no admin endpoints.
fn admin(mut s: Section, p: &mut Problems) -> AdminConfig {
    let empty = matches!(s.take_if_empty_string("token"), Some(true));
    let token = if empty { None } else { s.secret(p, "token") };
    s.finish(p);
    AdminConfig { token }
}

fn signing(mut s: Section, p: &mut Problems) -> SigningConfig {
    if s.has("key_file") && s.has("key_files") {
        p.push(
            s.path(),
            "set key_file or key_files, not both (key_files = [\"current.pem\", …] publishes every key and signs with the first)",
        );
    }
    let key_file = s.readable_file(p, "key_file");
    let mut key_files = Vec::new();
    for (i, text) in s
        .strings(p, "key_files")
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let path = PathBuf::from(text);
        match super::secret::check_readable_file(&path) {
            Ok(()) => key_files.push(path),
            Err(e) => p.push(format!("{}[{i}]", s.path_of("key_files")), e),
        }
    }
    s.finish(p);
    SigningConfig {
        key_file,
        key_files,
    }
}
