//! Reading a layered `toml::Table` by taking keys out of it: each accessor removes
//! its key, checks the type and records a [`Problem`] instead of stopping, so the
//! keys left over at the end are exactly the unknown ones, each with its full path.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::{Table, Value};

use super::Problem;
use super::duration;
use super::secret::{self, Secret};

/// Collects problems; knows which values came from the environment.
pub(crate) struct Problems {
    /// Every problem found so far, in order.
    pub(crate) list: Vec<Problem>,
    /// Raw text of values set from the environment, by dotted path. An env value that
    /// happens to parse as a number or bool is still accepted where text is expected.
    pub(crate) env_raw: HashMap<String, String>,
}

impl Problems {
    pub(crate) fn new(env_raw: HashMap<String, String>) -> Self {
        Self {
            list: Vec::new(),
            env_raw,
        }
    }

    /// Records one problem.
    pub(crate) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}

/// A table being taken apart, with its path for messages.
pub(crate) struct Section {
    path: String,
    table: Table,
    known: Vec<String>,
}

/// Joins a parent path and a key into a dotted path.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

impl Section {
    /// The top-level table.
    pub(crate) fn root(table: Table) -> Self {
        Self {
            path: String::new(),
            table,
            known: Vec::new(),
        }
    }

    fn new(path: String, table: Table) -> Self {
        Self {
            path,
            table,
            known: Vec::new(),
        }
    }

    /// The dotted path of `key` in this section.
    pub(crate) fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// This section's own path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// Whether `key` is present (does not take it).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Takes `key` when it is the empty string (`Some(true)`); leaves any other value.
    pub(crate) fn take_if_empty_string(&mut self, key: &str) -> Option<bool> {
        let empty = matches!(self.table.get(key), Some(Value::String(text)) if text.is_empty());
        if empty {
            self.take(key);
        }
        empty.then_some(true)
    }

    /// Removes and returns a raw value.
    pub(crate) fn take(&mut self, key: &str) -> Option<Value> {
        self.known.push(key.to_owned());
        self.table.remove(key)
    }

    fn wrong_type(&self, p: &mut Problems, key: &str, expected: &str, found: &Value) {
        p.push(
            self.path_of(key),
            format!("expected {expected}, found {}", type_name(found)),
        );
    }

    /// A string value. Values set from the environment are taken as their raw text.
    pub(crate) fn string(&mut self, p: &mut Problems, key: &str) -> Option<String> {
        match self.take(key)? {
            Value::String(s) => Some(s),
            other => {
                if let Some(raw) = p.env_raw.get(&self.path_of(key)) {
                    return Some(raw.clone());
                }
                self.wrong_type(p, key, "a string", &other);
                None
            }
        }
    }

    /// An optional string where `""` means "not set".
    pub(crate) fn opt_string(&mut self, p: &mut Problems, key: &str) -> Option<String> {
        self.string(p, key).filter(|s| !s.is_empty())
    }

    /// A string that must be present and non-empty.
    pub(crate) fn required_string(&mut self, p: &mut Problems, key: &str) -> Option<String> {
        let present = self.has(key);
        match self.string(p, key) {
            Some(s) if !s.trim().is_empty() => Some(s),
            Some(_) => {
                p.push(self.path_of(key), "must not be empty");
                None
            }
            None => {
                if !present {
                    p.push(self.path_of(key), "is required");
                }
                None
            }
        }
    }

    /// A boolean.
    pub(crate) fn bool(&mut self, p: &mut Problems, key: &str) -> Option<bool> {
        match self.take(key)? {
            Value::Boolean(b) => Some(b),
            other => {
                self.wrong_type(p, key, "true or false", &other);
                None
            }
        }
    }

