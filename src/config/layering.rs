//! Layering: the TOML file (or nothing) first, then `IDENTITY__…` environment
//! variables on top, into one `toml::Table` for validation.
//!
//! Hand-rolled because neither the `config` crate nor figment can override one
//! element of an array of tables (`[[providers]]`) from the environment.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;

use toml::{Table, Value};

use super::Problem;
use super::take::join;

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "IDENTITY__";

/// Top-level keys holding arrays of tables; an env variable may create their elements.
const TABLE_ARRAYS: [&str; 2] = ["providers", "targets"];

/// Reads and parses a TOML file. `Ok(None)` when the file does not exist and
/// `must_exist` is false. Messages never quote file content (it may hold secrets).
pub(crate) fn read_file(path: &Path, must_exist: bool) -> Result<Option<Table>, Problem> {
    let key = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok(None),
        Err(e) => {
            return Err(Problem {
                key,
                message: format!("cannot read the configuration file: {e}"),
            });
        }
    };
    parse_document(&text)
        .map(Some)
        .map_err(|message| Problem { key, message })
}

/// Parses TOML text; the error gives line and column but no excerpt of the text.
pub(crate) fn parse_document(text: &str) -> Result<Table, String> {
    text.parse::<Table>().map_err(|e| {
        let message = e.message().trim_end();
        match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("invalid TOML at line {line}, column {column}: {message}")
            }
            None => format!("invalid TOML: {message}"),
        }
    })
}

/// Parses an env value as a TOML value (`8080`, `true`, `["a","b"]`) when it is one,
/// else takes it as a string.
pub(crate) fn parse_env_value(raw: &str) -> Value {
    raw.parse::<Value>()
        .unwrap_or_else(|_| Value::String(raw.to_owned()))
}

/// One segment of a variable name, ordered so that `2` comes before `10`.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Index(usize),
    Name(String),
}

fn sort_key(segments: &[String]) -> Vec<SortKey> {
    segments
        .iter()
        .map(|s| {
            s.parse()
                .map_or_else(|_| SortKey::Name(s.clone()), SortKey::Index)
        })
        .collect()
}

