//! Configuration: the TOML file and `IDENTITY__…` environment variables, layered
//! (see `layering.rs`) and validated in one pass into [`Config`] that reports every
//! problem at once (SPEC section 3).
//!
//! ```text
//! config/default.toml  or  --config FILE      (missing default file: built-in defaults)
//!          │
//!   IDENTITY__SECTION__KEY env variables      (arrays: IDENTITY__PROVIDERS__0__… or __<id>__…)
//!          │
//!   validate: take every key, collect every problem ──► Config  or  ConfigError
//! ```

mod checks;
mod duration;
mod layering;
mod operate;
mod providers;
mod proxy;
mod secret;
mod sections;
mod take;
mod targets;
mod validate;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

pub use duration::format as format_duration;
pub use layering::ENV_PREFIX;
pub use operate::{LimitsConfig, LogConfig, LogFormat, TelemetryConfig, TlsConfig, read_ca_file};
pub use providers::ID_TOKEN_ALGORITHMS;
pub use proxy::{ProxyConfig, SERVICE_ROUTES, format_byte_size};
pub use secret::Secret;
pub use sections::{
    CorsConfig, DEFAULT_PUBLIC_URL, RedirectsConfig, SameSite, ServerConfig, SessionConfig,
    StoreKind, mask_url_password,
};

/// The file read when no `--config` is given, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "config/default.toml";

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where: a dotted path (`providers[0].client_id`), an env variable name or a file path.
    pub key: String,
    /// What is wrong; never contains a secret.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found while loading the configuration; `Display` gives one
/// `key: message` per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The problems, in the order found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Loads the configuration: `config_path` (or [`DEFAULT_CONFIG_PATH`], which may be
/// absent), then the `IDENTITY__…` variables of `env`, then validation.
pub fn load(
    config_path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    load_layers(config_path, Path::new(DEFAULT_CONFIG_PATH), env)
}

/// The process environment's `IDENTITY__…` variables, for [`load`]. Unlike
/// `std::env::vars()` this never panics: a value that is not UTF-8 is converted lossily.
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            name.starts_with(ENV_PREFIX)
                .then(|| (name, value.to_string_lossy().into_owned()))
        })
        .collect()
}

/// Like [`load`] with the file's text given directly (for tests and tools).
pub fn load_str(
    toml_text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let table = layering::parse_document(toml_text).map_err(|message| ConfigError {
        problems: vec![Problem {
            key: "configuration".into(),
            message,
        }],
    })?;
    from_table(table, env)
}

fn load_layers(
    config_path: Option<&Path>,
    default_path: &Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let file = match config_path {
        Some(path) => layering::read_file(path, true),
        None => layering::read_file(default_path, false),
    };
    let table = file
        .map_err(|problem| ConfigError {
            problems: vec![problem],
        })?
        .unwrap_or_default();
    from_table(table, env)
}

fn from_table(
    mut table: toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let (env_raw, env_problems) = layering::apply_env(&mut table, env);
    let mut problems = take::Problems::new(env_raw);
    problems.list.extend(env_problems);
    let config = validate::config(table, &mut problems);
    match config {
        Some(config) if problems.list.is_empty() => Ok(config),
        _ => Err(ConfigError {
            problems: problems.list,
        }),
    }
}

/// The validated configuration. `Default` is the built-in defaults (no providers, no targets).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Config {
    /// `[server]`.
    pub server: ServerConfig,
    /// `[session]`.
    pub session: SessionConfig,
    /// `[redirects]`.
    pub redirects: RedirectsConfig,
    /// `[cors]`.
    pub cors: CorsConfig,
    /// `[[providers]]`, in file order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderConfig>,
    /// `[backchannel]`.
    pub backchannel: BackchannelConfig,
    /// `[signing]`.
    pub signing: SigningConfig,
    /// `[[targets]]`, in file order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<TargetConfig>,
    /// `[proxy]` (SPEC 9).
    pub proxy: ProxyConfig,
    /// `[log]`.
    pub log: LogConfig,
    /// `[limits]`.
    pub limits: LimitsConfig,
    /// `[tls]`.
    pub tls: TlsConfig,
    /// `[admin]` (SPEC 11).
    pub admin: AdminConfig,
    /// `[telemetry]` (SPEC 7, "Traces").
    pub telemetry: TelemetryConfig,
}

/// `[admin]`: the operator's session endpoints (SPEC 11).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AdminConfig {
    /// The bearer token of `/admin/sessions` (`token` or `token_file`); `None`: no admin
    /// endpoints (they answer 404).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

impl Config {
    /// The effective configuration as TOML with every secret shown as `"***"`
    /// (what `check-config` prints).
    pub fn to_masked_toml(&self) -> String {
        toml::to_string(self)
            .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }

    /// The provider with this id.
    pub fn provider(&self, id: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.id == id)
    }
}

/// One `[[providers]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderConfig {
    /// Unique id, `[A-Za-z0-9_-]+`.
    pub id: String,
    /// Display name (default: the id).
    pub name: String,
    /// Issuer; discovery at `<issuer>/.well-known/openid-configuration`.
    pub issuer: url::Url,
    /// Our client id at this provider.
    pub client_id: String,
    /// How we authenticate at the token endpoint.
    #[serde(flatten)]
    pub client_auth: ClientAuth,
    /// Scopes requested at login; always contains `openid`.
    pub scopes: Vec<String>,
    /// Claim giving the user's display name.
    pub name_claim: String,
    /// Dotted path to the roles claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles_claim: Option<String>,
    /// Dotted path to the groups claim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    /// Further claims passed on in `/userinfo`.
    pub attributes: Vec<String>,
    /// Whether to call the userinfo endpoint after login.
    pub use_userinfo_endpoint: bool,
    /// Whether this provider's access tokens are accepted as Bearer.
    pub accept_bearer: bool,
    /// Audience a Bearer token must have (default: client_id).
    pub bearer_audience: String,
    /// Whether opaque Bearer tokens are checked by RFC 7662 introspection.
    pub introspection: bool,
    /// Introspection endpoint (default: from discovery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<url::Url>,
    /// Whether opaque (non-JWT) Bearer tokens go to this provider's introspection only; when
    /// no provider sets it, they go to every provider with `introspection`, in order.
    pub introspection_for_opaque: bool,
    /// `logout.*`.
    pub logout: ProviderLogoutConfig,
    /// `id_token_signed_response_alg`: the one algorithm of this client's ID tokens,
    /// refreshed ID tokens and logout tokens; `None` (`""`) = chosen from discovery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<jsonwebtoken::Algorithm>,
    /// `kind = "arcgis"` (SPEC 10): the portal's settings; `None` for an OpenID provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arcgis: Option<ArcgisConfig>,
    /// `profile` (SPEC 12): `oidc` or `fapi2`.
    pub profile: Profile,
    /// `par` (SPEC 12): when the authorization request is pushed (RFC 9126).
    pub par: ParMode,
    /// `dpop` (SPEC 12): whether tokens are DPoP-bound (RFC 9449).
    pub dpop: bool,
    /// `private_key_alg` (SPEC 12): the `private_key_jwt` assertion's algorithm; absent,
    /// it follows the key (RSA → RS256, or PS256 with `fapi2`; EC P-256 → ES256; Ed25519 → EdDSA).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key_alg: Option<ClientKeyAlg>,
}

/// The settings of a `kind = "arcgis"` provider (SPEC 10). Such a provider's `issuer` is
/// its portal URL and its claim paths name the fields the portal profile is mapped to.
#[derive(Debug, Clone, Serialize)]
pub struct ArcgisConfig {
    /// The portal's REST root, e.g. `https://www.arcgis.com/sharing/rest`.
    pub portal_url: url::Url,
    /// Where the session's roles come from.
    pub roles_from: RolesFrom,
}

/// `roles_from` of an ArcGIS provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolesFrom {
    /// `role` of `community/self` (`org_admin`, `org_publisher`, `org_user`).
    Role,
    /// `privileges` of `community/self`.
    Privileges,
}

/// A provider's security profile (config key `profile`, SPEC 12).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Plain OpenID Connect.
    #[default]
    Oidc,
    /// The FAPI 2.0 Security Profile: PAR, PKCE, DPoP, `private_key_jwt`, RFC 9207 `iss`.
    Fapi2,
}

/// When the authorization request is pushed (config key `par`, RFC 9126).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParMode {
    /// When discovery says `require_pushed_authorization_requests`.
    #[default]
    Auto,
    /// Every login (the provider is not ready without a PAR endpoint).
    Always,
    /// Never.
    Never,
}

/// The algorithm of `private_key_jwt` assertions (config key `private_key_alg`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ClientKeyAlg {
    /// RSASSA-PSS with SHA-256 (RSA key).
    PS256,
    /// ECDSA P-256 with SHA-256 (EC P-256 key).
    ES256,
    /// Ed25519 (Ed25519 key).
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA key; not with `fapi2`).
    RS256,
}

/// `logout.*` of a provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderLogoutConfig {
    /// Whether `/logout` sends the browser on to the provider's end_session_endpoint.
    pub rp_initiated: bool,
}

impl Default for ProviderLogoutConfig {
    fn default() -> Self {
        Self { rp_initiated: true }
    }
}

