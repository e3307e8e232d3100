//! Guards the module rules of ARCHITECTURE.md: every top-level module of `src/` has a
//! layer, and a module may only name (`crate::…`) modules of lower layers. That forbids
//! the web layer arrows (`oidc/` naming `routes`, `targets/` naming `state`, …) and any
//! cycle between top-level modules; a separate search reports cycles by name, between
//! top-level modules and between the files of `src/` (a file and its `mod.rs` aside).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, lowest first; the same table as in ARCHITECTURE.md.
const LAYERS: &[&[&str]] = &[
    &[
        "clock",
        "crypto",
        "origin",
        "store",
        "cli",
        "metrics",
        "client_address",
        "spans",
    ],
    &["config", "observed_store", "redirect", "error"],
    &[
        "session",
        "single_flight",
        "upstream_health",
        "pages",
        "extract",
        "telemetry",
        "http_client",
        "limits",
    ],
    &["arcgis"],
    &["cookies", "oidc"],
    &["caller"],
    &["targets"],
    &["proxy"],
    &["state"],
    &["routes"],
    &["startup"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Top-level module → the top-level modules its files name through `crate::`.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The top-level modules `source` names (in `use` lines and inline `crate::` paths).
fn named_modules(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = rest.get(at + "crate::".len()..).unwrap_or_default();
        match rest.strip_prefix('{') {
            Some(group) => names.extend(group_heads(group)),
            None => names.extend(Some(identifier(rest)).filter(|name| !name.is_empty())),
        }
    }
    names
}

/// The identifier `text` starts with.
fn identifier(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The first segment of each item of a `{a::b, c, d::{e, f}}` group (after its `{`).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 1;
    let mut item_start = true;
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => item_start = true,
            c if item_start && depth == 1 && !c.is_whitespace() => {
                heads.push(identifier(group.get(at..).unwrap_or_default()));
                item_start = false;
            }
            _ => {}
        }
    }
    heads.retain(|head| !head.is_empty());
    heads
}

/// The import graph of `files` (path relative to `src/` → source).
fn graph(files: &BTreeMap<String, String>) -> Graph {
    let mut graph = Graph::new();
    for (path, source) in files {
        if path == "lib.rs" || path == "main.rs" {
            continue;
        }
        let module = path
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_owned();
        let named = graph.entry(module.clone()).or_default();
        for name in named_modules(source) {
            if name != module {
                named.insert(name);
            }
        }
    }
    graph
}

/// Every arrow the layers forbid, and every module without a layer.
fn violations(graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    for (from, targets) in graph {
        let Some(from_layer) = layer_of(from) else {
            found.push(format!(
                "module `{from}` has no layer: add it to ARCHITECTURE.md and LAYERS"
            ));
            continue;
        };
        for to in targets {
            match layer_of(to) {
                Some(to_layer) if to_layer < from_layer => {}
                Some(_) => found.push(format!(
                    "`{from}` must not import `{to}` (same or higher layer)"
                )),
                None => found.push(format!("`{from}` names `{to}`, which has no layer")),
            }
        }
    }
    found
}

/// One cycle between top-level modules, if there is any.
fn cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == node) {
            let mut cycle = path.get(start..).unwrap_or_default().to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// A file's node: its path under `src/` without `.rs` (and without `/mod`).
fn file_node(path: &str) -> String {
    let node = path.trim_end_matches(".rs");
    node.strip_suffix("/mod").unwrap_or(node).to_owned()
}

/// The paths (as segment lists from `base`) that `code` names after `prefix`
/// (`crate::` or `super::`), groups (`{a::b, c}`) split into their items.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let segments = |text: &str| -> Vec<String> {
        let mut segments = Vec::new();
        let mut rest = text;
        loop {
            let name = identifier(rest);
            if name.is_empty() {
                break;
            }
            rest = rest.get(name.len()..).unwrap_or_default();
            segments.push(name);
            match rest.strip_prefix("::") {
                Some(more) => rest = more,
                None => break,
            }
        }
        segments
    };
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        rest = rest.get(at + prefix.len()..).unwrap_or_default();
        match rest.strip_prefix('{') {
            Some(group) => {
                let end = group.find('}').unwrap_or(group.len());
                for item in group.get(..end).unwrap_or_default().split(',') {
                    found.push(segments(item.trim()));
                }
            }
            None => found.push(segments(rest)),
        }
    }
    found
}

