//! Loading: built-in defaults, which file is read, a full SPEC-style file, the shipped files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

#[test]
fn defaults_match_the_spec() {
    let c = Config::default();
    assert_eq!(c.server.bind, "127.0.0.1:8080");
    assert_eq!(c.server.public_url.as_str(), "http://127.0.0.1:8080/");
    assert_eq!(c.server.base_path, "");
    assert_eq!(c.server.workers, 0);
    assert!(c.server.trusted_proxies.is_empty());
    assert!(c.server.templates_dir.is_none());
    assert_eq!(c.session.store, StoreKind::Memory);
    assert_eq!(c.session.redis_url, "redis://127.0.0.1:6379");
    assert_eq!(c.session.key_prefix, "identity:");
    assert_eq!(c.session.cookie_name, "ctIDENTITY");
    assert!(!c.session.cookie_secure, "auto with an http public_url");
    assert_eq!(c.session.cookie_same_site, SameSite::Lax);
    assert_eq!(c.session.idle_timeout, Duration::from_secs(1800));
    assert_eq!(c.session.max_lifetime, Duration::from_secs(43_200));
    assert!(c.redirects.allowed_origins.is_empty());
    assert!(c.redirects.allow_relative);
    assert!(c.cors.allowed_origins.is_empty());
    assert!(c.providers.is_empty());
    assert_eq!(c.backchannel.max_age, Duration::from_secs(300));
    assert!(c.signing.key_file.is_none());
    assert!(c.targets.is_empty());
}

#[test]
fn an_absent_default_file_gives_the_built_in_defaults() {
    let dir = temp_dir();
    let loaded = load_layers(None, &dir.join("missing.toml"), no_env()).unwrap();
    assert_eq!(loaded.to_masked_toml(), Config::default().to_masked_toml());
    let empty = load_str("", no_env()).unwrap();
    assert_eq!(empty.to_masked_toml(), Config::default().to_masked_toml());
}

#[test]
fn a_missing_or_broken_explicit_file_is_an_error() {
    let dir = temp_dir();
    let missing = dir.join("nope.toml");
    let err = load(Some(&missing), no_env()).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].key, missing.display().to_string());
    assert!(
        err.problems[0]
            .message
            .starts_with("cannot read the configuration file"),
        "{err}"
    );

    let broken = write(&dir, "broken.toml", "[server\nbind = 1\n");
    let err = load(Some(&broken), no_env()).unwrap_err();
    assert!(
        err.problems[0]
            .message
            .starts_with("invalid TOML at line 1"),
        "{err}"
    );

    let broken_default = write(&dir, "default.toml", "client_secret = \"unterminated\n");
    let err = load_layers(None, &broken_default, no_env()).unwrap_err();
    assert!(!err.to_string().contains("unterminated"), "{err}");
}

#[test]
fn the_explicit_file_replaces_the_default_file() {
    let dir = temp_dir();
    let default = write(
        &dir,
        "default.toml",
        "[server]\nbind = \"127.0.0.1:1111\"\nworkers = 3\n",
    );
    let chosen = write(&dir, "chosen.toml", "[server]\nbind = \"127.0.0.1:2222\"\n");
    let c = load_layers(Some(&chosen), &default, no_env()).unwrap();
    assert_eq!(c.server.bind, "127.0.0.1:2222");
    assert_eq!(
        c.server.workers, 0,
        "keys the chosen file leaves out take built-in defaults"
    );
    let c = load_layers(None, &default, no_env()).unwrap();
    assert_eq!(c.server.workers, 3);
}