    /// A non-negative integer.
    pub(crate) fn usize(&mut self, p: &mut Problems, key: &str) -> Option<usize> {
        match self.take(key)? {
            Value::Integer(i) => match usize::try_from(i) {
                Ok(n) => Some(n),
                Err(_) => {
                    p.push(
                        self.path_of(key),
                        format!("must not be negative, found {i}"),
                    );
                    None
                }
            },
            other => {
                self.wrong_type(p, key, "an integer", &other);
                None
            }
        }
    }

    /// An array of strings.
    pub(crate) fn strings(&mut self, p: &mut Problems, key: &str) -> Option<Vec<String>> {
        let path = self.path_of(key);
        match self.take(key)? {
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.into_iter().enumerate() {
                    match item {
                        Value::String(s) => out.push(s),
                        other => {
                            ok = false;
                            p.push(
                                format!("{path}[{i}]"),
                                format!("expected a string, found {}", type_name(&other)),
                            );
                        }
                    }
                }
                ok.then_some(out)
            }
            other => {
                let hint = if p.env_raw.contains_key(&path) {
                    " (in an environment variable write it as TOML, e.g. [\"a\", \"b\"])"
                } else {
                    ""
                };
                p.push(
                    path,
                    format!(
                        "expected an array of strings, found {}{hint}",
                        type_name(&other)
                    ),
                );
                None
            }
        }
    }

    /// Each string of an array parsed by `parse`; bad items are reported with their index.
    pub(crate) fn parsed_list<T>(
        &mut self,
        p: &mut Problems,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<Vec<T>> {
        let path = self.path_of(key);
        let items = self.strings(p, key)?;
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match parse(item) {
                Ok(v) => out.push(v),
                Err(e) => {
                    ok = false;
                    p.push(format!("{path}[{i}]"), e);
                }
            }
        }
        ok.then_some(out)
    }

    /// A duration with a unit.
    pub(crate) fn duration(&mut self, p: &mut Problems, key: &str) -> Option<Duration> {
        match self.take(key)? {
            Value::String(s) => match duration::parse(&s) {
                Ok(d) => Some(d),
                Err(e) => {
                    p.push(self.path_of(key), e);
                    None
                }
            },
            other => {
                p.push(
                    self.path_of(key),
                    format!(
                        "expected a duration text with a unit such as \"30m\", found {}",
                        type_name(&other)
                    ),
                );
                None
            }
        }
    }

    /// A URL. The message never repeats the value (it may hold a password).
    pub(crate) fn url(&mut self, p: &mut Problems, key: &str) -> Option<url::Url> {
        let text = self.opt_string(p, key)?;
        match url::Url::parse(&text) {
            Ok(u) => Some(u),
            Err(e) => {
                p.push(self.path_of(key), format!("invalid URL: {e}"));
                None
            }
        }
    }

    /// A URL that must be present.
    pub(crate) fn required_url(&mut self, p: &mut Problems, key: &str) -> Option<url::Url> {
        if !self.has(key) {
            p.push(self.path_of(key), "is required");
            return None;
        }
        let present_but_empty =
            matches!(self.table.get(key), Some(Value::String(s)) if s.is_empty());
        if present_but_empty {
            self.take(key);
            p.push(self.path_of(key), "must not be empty");
            return None;
        }
        self.url(p, key)
    }

    /// A string that must be one of `allowed`.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        p: &mut Problems,
        key: &str,
        allowed: &[(&str, T)],
    ) -> Option<T> {
        let text = self.string(p, key)?;
        match allowed.iter().find(|(name, _)| *name == text) {
            Some((_, v)) => Some(*v),
            None => {
                p.push(
                    self.path_of(key),
                    format!("\"{text}\" is not one of {}", names(allowed)),
                );
                None
            }
        }
    }

    /// A secret given either as `key` or as `key_file`; both at once is an error.
    /// Messages never contain the secret.
    pub(crate) fn secret(&mut self, p: &mut Problems, key: &str) -> Option<Secret> {
        let file_key = format!("{key}_file");
        let path = self.path_of(key);
        let inline = self.take(key);
        let file = self.take(&file_key);
        match (inline, file) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                p.push(path, format!("give either {key} or {file_key}, not both"));
                None
            }
            (Some(Value::String(s)), None) => non_empty_secret(p, path, s),
            (Some(other), None) => match p.env_raw.get(&path) {
                Some(raw) => {
                    let raw = raw.clone();
                    non_empty_secret(p, path, raw)
                }
                None => {
                    p.push(
                        path,
                        format!("expected a string, found {}", type_name(&other)),
                    );
                    None
                }
            },
            (None, Some(Value::String(f))) if !f.is_empty() => {
                match secret::read_secret_file(std::path::Path::new(&f)) {
                    Ok(s) => non_empty_secret(p, self.path_of(&file_key), s),
                    Err(e) => {
                        p.push(self.path_of(&file_key), e);
                        None
                    }
                }
            }
            (None, Some(Value::String(_))) => {
                p.push(self.path_of(&file_key), "must not be empty");
                None
            }
            (None, Some(other)) => {
                p.push(
                    self.path_of(&file_key),
                    format!("expected a file path string, found {}", type_name(&other)),
                );
                None
            }
        }
    }

    /// A path to a file that must exist and be readable (private keys); `""` means not set.
    pub(crate) fn readable_file(&mut self, p: &mut Problems, key: &str) -> Option<PathBuf> {
        let text = self.opt_string(p, key)?;
        let path = PathBuf::from(text);
        match secret::check_readable_file(&path) {
            Ok(()) => Some(path),
            Err(e) => {
                p.push(self.path_of(key), e);
                None
            }
        }
    }

    /// A sub-table; absent gives an empty section so defaults apply.
    pub(crate) fn section(&mut self, p: &mut Problems, key: &str) -> Section {
        let path = self.path_of(key);
        match self.take(key) {
            None => Section::new(path, Table::new()),
            Some(Value::Table(t)) => Section::new(path, t),
            Some(other) => {
                p.push(
                    path.clone(),
                    format!("expected a table, found {}", type_name(&other)),
                );
                Section::new(path, Table::new())
            }
        }
    }

    /// An array of tables (`[[key]]`).
    pub(crate) fn sections(&mut self, p: &mut Problems, key: &str) -> Vec<Section> {
        let path = self.path_of(key);
        match self.take(key) {
            None => Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    match item {
                        Value::Table(t) => out.push(Section::new(item_path, t)),
                        other => p.push(
                            item_path,
                            format!("expected a table, found {}", type_name(&other)),
                        ),
                    }
                }
                out
            }
            Some(other) => {
                p.push(
                    path,
                    format!(
                        "expected an array of tables ([[{key}]]), found {}",
                        type_name(&other)
                    ),
                );
                Vec::new()
            }
        }
    }

    /// Takes every remaining key that is one of `keys`, returning their names.
    pub(crate) fn take_any_of(&mut self, keys: &[&str]) -> Vec<String> {
        let found: Vec<String> = self
            .table
            .keys()
            .filter(|k| keys.contains(&k.as_str()))
            .cloned()
            .collect();
        for k in &found {
            self.table.remove(k);
        }
        found
    }

    /// Reports every key nobody took as unknown, with a suggestion when one is close.
    pub(crate) fn finish(self, p: &mut Problems) {
        for key in self.table.keys() {
            let message = match suggest(key, &self.known) {
                Some(near) => format!("unknown key (did you mean \"{near}\"?)"),
                None => "unknown key".to_owned(),
            };
            p.push(join(&self.path, key), message);
        }
    }
}

fn non_empty_secret(p: &mut Problems, path: String, s: String) -> Option<Secret> {
    if s.is_empty() {
        p.push(path, "must not be empty");
        None
    } else {
        Some(Secret::new(s))
    }
}

/// `"a", "b" or "c"` for messages.
pub(crate) fn names<T>(allowed: &[(&str, T)]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// The known key closest to `key` (edit distance at most 2), if any.
fn suggest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}