/// File → the files of `src/` it names (through `crate::…` and `super::…`, resolved to the
/// longest prefix that is a file), leaving out a file's own ancestors and descendants
/// (`mod.rs` declares and re-exports its children).
fn file_graph(files: &BTreeMap<String, String>) -> Graph {
    let nodes: BTreeSet<String> = files.keys().map(|path| file_node(path)).collect();
    let related = |a: &str, b: &str| {
        a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
    };
    let resolve = |base: &str, segments: &[String]| -> Option<String> {
        let mut best = None;
        let mut node = base.to_owned();
        for segment in segments {
            if !node.is_empty() {
                node.push('/');
            }
            node.push_str(segment);
            if nodes.contains(&node) {
                best = Some(node.clone());
            }
        }
        best
    };
    let mut graph = Graph::new();
    for (path, source) in files {
        if path == "lib.rs" || path == "main.rs" {
            continue;
        }
        let node = file_node(path);
        let code: String = source
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let parent = node.rsplit_once('/').map_or("", |(parent, _)| parent);
        let named = graph.entry(node.clone()).or_default();
        let targets = paths_after(&code, "crate::")
            .into_iter()
            .filter_map(|segments| resolve("", &segments))
            .chain(
                paths_after(&code, "super::")
                    .into_iter()
                    .filter_map(|segments| resolve(parent, &segments)),
            );
        for target in targets {
            if !related(&node, &target) {
                named.insert(target);
            }
        }
    }
    graph
}

fn read_sources(
    dir: &Path,
    base: &Path,
    files: &mut BTreeMap<String, String>,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            read_sources(&path, base, files)?;
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let relative = path.strip_prefix(base).unwrap_or(&path);
            let relative = relative.to_string_lossy().replace('\\', "/");
            files.insert(relative, std::fs::read_to_string(&path)?);
        }
    }
    Ok(())
}

fn source_tree() -> std::io::Result<BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    read_sources(&src, &src, &mut files)?;
    Ok(files)
}

#[test]
fn every_import_in_src_points_to_a_lower_layer() {
    let found = violations(&graph(&source_tree().unwrap()));
    assert!(found.is_empty(), "forbidden imports:\n{}", found.join("\n"));
}

#[test]
fn no_cycle_between_top_level_modules_of_src() {
    let graph = graph(&source_tree().unwrap());
    assert_eq!(cycle(&graph), None);
}

#[test]
fn no_cycle_between_files_of_src() {
    let graph = file_graph(&source_tree().unwrap());
    assert_eq!(cycle(&graph), None);
}

#[test]
fn a_cycle_between_files_of_one_module_is_named() {
    let mut files = BTreeMap::new();
    files.insert(
        "targets/mod.rs".to_owned(),
        "mod issue;\nmod jwt;\npub use issue::TokenDeps;\n".to_owned(),
    );
    files.insert(
        "targets/issue.rs".to_owned(),
        "use super::{cache::Slot, jwt};\nuse super::Target;\n".to_owned(),
    );
    files.insert(
        "targets/jwt.rs".to_owned(),
        "use super::issue::TokenDeps;\n".to_owned(),
    );
    files.insert("targets/cache.rs".to_owned(), String::new());
    files.insert(
        "oidc/flow.rs".to_owned(),
        "use crate::targets::jwt::sign;\n".to_owned(),
    );
    let graph = file_graph(&files);
    assert_eq!(
        cycle(&graph),
        Some(vec![
            "targets/jwt".to_owned(),
            "targets/issue".to_owned(),
            "targets/jwt".to_owned()
        ])
    );
    assert_eq!(
        graph.get("oidc/flow"),
        Some(&BTreeSet::from(["targets/jwt".to_owned()]))
    );
    assert_eq!(
        graph.get("targets/issue"),
        Some(&BTreeSet::from([
            "targets/cache".to_owned(),
            "targets/jwt".to_owned()
        ]))
    );
}

#[test]
fn an_oidc_file_that_imports_routes_is_refused() {
    let mut files = BTreeMap::new();
    files.insert(
        "oidc/flow.rs".to_owned(),
        "use crate::error::ApiError;\nuse crate::routes::callback;\n".to_owned(),
    );
    let found = violations(&graph(&files));
    assert_eq!(
        found,
        vec!["`oidc` must not import `routes` (same or higher layer)".to_owned()]
    );
}

#[test]
fn inline_paths_and_groups_count_as_imports() {
    let source = "use crate::{state::AppState, session};\nuse crate::oidc::{Provider, claims};\nuse crate::{\n    cookies::{Cookie, Names},\n    clock,\n};\nfn f(_: crate::targets::Target) {}\n// crate::startup in a comment is ignored\n";
    let names: Vec<String> = named_modules(source).into_iter().collect();
    assert_eq!(
        names,
        ["clock", "cookies", "oidc", "session", "state", "targets"]
    );
}

#[test]
fn a_cycle_is_named() {
    let mut files = BTreeMap::new();
    files.insert(
        "session/mod.rs".to_owned(),
        "use crate::oidc::Provider;".to_owned(),
    );
    files.insert(
        "oidc/mod.rs".to_owned(),
        "use crate::session::Profile;".to_owned(),
    );
    let graph = graph(&files);
    assert_eq!(
        cycle(&graph),
        Some(vec![
            "oidc".to_owned(),
            "session".to_owned(),
            "oidc".to_owned()
        ])
    );
    assert_eq!(violations(&graph).len(), 1);
}