/// Applies `IDENTITY__SECTION__KEY` variables to `table`. Returns the raw text of
/// each value set, by dotted path, and the problems found (keyed by variable name;
/// never quoting the value).
pub(crate) fn apply_env(
    table: &mut Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> (HashMap<String, String>, Vec<Problem>) {
    let mut vars: Vec<(String, Vec<String>, String)> = env
        .into_iter()
        .filter_map(|(name, value)| {
            let rest = name.strip_prefix(ENV_PREFIX)?;
            let segments = rest.split("__").map(str::to_lowercase).collect();
            Some((name, segments, value))
        })
        .collect();
    // Sorted so that index 0 is created before index 1 whatever order the env has.
    vars.sort_by(|a, b| match sort_key(&a.1).cmp(&sort_key(&b.1)) {
        Ordering::Equal => a.0.cmp(&b.0),
        other => other,
    });

    let mut raw = HashMap::new();
    let mut problems = Vec::new();
    for (name, segments, value) in vars {
        if segments.iter().any(String::is_empty) {
            problems.push(Problem {
                key: name,
                message: "empty name segment (check the double underscores)".into(),
            });
            continue;
        }
        match set_in_table(table, &segments, "", parse_env_value(&value)) {
            Ok(path) => {
                raw.retain(|k: &String, _| !is_within(k, &path));
                raw.insert(path, value);
            }
            Err(message) => problems.push(Problem { key: name, message }),
        }
    }
    (raw, problems)
}

/// Whether `path` is `parent` or lies below it.
fn is_within(path: &str, parent: &str) -> bool {
    path.strip_prefix(parent)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

fn set_in_table(
    table: &mut Table,
    segments: &[String],
    path: &str,
    value: Value,
) -> Result<String, String> {
    let Some((key, rest)) = segments.split_first() else {
        return Err("empty variable name".into());
    };
    let here = join(path, key);
    if rest.is_empty() {
        table.insert(key.clone(), value);
        return Ok(here);
    }
    if !table.contains_key(key) {
        let empty = if path.is_empty() && TABLE_ARRAYS.contains(&key.as_str()) {
            Value::Array(Vec::new())
        } else {
            Value::Table(Table::new())
        };
        table.insert(key.clone(), empty);
    }
    match table.get_mut(key) {
        Some(Value::Table(sub)) => set_in_table(sub, rest, &here, value),
        Some(Value::Array(items)) => set_in_array(items, rest, &here, value),
        _ => Err(format!(
            "{here} is not a table, so it has no key \"{}\"",
            rest.join("__")
        )),
    }
}

fn set_in_array(
    items: &mut Vec<Value>,
    segments: &[String],
    path: &str,
    value: Value,
) -> Result<String, String> {
    let Some((selector, rest)) = segments.split_first() else {
        return Err("empty variable name".into());
    };
    let index = match selector.parse::<usize>() {
        Ok(i) if i < items.len() => i,
        Ok(i) if i == items.len() => {
            items.push(Value::Table(Table::new()));
            i
        }
        Ok(i) => {
            return Err(format!(
                "{path} has {} entries; index {i} would leave a gap (indexes start at 0)",
                items.len()
            ));
        }
        Err(_) => {
            let matching: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| {
                    item.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| id.to_lowercase() == *selector)
                })
                .map(|(i, _)| i)
                .collect();
            match matching.as_slice() {
                [i] => *i,
                [] => return Err(format!("no entry of {path} has the id \"{selector}\"")),
                _ => {
                    return Err(format!(
                        "several entries of {path} have the id \"{selector}\" (ignoring case); use the index"
                    ));
                }
            }
        }
    };
    let here = format!("{path}[{index}]");
    if rest.is_empty() {
        return match items.get_mut(index) {
            Some(slot) => {
                *slot = value;
                Ok(here)
            }
            None => Err(format!("{here} does not exist")),
        };
    }
    match items.get_mut(index) {
        Some(Value::Table(sub)) => set_in_table(sub, rest, &here, value),
        _ => Err(format!("{here} is not a table")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn env_values_parse_as_toml_when_they_can() {
        assert_eq!(parse_env_value("8080"), Value::Integer(8080));
        assert_eq!(parse_env_value("true"), Value::Boolean(true));
        assert_eq!(
            parse_env_value(r#"["a","b"]"#),
            Value::Array(vec![Value::String("a".into()), Value::String("b".into())])
        );
        assert_eq!(
            parse_env_value("redis://x:6379"),
            Value::String("redis://x:6379".into())
        );
        assert_eq!(
            parse_env_value("1\nx = 2"),
            Value::String("1\nx = 2".into())
        );
        assert_eq!(
            parse_env_value("\"quoted\""),
            Value::String("quoted".into())
        );
        assert_eq!(parse_env_value(""), Value::String(String::new()));
    }

    #[test]
    fn indexes_are_applied_in_numeric_order_and_may_append() {
        let mut t = Table::new();
        let vars: Vec<(String, String)> = (0..12)
            .rev()
            .map(|i| (format!("IDENTITY__PROVIDERS__{i}__ID"), format!("p{i}")))
            .collect();
        let (_, problems) = apply_env(&mut t, vars);
        assert!(problems.is_empty(), "{problems:?}");
        let providers = t["providers"].as_array().unwrap();
        assert_eq!(providers.len(), 12);
        assert_eq!(providers[10]["id"].as_str(), Some("p10"));
    }

    #[test]
    fn bad_selectors_are_reported_by_variable_name_without_the_value() {
        let mut t = parse_document("[[providers]]\nid = \"a\"\n[server]\nbind = \"x\"\n").unwrap();
        let (_, problems) = apply_env(
            &mut t,
            env(&[
                ("IDENTITY__PROVIDERS__NOPE__CLIENT_SECRET", "s3cret"),
                ("IDENTITY__PROVIDERS__5__CLIENT_SECRET", "s3cret"),
                ("IDENTITY__SERVER__BIND__X", "s3cret"),
                ("IDENTITY__SERVER____BIND", "s3cret"),
                ("OTHER__SERVER__BIND", "ignored"),
            ]),
        );
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(keys.contains(&"IDENTITY__PROVIDERS__NOPE__CLIENT_SECRET"));
        assert!(problems.iter().all(|p| !p.message.contains("s3cret")));
    }

    #[test]
    fn toml_errors_give_a_position_but_no_excerpt() {
        let err = parse_document("a = 1\nclient_secret = \"hunter2\n").unwrap_err();
        assert!(err.starts_with("invalid TOML at line 2"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