/// Client authentication at a token endpoint (config key `auth_method`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "auth_method", rename_all = "snake_case")]
pub enum ClientAuth {
    /// HTTP Basic with the client secret.
    ClientSecretBasic {
        /// The client secret.
        #[serde(rename = "client_secret")]
        secret: Secret,
    },
    /// The client secret in the form body.
    ClientSecretPost {
        /// The client secret.
        #[serde(rename = "client_secret")]
        secret: Secret,
    },
    /// A JWT assertion signed with our private key (RFC 7523).
    PrivateKeyJwt {
        /// PEM file with the private key (checked readable at load).
        #[serde(rename = "private_key_file")]
        key_file: PathBuf,
    },
    /// A public client: no client authentication.
    None,
}

/// `[backchannel]`.
#[derive(Debug, Clone, Serialize)]
pub struct BackchannelConfig {
    /// Oldest logout-token `iat` accepted.
    #[serde(serialize_with = "duration::serialize")]
    pub max_age: Duration,
}

impl Default for BackchannelConfig {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(5 * 60),
        }
    }
}

/// `[signing]`: keys for strategy `jwt`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SigningConfig {
    /// PEM private key; absent: an ephemeral key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// PEM private keys for rotation: the first signs, all are published (exclusive with
    /// `key_file`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub key_files: Vec<PathBuf>,
}

impl SigningConfig {
    /// The configured keys, the signing one first (`key_file` or `key_files`); empty: none.
    pub fn keys(&self) -> Vec<&Path> {
        match &self.key_file {
            Some(path) => vec![path.as_path()],
            None => self.key_files.iter().map(PathBuf::as_path).collect(),
        }
    }
}

/// How a target token travels to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Transport {
    /// `Authorization: Bearer`.
    Bearer,
    /// `?token=` query parameter.
    TokenParameter,
    /// `?access_token=` query parameter.
    AccessTokenParameter,
    /// `Authorization: DPoP` with a proof (RFC 9449), through the API proxy only (SPEC 12).
    Dpop,
}

/// One `[[targets]]` entry (SPEC section 6).
#[derive(Debug, Clone, Serialize)]
pub struct TargetConfig {
    /// URL prefix the target covers (http(s), no query or fragment).
    pub url: url::Url,
    /// How the token is obtained.
    #[serde(flatten)]
    pub strategy: Strategy,
    /// How the token may travel (default `[BEARER]`).
    pub transport: Vec<Transport>,
    /// Only sessions of these providers (empty: any).
    pub providers: Vec<String>,
    /// Caller needs one of these roles (empty: any).
    pub roles: Vec<String>,
    /// Where the API proxy serves this target (SPEC 9), relative to `base_path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_path: Option<String>,
}

/// The token strategy of a target (config key `strategy`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum Strategy {
    /// The session's own access token.
    AccessToken,
    /// RFC 8693 token exchange at the session's provider.
    Exchange {
        /// `audience` parameter.
        #[serde(skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
        /// `resource` parameter.
        #[serde(skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
        /// `scope` parameter.
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
    /// An ArcGIS Server token from the portal's `generateToken` (SPEC 10).
    ArcgisServer {
        /// `serverUrl` sent to the portal (default: the target's `url`).
        #[serde(skip_serializing_if = "Option::is_none")]
        server_url: Option<url::Url>,
    },
    /// A shared service token by client credentials.
    ClientCredentials {
        /// Token endpoint.
        token_url: url::Url,
        /// Client id.
        client_id: String,
        /// Client authentication.
        #[serde(flatten)]
        client_auth: ClientAuth,
        /// `scope` parameter.
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// `audience` parameter.
        #[serde(skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
    },
    /// A shared service token for a technical account (password grant, HTTP Basic client auth).
    Password {
        /// Token endpoint.
        token_url: url::Url,
        /// Client id.
        client_id: String,
        /// Client secret.
        client_secret: Secret,
        /// Account name.
        username: String,
        /// Account password.
        password: Secret,
        /// `scope` parameter.
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
    /// A JWT the service signs itself.
    Jwt {
        /// Token lifetime (default 5m).
        #[serde(serialize_with = "duration::serialize")]
        lifetime: Duration,
        /// `aud` (default: the target url).
        #[serde(skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
    },
}

impl Strategy {
    /// The config name of the strategy.
    pub fn name(&self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::Exchange { .. } => "exchange",
            Self::ClientCredentials { .. } => "client_credentials",
            Self::Password { .. } => "password",
            Self::Jwt { .. } => "jwt",
            Self::ArcgisServer { .. } => "arcgis_server",
        }
    }
}