#[test]
fn a_full_spec_style_file_loads() {
    let dir = temp_dir();
    let key = write(&dir, "signing-key.pem", "-----BEGIN PRIVATE KEY-----\n");
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    let text = format!(
        r#"
[server]
bind = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080"   # how browsers and providers reach us
base_path = ""
workers = 0                           # 0 = one per core
trusted_proxies = ["10.0.0.0/8", "192.168.1.1"]
templates_dir = "{templates}"

[session]
store = "memory"                      # "memory" | "redis"
redis_url = "redis://127.0.0.1:6379"  # also rediss://, and cluster/sentinel forms
key_prefix = "identity:"
cookie_name = "ctIDENTITY"
cookie_secure = "auto"                # auto = true unless public_url is http
cookie_same_site = "lax"
idle_timeout = "30m"
max_lifetime = "12h"

[redirects]
allowed_origins = ["http://localhost:3000", "https://*.example.com"]
allow_relative = true

[cors]
allowed_origins = ["http://localhost:3000"]   # frontends that call /userinfo, /token…

[[providers]]
id = "local"
name = "Local login"
issuer = "http://127.0.0.1:9400"      # discovery at <issuer>/.well-known/openid-configuration
client_id = "identity"
client_secret = "full-file-secret"
scopes = ["openid", "profile", "email", "offline_access"]
name_claim = "preferred_username"
roles_claim = "realm_access.roles"    # dotted path into ID token / userinfo claims
groups_claim = "groups"
attributes = ["email"]
use_userinfo_endpoint = true
accept_bearer = false
bearer_audience = "identity"
introspection = false
introspection_endpoint = ""           # default: from discovery
auth_method = "client_secret_basic"
logout.rp_initiated = true

[backchannel]
max_age = "5m"                        # oldest logout-token iat accepted

[signing]                             # keys for strategy "jwt"
key_file = "{key}"

[[targets]]
url = "https://api.example.com/maps/"
strategy = "exchange"                 # see section 6
transport = ["BEARER"]                # BEARER | TOKEN_PARAMETER | ACCESS_TOKEN_PARAMETER
audience = "maps"
scope = "read"
providers = ["local"]                 # optional: sessions of these providers only
roles = ["gis"]                       # optional: caller needs one of these roles
"#,
        templates = templates.display(),
        key = key.display()
    );
    let c = ok(&text, &[]);
    assert_eq!(c.server.trusted_proxies.len(), 2);
    assert_eq!(c.server.trusted_proxies[1].to_string(), "192.168.1.1/32");
    assert_eq!(c.server.templates_dir.as_deref(), Some(templates.as_path()));
    assert_eq!(c.redirects.allowed_origins.len(), 2);
    let p = &c.providers[0];
    assert_eq!((p.id.as_str(), p.name.as_str()), ("local", "Local login"));
    assert!(
        matches!(&p.client_auth, ClientAuth::ClientSecretBasic { secret } if secret.expose() == "full-file-secret")
    );
    assert_eq!(p.roles_claim.as_deref(), Some("realm_access.roles"));
    assert!(p.introspection_endpoint.is_none());
    assert!(p.logout.rp_initiated);
    assert_eq!(c.signing.key_file.as_deref(), Some(key.as_path()));
    let t = &c.targets[0];
    assert_eq!(t.transport, vec![Transport::Bearer]);
    assert_eq!(t.providers, vec!["local"]);
    assert!(
        matches!(&t.strategy, Strategy::Exchange { audience: Some(a), resource: None, scope: Some(s) } if a == "maps" && s == "read")
    );
}

#[test]
fn provider_defaults_apply() {
    let c = ok(PROVIDER, &[]);
    let p = &c.providers[0];
    assert_eq!(p.name, "local");
    assert_eq!(p.scopes, vec!["openid", "profile", "email"]);
    assert_eq!(p.name_claim, "preferred_username");
    assert!(p.roles_claim.is_none() && p.groups_claim.is_none() && p.attributes.is_empty());
    assert!(p.use_userinfo_endpoint && !p.accept_bearer && !p.introspection);
    assert_eq!(p.bearer_audience, "identity");
    assert!(p.logout.rp_initiated);
    assert!(matches!(
        p.client_auth,
        ClientAuth::ClientSecretBasic { .. }
    ));
}

/// The shipped files, from the crate root.
fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

#[test]
fn the_shipped_default_file_loads() {
    let c = load(Some(&shipped("default.toml")), no_env()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.session.store, StoreKind::Memory);
    assert_eq!(c.providers.len(), 2);
    assert_eq!(c.providers[0].id, "local");
    // The ArcGIS portal stand-in (dev/arcgis).
    assert_eq!(c.providers[1].id, "arcgis");
    assert!(c.providers[1].arcgis.is_some());
    assert_eq!(c.redirects.allowed_origins.len(), 2);
    // The demo's echo API and the ArcGIS Server stand-in, served through the API proxy.
    assert_eq!(c.targets.len(), 2);
    assert_eq!(c.targets[0].proxy_path.as_deref(), Some("/api/echo"));
    assert_eq!(c.targets[1].proxy_path.as_deref(), Some("/api/gis"));
}

#[test]
fn the_shipped_example_file_loads_with_its_files_in_place() {
    // The example points at /run/secrets/…; the environment redirects each file here.
    let dir = temp_dir();
    let file = |name: &str| write(&dir, name, "value\n").display().to_string();
    let vars = [
        (
            "IDENTITY__PROVIDERS__CORP__CLIENT_SECRET_FILE",
            file("corp"),
        ),
        (
            "IDENTITY__PROVIDERS__PARTNER__PRIVATE_KEY_FILE",
            file("partner.pem"),
        ),
        ("IDENTITY__SIGNING__KEY_FILE", file("signing.pem")),
        ("IDENTITY__TARGETS__2__CLIENT_SECRET_FILE", file("reports")),
        (
            "IDENTITY__TARGETS__3__CLIENT_SECRET_FILE",
            file("legacy-client"),
        ),
        (
            "IDENTITY__TARGETS__3__PASSWORD_FILE",
            file("legacy-password"),
        ),
    ];
    let vars: Vec<(String, String)> = vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    let c = load(Some(&shipped("example.toml")), vars).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.session.store, StoreKind::Redis);
    assert!(c.session.cookie_secure);
    assert_eq!(c.providers.len(), 2);
    let strategies: Vec<&str> = c.targets.iter().map(|t| t.strategy.name()).collect();
    assert_eq!(
        strategies,
        [
            "access_token",
            "exchange",
            "client_credentials",
            "password",
            "jwt"
        ]
    );
}
