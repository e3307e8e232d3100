//! Guards the module rules of ARCHITECTURE.md: every top-level module of `src/` has a
//! layer, and a module may only name (`crate::…`) modules of lower layers. That forbids
//! the web layer arrows (`oidc/` naming `routes`, `targets/` naming `state`, …) and any
//! cycle between top-level modules; a separate search reports cycles by name.

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
        "pages",
        "extract",
        "telemetry",
        "http_client",
        "limits",
        "arcgis",
    ],
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
