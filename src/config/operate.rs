//! The operating sections: `[log]`, `[limits]`, `[tls]` and `server.metrics_bind`
//! (SPEC section 3): their types, defaults and validation.

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Serialize;

use super::checks::checked;
use super::take::{Problems, Section};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A level or `tracing` filter directive (`info`, `warn,identity_service=debug`);
    /// `RUST_LOG`, when set, wins.
    pub level: String,
    /// One access line per request.
    pub access: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
            access: true,
        }
    }
}

/// `[limits]`: per client address; 0 = off.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LimitsConfig {
    /// `GET /login` and `GET /callback` per minute.
    pub login_per_minute: u32,
    /// Refused bearer tokens and refused logout tokens per minute.
    pub failed_auth_per_minute: u32,
}

/// `[tls]`: outbound HTTPS.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TlsConfig {
    /// PEM file of extra root certificates, trusted beside the system's and the bundled ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

/// `[telemetry]`: OpenTelemetry traces (SPEC 7, "Traces"). `Debug` and `Serialize`
/// (`check-config`) mask a password in `otlp_endpoint`.
#[derive(Clone, Serialize)]
pub struct TelemetryConfig {
    /// OTLP/HTTP base URL (`http://127.0.0.1:4318`; spans go to `<it>/v1/traces`); `None`:
    /// no traces, and nothing of them on the request path.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_masked_endpoint"
    )]
    pub otlp_endpoint: Option<url::Url>,
    /// `service.name` of every span.
    pub service_name: String,
    /// Share of new traces recorded (0.0–1.0); a sampled incoming `traceparent` is always
    /// followed.
    pub sample_ratio: f64,
}

impl std::fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryConfig")
            .field("otlp_endpoint", &self.otlp_endpoint.as_ref().map(masked))
            .field("service_name", &self.service_name)
            .field("sample_ratio", &self.sample_ratio)
            .finish()
    }
}

fn masked(url: &url::Url) -> String {
    super::sections::mask_url_password(url.as_str())
}

fn serialize_masked_endpoint<S: serde::Serializer>(
    url: &Option<url::Url>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_str(&masked(url)),
        None => s.serialize_none(),
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            otlp_endpoint: None,
            service_name: "identity-service".into(),
            sample_ratio: 1.0,
        }
    }
}

pub(super) fn telemetry(mut s: Section, p: &mut Problems) -> TelemetryConfig {
    let d = TelemetryConfig::default();
    let otlp_endpoint = match s.opt_string(p, "otlp_endpoint") {
        None => None,
        Some(text) => match url::Url::parse(&text) {
            Ok(url)
                if matches!(url.scheme(), "http" | "https")
                    && url.query().is_none()
                    && url.fragment().is_none() =>
            {
                Some(url)
            }
            _ => {
                p.push(
                    s.path_of("otlp_endpoint"),
                    "expected an http(s) URL without query or fragment, e.g. \"http://127.0.0.1:4318\"",
                );
                None
            }
        },
    };
    let service_name = s
        .string(p, "service_name")
        .filter(|name| !name.trim().is_empty())
        .unwrap_or(d.service_name);
    let path = s.path_of("sample_ratio");
    let sample_ratio = match s.take("sample_ratio") {
        None => d.sample_ratio,
        Some(toml::Value::Float(ratio)) if (0.0..=1.0).contains(&ratio) => ratio,
        Some(toml::Value::Integer(ratio @ (0 | 1))) => ratio as f64,
        Some(_) => {
            p.push(path, "expected a number from 0.0 to 1.0");
            d.sample_ratio
        }
    };
    s.finish(p);
    TelemetryConfig {
        otlp_endpoint,
        service_name,
        sample_ratio,
    }
}

const FORMATS: [(&str, LogFormat); 2] = [("text", LogFormat::Text), ("json", LogFormat::Json)];

pub(super) fn log(mut s: Section, p: &mut Problems) -> LogConfig {
    let d = LogConfig::default();
    let format = s.choice(p, "format", &FORMATS).unwrap_or(d.format);
    let level = s
        .string(p, "level")
        .and_then(|level| checked(p, s.path_of("level"), check_level(&level).map(|()| level)))
        .unwrap_or(d.level);
    let access = s.bool(p, "access").unwrap_or(d.access);
    s.finish(p);
    LogConfig {
        format,
        level,
        access,
    }
}

fn check_level(level: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(level)
        .map(|_| ())
        .map_err(|_| {
            format!(
                "\"{level}\" is not a log level (trace, debug, info, warn, error, off) or filter"
            )
        })
}

pub(super) fn limits(mut s: Section, p: &mut Problems) -> LimitsConfig {
    let mut per_minute = |s: &mut Section, key: &str| {
        let n = s.usize(p, key)?;
        checked(
            p,
            s.path_of(key),
            u32::try_from(n).map_err(|_| format!("must be at most {}", u32::MAX)),
        )
    };
    let login_per_minute = per_minute(&mut s, "login_per_minute").unwrap_or(0);
    let failed_auth_per_minute = per_minute(&mut s, "failed_auth_per_minute").unwrap_or(0);
    s.finish(p);
    LimitsConfig {
        login_per_minute,
        failed_auth_per_minute,
    }
}

pub(super) fn tls(mut s: Section, p: &mut Problems) -> TlsConfig {
    let ca_file = s
        .readable_file(p, "ca_file")
        .and_then(|path| checked(p, s.path_of("ca_file"), read_ca_file(&path).map(|_| path)));
    s.finish(p);
    TlsConfig { ca_file }
}

/// The certificates of a PEM file; at least one, each well-formed.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bad = |error: rustls_pki_types::pem::Error| {
        format!("{} is not a PEM certificate file: {error}", path.display())
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(bad)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if certificates.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")",
            path.display()
        ));
    }
    Ok(certificates)
}
