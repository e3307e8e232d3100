//! `[log]`, `[limits]`, `[tls]` and `server.metrics_bind`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

#[test]
fn operating_sections_default_to_text_logs_no_limits_and_no_extra_roots() {
    let c = ok("", &[]);
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.log.level, "info");
    assert!(c.log.access);
    assert_eq!(c.limits.login_per_minute, 0);
    assert_eq!(c.limits.failed_auth_per_minute, 0);
    assert!(c.tls.ca_file.is_none());
    assert!(c.server.metrics_bind.is_none());
}

#[test]
fn operating_sections_are_read_from_the_file() {
    let dir = temp_dir();
    let ca = write(&dir, "ca.pem", TEST_CA_PEM);
    let c = ok(
        &format!(
            r#"
[server]
metrics_bind = "127.0.0.1:9090"
[log]
format = "json"
level = "warn,identity_service=debug"
access = false
[limits]
login_per_minute = 30
failed_auth_per_minute = 5
[tls]
ca_file = "{}"
"#,
            ca.display()
        ),
        &[],
    );
    assert_eq!(c.server.metrics_bind.as_deref(), Some("127.0.0.1:9090"));
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.level, "warn,identity_service=debug");
    assert!(!c.log.access);
    assert_eq!(c.limits.login_per_minute, 30);
    assert_eq!(c.limits.failed_auth_per_minute, 5);
    assert_eq!(c.tls.ca_file.as_deref(), Some(ca.as_path()));
}

#[test]
fn the_log_format_can_come_from_the_environment() {
    let c = ok("", &[("IDENTITY__LOG__FORMAT", "json")]);
    assert_eq!(c.log.format, LogFormat::Json);
    let c = ok(
        "[log]\nformat = \"json\"\n",
        &[("IDENTITY__LOG__FORMAT", "text")],
    );
    assert_eq!(c.log.format, LogFormat::Text);
}

#[test]
fn bad_operating_values_are_each_named() {
    let dir = temp_dir();
    let not_pem = write(&dir, "ca.pem", "not a certificate\n");
    let problems = bad(
        &format!(
            r#"
[server]
bind = "127.0.0.1:8080"
metrics_bind = "127.0.0.1:8080"
[log]
format = "xml"
level = "loud=="
access = "yes"
colour = true
[limits]
login_per_minute = -1
failed_auth_per_minute = 5000000000
[tls]
ca_file = "{}"
"#,
            not_pem.display()
        ),
        &[],
    );
    for (key, fragment) in [
        ("server.metrics_bind", "must differ from server.bind"),
        ("log.format", "\"xml\" is not one of"),
        ("log.level", "is not a log level"),
        ("log.access", "expected true or false"),
        ("log.colour", "unknown"),
        ("limits.login_per_minute", "negative"),
        ("limits.failed_auth_per_minute", "at most"),
        ("tls.ca_file", "holds no PEM certificate"),
    ] {
        assert_problem(&problems, key, fragment);
    }
    let problems = bad("[server]\nmetrics_bind = \"metrics\"\n", &[]);
    assert_problem(&problems, "server.metrics_bind", "not host:port");
    let problems = bad("[tls]\nca_file = \"/nonexistent/ca.pem\"\n", &[]);
    assert_problem(&problems, "tls.ca_file", "cannot read");
}

#[test]
fn check_config_shows_the_operating_sections() {
    let out = ok("[limits]\nlogin_per_minute = 7\n", &[]).to_masked_toml();
    for line in [
        "[log]",
        "format = \"text\"",
        "[limits]",
        "login_per_minute = 7",
    ] {
        assert!(out.contains(line), "{line} missing in {out}");
    }
}

/// A self-signed CA certificate (only parsed here, never trusted).
const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBeDCCAR2gAwIBAgIULl3ixWc1/i3+9WwslyDDn4gVZ0MwCgYIKoZIzj0EAwIw
ETEPMA0GA1UEAwwGdGVzdGNhMB4XDTI2MTEyOTEzMDcxNFoXDTM2MTEyNjEzMDcx
NFowETEPMA0GA1UEAwwGdGVzdGNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
mxfI1GmSf0KNNqWUlZaOq4s3mEU7d3LSoE2zO3BOnO2Ev/qRiQ5vBIUNWk8ZgmIj
At1KdEbgFyCoIahLc805r6NTMFEwHQYDVR0OBBYEFEFdxJp8L/oiLqad2ZjnxUO7
cmbcMB8GA1UdIwQYMBaAFEFdxJp8L/oiLqad2ZjnxUO7cmbcMA8GA1UdEwEB/wQF
MAMBAf8wCgYIKoZIzj0EAwIDSQAwRgIhAIIoASfLzmrmAzdOCQcXU1T5NaJGZoty
vNBBeInTeXDlAiEAuXaQA5Ed1W2SckJ2vvICDPkqtN9MwGi8jXp0j3A5PEs=
-----END CERTIFICATE-----
";
