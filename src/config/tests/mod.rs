//! Tests of loading, layering and validation as a whole.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod env;
mod loading;
mod operate;
mod proxy;
mod rules;
mod secrets;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A fresh folder under the system temp dir, removed when dropped.
pub(super) struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) fn temp_dir() -> TempDir {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "identity-config-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

pub(super) fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

pub(super) fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(super) fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

/// Loads TOML text; panics with the problems when it does not load.
pub(super) fn ok(text: &str, vars: &[(&str, &str)]) -> Config {
    load_str(text, env(vars)).unwrap_or_else(|e| panic!("expected a valid config, got:\n{e}"))
}

/// Loads TOML text that must fail; returns the problems.
pub(super) fn bad(text: &str, vars: &[(&str, &str)]) -> Vec<Problem> {
    match load_str(text, env(vars)) {
        Ok(config) => panic!("expected problems, got {config:?}"),
        Err(e) => e.problems,
    }
}

pub(super) fn has(problems: &[Problem], key: &str, fragment: &str) -> bool {
    problems
        .iter()
        .any(|p| p.key == key && p.message.contains(fragment))
}

pub(super) fn assert_problem(problems: &[Problem], key: &str, fragment: &str) {
    assert!(
        has(problems, key, fragment),
        "no problem at {key} containing {fragment:?} in {problems:#?}"
    );
}

pub(super) const PROVIDER: &str = r#"
[[providers]]
id = "local"
issuer = "http://127.0.0.1:9400"
client_id = "identity"
client_secret = "dev-secret-value"
"#;
