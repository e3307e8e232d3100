//! SPEC 12: pushed authorization requests (RFC 9126), DPoP (RFC 9449) and the FAPI 2.0
//! profile, against the real binary (configuration) and the fake provider.

use std::process::Command;

use crate::fake_op::fixture_path;
use crate::helpers::temp_file;

const BINARY: &str = env!("CARGO_BIN_EXE_identity-service");

/// `check-config` on `text`: exit code and stderr.
fn check_config(text: &str) -> (Option<i32>, String) {
    let path = temp_file("toml", text);
    let mut command = Command::new(BINARY);
    command
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("IDENTITY__")) {
        command.env_remove(name);
    }
    let output = command.output().unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_fapi2_provider_contradicted_by_its_config_stops_the_start_naming_each_key() {
    let text = r#"
[server]
bind = "127.0.0.1:0"
[[providers]]
id = "bank"
issuer = "http://127.0.0.1:9"
client_id = "identity"
profile = "fapi2"
par = "never"
dpop = false
client_secret = "bank-secret-value"
[[providers]]
id = "bank2"
issuer = "http://127.0.0.1:9"
client_id = "identity"
profile = "fapi2"
auth_method = "private_key_jwt"
private_key_file = "KEY"
private_key_alg = "RS256"
"#
    .replace("KEY", fixture_path("client-rsa.pem").to_str().unwrap());
    let (code, stderr) = check_config(&text);
    assert_eq!(code, Some(2), "{stderr}");
    for (key, fragment) in [
        (
            "providers[0].par",
            "\"never\" contradicts profile \"fapi2\"",
        ),
        ("providers[0].dpop", "false contradicts profile \"fapi2\""),
        (
            "providers[0].client_secret",
            "a client secret contradicts profile \"fapi2\"",
        ),
        (
            "providers[1].private_key_alg",
            "\"RS256\" contradicts profile \"fapi2\"",
        ),
    ] {
        assert!(
            stderr
                .lines()
                .any(|line| line.contains(key) && line.contains(fragment)),
            "{key}: {fragment} missing from:\n{stderr}"
        );
    }
    assert!(!stderr.contains("bank-secret-value"), "{stderr}");
}

#[test]
fn a_consistent_fapi2_provider_loads_with_what_the_profile_implies() {
    let text = r#"
[[providers]]
id = "bank"
issuer = "http://127.0.0.1:9"
client_id = "identity"
profile = "fapi2"
private_key_file = "KEY"
private_key_alg = "PS256"
"#
    .replace("KEY", fixture_path("client-rsa.pem").to_str().unwrap());
    let path = temp_file("toml", &text);
    let output = Command::new(BINARY)
        .args(["--config", path.to_str().unwrap(), "check-config"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "profile = \"fapi2\"",
        "par = \"always\"",
        "dpop = true",
        "private_key_alg = \"PS256\"",
    ] {
        assert!(printed.contains(line), "{line} missing from:\n{printed}");
    }
}
