//! Secrets: a value that never shows itself in `Debug` or serialized output, and
//! the `<key>_file` rule (a file holding the secret, minus one trailing newline).

use std::fmt;
use std::path::Path;

use serde::{Serialize, Serializer};

/// What a masked secret prints as.
pub const MASK: &str = "***";

/// A secret string (client secret, password). `Debug` and `Serialize` print `"***"`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself; only for sending it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

/// Reads a secret from `path`, dropping exactly one trailing `\n` or `\r\n`
/// (what editors and `echo` add). The error never contains file content.
pub(crate) fn read_secret_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => format!("{} is not UTF-8 text", path.display()),
        _ => format!("cannot read {}: {e}", path.display()),
    })?;
    Ok(strip_one_newline(text))
}

/// Drops one trailing `\r\n` or `\n`, no more.
pub(crate) fn strip_one_newline(mut text: String) -> String {
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
    text
}

/// Checks that `path` names a regular file this process can open for reading.
pub(crate) fn check_readable_file(path: &Path) -> Result<(), String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    std::fs::File::open(path)
        .map(|_| ())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn debug_and_serialize_mask_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "\"***\"");
        #[derive(Serialize)]
        struct W {
            s: Secret,
        }
        let out = toml::to_string(&W { s }).unwrap();
        assert!(!out.contains("hunter2"));
        assert!(out.contains("***"));
    }

    #[test]
    fn exactly_one_trailing_newline_is_dropped() {
        assert_eq!(strip_one_newline("abc\n".into()), "abc");
        assert_eq!(strip_one_newline("abc\r\n".into()), "abc");
        assert_eq!(strip_one_newline("abc\n\n".into()), "abc\n");
        assert_eq!(strip_one_newline("abc\r\n\r\n".into()), "abc\r\n");
        assert_eq!(strip_one_newline("abc".into()), "abc");
        assert_eq!(strip_one_newline(" abc \n".into()), " abc ");
    }
}
