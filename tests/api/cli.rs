//! The binary's command line (SPEC 3 and 8): check-config, exit code 2, environment
//! overrides, `_file` secrets, --version, and a clean SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::temp_file;

const BINARY: &str = env!("CARGO_BIN_EXE_identity-service");

const VALID: &str = r#"
[server]
bind = "127.0.0.1:0"
[[providers]]
id = "local"
issuer = "http://127.0.0.1:9"
client_id = "identity"
client_secret = "super-secret-value"
"#;

fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(BINARY);
    command.args(args).env_remove("RUST_LOG");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("IDENTITY__")) {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[test]
fn version_prints_the_version() {
    let output = run(&["--version"], &[]);
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_masked() {
    let path = temp_file("toml", VALID);
    let output = run(&["--config", path.to_str().unwrap(), "check-config"], &[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(!printed.contains("super-secret-value"), "{printed}");
    assert!(printed.contains("client_id = \"identity\""), "{printed}");
    assert!(
        printed.contains("idle_timeout"),
        "defaults are shown: {printed}"
    );
}

#[test]
fn environment_variables_override_the_file() {
    let path = temp_file("toml", VALID);
    let output = run(
        &["--config", path.to_str().unwrap(), "check-config"],
        &[
            ("IDENTITY__SESSION__KEY_PREFIX", "from-env:"),
            ("IDENTITY__PROVIDERS__0__CLIENT_ID", "env-client"),
            ("IDENTITY__SERVER__WORKERS", "3"),
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.contains("key_prefix = \"from-env:\""), "{printed}");
    assert!(printed.contains("client_id = \"env-client\""), "{printed}");
    assert!(printed.contains("workers = 3"), "{printed}");
}

#[test]
fn a_secret_can_come_from_a_file_without_its_trailing_newline() {
    let secret = temp_file("secret", "from-a-file\n");
    let text = VALID.replace(
        "client_secret = \"super-secret-value\"",
        &format!("client_secret_file = \"{}\"", secret.display()),
    );
    let path = temp_file("toml", &text);
    let output = run(&["--config", path.to_str().unwrap(), "check-config"], &[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!String::from_utf8_lossy(&output.stdout).contains("from-a-file"));
}

#[test]
fn every_bad_key_is_named_at_once_and_the_exit_code_is_2() {
    let path = temp_file(
        "toml",
        r#"
[server]
public_url = "not a url"
colour = "blue"
[session]
idle_timeout = "soon"
[[providers]]
id = "local"
issuer = "http://127.0.0.1:9"
client_secret = "super-secret-value"
"#,
    );
    for args in [
        vec!["--config", path.to_str().unwrap()],
        vec!["--config", path.to_str().unwrap(), "check-config"],
    ] {
        let output = run(&args, &[]);
        assert_eq!(output.status.code(), Some(2));
        let message = String::from_utf8_lossy(&output.stderr);
        for key in [
            "server.public_url",
            "server.colour",
            "session.idle_timeout",
            "client_id",
        ] {
            assert!(message.contains(key), "{key} missing from: {message}");
        }
        assert!(!message.contains("super-secret-value"));
    }
}

#[test]
fn a_missing_config_file_exits_with_2() {
    let output = run(
        &["--config", "/nonexistent/identity.toml", "check-config"],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn sigterm_stops_the_service_cleanly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = temp_file(
        "toml",
        &VALID.replace("127.0.0.1:0", &format!("127.0.0.1:{port}")),
    );
    let mut child = Command::new(BINARY)
        .args(["--config", path.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the service did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stopped_at = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
}
