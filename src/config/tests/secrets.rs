//! Secrets: `_file` values, the both-given error, masking in output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

#[test]
fn secrets_can_come_from_files_minus_one_newline() {
    let dir = temp_dir();
    let lf = write(&dir, "lf", "file-secret\n");
    let crlf = write(&dir, "crlf", "crlf-secret\r\n");
    let two = write(&dir, "two", "two-newlines\n\n");
    let pw = write(&dir, "pw", "pass word\n");
    let text = format!(
        r#"
[[providers]]
id = "a"
issuer = "https://a.example.com"
client_id = "a"
client_secret_file = "{lf}"
[[providers]]
id = "b"
issuer = "https://b.example.com"
client_id = "b"
auth_method = "client_secret_post"
client_secret_file = "{crlf}"
[[targets]]
url = "https://api.example.com/"
strategy = "password"
token_url = "https://a.example.com/token"
client_id = "svc"
client_secret_file = "{two}"
username = "robot"
password_file = "{pw}"
"#,
        lf = lf.display(),
        crlf = crlf.display(),
        two = two.display(),
        pw = pw.display()
    );
    let c = ok(&text, &[]);
    assert!(
        matches!(&c.providers[0].client_auth, ClientAuth::ClientSecretBasic { secret } if secret.expose() == "file-secret")
    );
    assert!(
        matches!(&c.providers[1].client_auth, ClientAuth::ClientSecretPost { secret } if secret.expose() == "crlf-secret")
    );
    match &c.targets[0].strategy {
        Strategy::Password {
            client_secret,
            password,
            username,
            ..
        } => {
            assert_eq!(client_secret.expose(), "two-newlines\n");
            assert_eq!(password.expose(), "pass word");
            assert_eq!(username, "robot");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_secret_and_its_file_together_is_an_error() {
    let dir = temp_dir();
    let f = write(&dir, "s", "x\n");
    let text = format!("{PROVIDER}client_secret_file = \"{}\"\n", f.display());
    let problems = bad(&text, &[]);
    assert_problem(
        &problems,
        "providers[0].client_secret",
        "either client_secret or client_secret_file, not both",
    );
    assert!(!format!("{problems:?}").contains("dev-secret-value"));

    // Also when one of the two comes from the environment.
    let problems = bad(
        PROVIDER,
        &[(
            "IDENTITY__PROVIDERS__LOCAL__CLIENT_SECRET_FILE",
            &f.display().to_string(),
        )],
    );
    assert_problem(&problems, "providers[0].client_secret", "not both");

    let problems = bad(
        &PROVIDER.replace(
            "client_secret = \"dev-secret-value\"",
            "client_secret_file = \"/nonexistent/secret\"",
        ),
        &[],
    );
    assert_problem(
        &problems,
        "providers[0].client_secret_file",
        "cannot read /nonexistent/secret",
    );
}

#[test]
fn masked_output_never_contains_a_secret() {
    let dir = temp_dir();
    let f = write(&dir, "pw", "file-password-value\n");
    let text = format!(
        r#"
[session]
store = "redis"
redis_url = "rediss://user:redis-password-value@cache:6380"
[[providers]]
id = "local"
issuer = "https://op.example.com"
client_id = "identity"
client_secret = "provider-secret-value"
[[targets]]
url = "https://api.example.com/"
strategy = "password"
token_url = "https://op.example.com/token"
client_id = "svc"
client_secret = "target-secret-value"
username = "robot"
password_file = "{}"
[[targets]]
url = "https://api.example.com/cc/"
strategy = "client_credentials"
token_url = "https://op.example.com/token"
client_id = "svc"
auth_method = "client_secret_post"
client_secret = "cc-secret-value"
"#,
        f.display()
    );
    let c = ok(&text, &[]);
    let out = c.to_masked_toml();
    let debug = format!("{c:?}");
    for secret in [
        "provider-secret-value",
        "target-secret-value",
        "file-password-value",
        "redis-password-value",
        "cc-secret-value",
    ] {
        assert!(!out.contains(secret), "{secret} in\n{out}");
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(out.contains("client_secret = \"***\""), "{out}");
    assert!(
        out.contains("auth_method = \"client_secret_basic\""),
        "{out}"
    );
    assert!(out.contains("strategy = \"password\""), "{out}");
    assert!(out.contains("idle_timeout = \"30m\""), "{out}");
    // The masked output is itself a configuration that loads (with secrets "***").
    let reloaded = load_str(
        &out.replace("password = \"***\"", "password = \"x\""),
        no_env(),
    );
    assert!(reloaded.is_ok(), "{out}\n{}", reloaded.unwrap_err());
}

#[test]
fn redis_passwords_are_masked() {
    assert_eq!(
        mask_url_password("redis://:pw@h:6379/0"),
        "redis://:***@h:6379/0"
    );
    assert_eq!(
        mask_url_password("rediss://user:pw@h"),
        "rediss://user:***@h"
    );
    assert_eq!(mask_url_password("redis://h:6379"), "redis://h:6379");
    assert_eq!(
        mask_url_password("redis+cluster://u:pw@h1:1,h2:2"),
        "redis+cluster://u:***@h1:1,h2:2"
    );
}
