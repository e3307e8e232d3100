//! One `[[targets]]` entry (SPEC section 6): common keys, then the keys of its
//! strategy; a key of another strategy is reported as "not used by strategy X".

use std::time::Duration;

use super::checks::{check_http_url, checked, positive};
use super::providers::client_auth;
use super::take::{Problems, Section, names};
use super::{Secret, Strategy, TargetConfig, Transport};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    AccessToken,
    Exchange,
    ClientCredentials,
    Password,
    Jwt,
    ArcgisServer,
}

const STRATEGIES: [(&str, Kind); 6] = [
    ("access_token", Kind::AccessToken),
    ("exchange", Kind::Exchange),
    ("client_credentials", Kind::ClientCredentials),
    ("password", Kind::Password),
    ("jwt", Kind::Jwt),
    ("arcgis_server", Kind::ArcgisServer),
];

/// Every key that belongs to some strategy (SPEC section 6).
const STRATEGY_KEYS: [&str; 14] = [
    "audience",
    "resource",
    "scope",
    "token_url",
    "client_id",
    "client_secret",
    "client_secret_file",
    "private_key_file",
    "auth_method",
    "username",
    "password",
    "password_file",
    "lifetime",
    "server_url",
];

const TRANSPORTS: [(&str, Transport); 4] = [
    ("BEARER", Transport::Bearer),
    ("TOKEN_PARAMETER", Transport::TokenParameter),
    ("ACCESS_TOKEN_PARAMETER", Transport::AccessTokenParameter),
    ("DPOP", Transport::Dpop),
];

const DEFAULT_JWT_LIFETIME: Duration = Duration::from_secs(5 * 60);

pub(super) fn target(
    mut s: Section,
    p: &mut Problems,
    provider_ids: &[&str],
) -> Option<TargetConfig> {
    let url = s
        .required_url(p, "url")
        .and_then(|u| checked(p, s.path_of("url"), check_http_url(&u).map(|()| u)));
    if !s.has("strategy") {
        p.push(
            s.path_of("strategy"),
            format!("is required: one of {}", names(&STRATEGIES)),
        );
    }
    let kind = s.choice(p, "strategy", &STRATEGIES);
    let transport = s
        .parsed_list(p, "transport", |t| {
            TRANSPORTS
                .iter()
                .find(|(name, _)| *name == t)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("\"{t}\" is not one of {}", names(&TRANSPORTS)))
        })
        .and_then(|list| {
            let result = if list.is_empty() {
                Err("must name at least one transport".to_owned())
            } else {
                Ok(list)
            };
            checked(p, s.path_of("transport"), result)
        });
    let providers = s.strings(p, "providers").unwrap_or_default();
    for (i, id) in providers.iter().enumerate() {
        if !provider_ids.contains(&id.as_str()) {
            p.push(
                format!("{}[{i}]", s.path_of("providers")),
                format!("no provider has the id \"{id}\""),
            );
        }
    }
    let roles = s.strings(p, "roles").unwrap_or_default();
    let proxy_path = s.opt_string(p, "proxy_path").and_then(|path| {
        checked(
            p,
            s.path_of("proxy_path"),
            super::proxy::check_proxy_path(&path).map(|()| path),
        )
    });

    let strategy = match kind {
        Some(kind) => strategy(kind, &mut s, p),
        None => None,
    };
    let leftovers = s.take_any_of(&STRATEGY_KEYS);
    if let Some(kind) = kind {
        let name = STRATEGIES
            .iter()
            .find(|(_, k)| *k == kind)
            .map_or("", |(n, _)| *n);
        for key in leftovers {
            p.push(s.path_of(&key), format!("not used by strategy \"{name}\""));
        }
    }
    // SPEC 12: a DPoP-bound token never leaves the service, so only the proxy can use it.
    if proxy_path.is_none()
        && transport
            .as_ref()
            .is_some_and(|list| list.contains(&Transport::Dpop))
    {
        p.push(
            s.path_of("transport"),
            "\"DPOP\" needs proxy_path (SPEC 12)",
        );
    }
    s.finish(p);
    Some(TargetConfig {
        url: url?,
        strategy: strategy?,
        transport: transport.unwrap_or_else(|| vec![Transport::Bearer]),
        providers,
        roles,
        proxy_path,
    })
}

fn strategy(kind: Kind, s: &mut Section, p: &mut Problems) -> Option<Strategy> {
    match kind {
        Kind::AccessToken => Some(Strategy::AccessToken),
        Kind::Exchange => Some(Strategy::Exchange {
            audience: s.opt_string(p, "audience"),
            resource: s.opt_string(p, "resource"),
            scope: s.opt_string(p, "scope"),
        }),
        Kind::ClientCredentials => {
            let token_url = token_url(s, p);
            let client_id = s.required_string(p, "client_id");
            let client_auth = client_auth(s, p, false);
            let scope = s.opt_string(p, "scope");
            let audience = s.opt_string(p, "audience");
            Some(Strategy::ClientCredentials {
                token_url: token_url?,
                client_id: client_id?,
                client_auth: client_auth?,
                scope,
                audience,
            })
        }
        Kind::Password => {
            let token_url = token_url(s, p);
            let client_id = s.required_string(p, "client_id");
            let client_secret = required_secret(s, p, "client_secret");
            let username = s.required_string(p, "username");
            let password = required_secret(s, p, "password");
            let scope = s.opt_string(p, "scope");
            Some(Strategy::Password {
                token_url: token_url?,
                client_id: client_id?,
                client_secret: client_secret?,
                username: username?,
                password: password?,
                scope,
            })
        }
        Kind::ArcgisServer => Some(Strategy::ArcgisServer {
            server_url: s
                .url(p, "server_url")
                .and_then(|u| checked(p, s.path_of("server_url"), check_http_url(&u).map(|()| u))),
        }),
        Kind::Jwt => {
            // An invalid lifetime is recorded as a problem, so the default never hides it.
            let lifetime = positive(p, s, "lifetime").unwrap_or(DEFAULT_JWT_LIFETIME);
            Some(Strategy::Jwt {
                lifetime,
                audience: s.opt_string(p, "audience"),
            })
        }
    }
}

fn token_url(s: &mut Section, p: &mut Problems) -> Option<url::Url> {
    s.required_url(p, "token_url")
        .and_then(|u| checked(p, s.path_of("token_url"), check_http_url(&u).map(|()| u)))
}

fn required_secret(s: &mut Section, p: &mut Problems, key: &str) -> Option<Secret> {
    let given = s.has(key) || s.has(&format!("{key}_file"));
    if !given {
        p.push(s.path_of(key), format!("is required (or give {key}_file)"));
    }
    s.secret(p, key)
}
