//! `deploy/grafana/identity-service.json`: every metric its PromQL expressions query is a
//! series (or, for a histogram, a family) that `/metrics` of a running instance exports,
//! once the routes the dashboard watches have been exercised.

use std::collections::BTreeSet;

use crate::fake_op::{FakeOp, TestUser};
use crate::helpers::{AppOptions, browser, spawn_app_for};
use crate::targets::post_token;
use crate::upstream::Upstream;

const DASHBOARD: &str = include_str!("../../deploy/grafana/identity-service.json");

/// PromQL words that are not metric names.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
];

/// Every expression of the dashboard: panel targets and template variable queries.
fn expressions(dashboard: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    fn walk(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr" | "definition", serde_json::Value::String(text)) => {
                            found.push(text.clone());
                        }
                        _ => walk(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
            _ => {}
        }
    }
    walk(dashboard, &mut found);
    found
}

/// Removes every `open … close` group (label matchers, ranges, grouping labels).
fn without_groups(text: &str, open: char, close: char) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for character in text.chars() {
        if character == open {
            depth += 1;
            out.push(' ');
        } else if character == close && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            out.push(character);
        }
    }
    out
}

/// The metric names an expression selects: identifiers that are not functions (followed
/// by `(`), keywords, label lists of `by`/`without`, label matchers, strings or ranges;
/// for `label_values(metric, label)` the metric.
fn metric_names(expression: &str) -> BTreeSet<String> {
    let mut text = without_groups(expression, '{', '}');
    text = without_groups(&text, '[', ']');
    // Strings ("…") and the label lists after by/without.
    let mut cleaned = String::new();
    let mut in_string = false;
    for character in text.chars() {
        if character == '"' {
            in_string = !in_string;
            continue;
        }
        if !in_string {
            cleaned.push(character);
        }
    }
    for keyword in ["by", "without", "on", "ignoring"] {
        while let Some(start) = find_word(&cleaned, keyword) {
            let rest = &cleaned[start + keyword.len()..];
            let Some(open) = rest.find('(') else { break };
            let Some(close) = rest.find(')') else { break };
            cleaned = format!("{} {}", &cleaned[..start], &rest[close + 1..].to_owned());
            let _ = open;
        }
    }
    let cleaned = cleaned.replace("label_values(", "label_values (");
    let mut names = BTreeSet::new();
    let characters: Vec<char> = cleaned.chars().collect();
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        if character.is_ascii_alphabetic() || character == '_' || character == ':' {
            let start = index;
            while index < characters.len()
                && (characters[index].is_ascii_alphanumeric()
                    || characters[index] == '_'
                    || characters[index] == ':')
            {
                index += 1;
            }
            let word: String = characters[start..index].iter().collect();
            let next = characters[index..].iter().find(|c| !c.is_whitespace());
            let is_function = next == Some(&'(');
            let is_label_values_label = word != "label_values"
                && characters[..start]
                    .iter()
                    .rev()
                    .find(|c| !c.is_whitespace())
                    == Some(&',');
            if !is_function
                && !is_label_values_label
                && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str())
                && !word.starts_with("$")
            {
                names.insert(word);
            }
        } else if character == '$' {
            // Grafana variables ($__rate_interval, $instance).
            index += 1;
            while index < characters.len()
                && (characters[index].is_ascii_alphanumeric() || characters[index] == '_')
            {
                index += 1;
            }
        } else if character.is_ascii_digit() {
            while index < characters.len()
                && (characters[index].is_ascii_alphanumeric() || characters[index] == '.')
            {
                index += 1;
            }
        } else {
            index += 1;
        }
    }
    names
}

/// The byte offset of `word` as a whole word in `text`.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    text.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + word.len()).copied();
        let boundary = |b: Option<u8>| b.is_none_or(|b| !(b.is_ascii_alphanumeric() || b == b'_'));
        boundary(before) && boundary(after)
    })
}

#[test]
fn the_extractor_finds_metrics_and_skips_functions_labels_and_variables() {
    let names = metric_names(
        r#"histogram_quantile(0.95, sum by (le, endpoint) (rate(a_seconds_bucket{instance=~"$instance", status="5.."}[$__rate_interval]))) / sum without (x) (b_total)"#,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        vec!["a_seconds_bucket", "b_total"]
    );
    assert_eq!(
        metric_names("label_values(identity_http_requests_total, instance)")
            .into_iter()
            .collect::<Vec<_>>(),
        vec!["identity_http_requests_total"]
    );
}

#[tokio::test]
async fn every_metric_the_dashboard_queries_is_exported() {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 10);
    let mut queried = BTreeSet::new();
    for expression in expressions(&dashboard) {
        queried.extend(metric_names(&expression));
    }
    for family in [
        "identity_http_requests_total",
        "identity_http_requests_duration_seconds_bucket",
        "identity_logins_total",
        "identity_token_requests_total",
        "identity_session_store_errors_total",
        "identity_proxy_requests_total",
        "identity_refusals_total",
    ] {
        assert!(
            queried.contains(family),
            "the dashboard does not show {family}"
        );
    }

    // An instance with a proxied target, exercised: a login, a failed callback, tokens
    // (one by token exchange), a proxied request, a refusal and a logout.
    let upstream = Upstream::start().await;
    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            tail: format!(
                "[[targets]]\nurl = \"{}/v1/\"\nstrategy = \"access_token\"\nproxy_path = \"/api/echo\"\n\
                 [[targets]]\nurl = \"https://x.example.com/\"\nstrategy = \"exchange\"\naudience = \"x\"\n",
                upstream.address
            ),
            ..AppOptions::default()
        },
    )
    .await;
    app.login(&TestUser::alice()).await;
    assert_eq!(
        post_token(&app, &format!("{}/v1/", upstream.address))
            .await
            .status(),
        200
    );
    // A token exchange: a provider call (identity_upstream_request_duration_seconds).
    assert_eq!(
        post_token(&app, "https://x.example.com/").await.status(),
        200
    );
    let proxied = app
        .client
        .get(app.url("/api/echo/items"))
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);
    let refused = browser()
        .get(app.url("/login?provider=local&returnURL=javascript:alert(1)"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let failed = browser()
        .get(app.url("/callback?state=forged-state-value&code=forged-code"))
        .send()
        .await
        .unwrap();
    assert!(failed.status().is_client_error() || failed.status().is_redirection());
    assert_eq!(
        app.client
            .get(app.url("/logout"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let metrics = app.get("/metrics").await.text().await.unwrap();
    let mut exported = BTreeSet::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            exported.extend(rest.split(' ').next().map(str::to_owned));
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            exported.insert(name.to_owned());
        }
    }
    let missing: Vec<&String> = queried
        .iter()
        .filter(|name| !exported.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries metrics /metrics does not export: {missing:?}\n{metrics}"
    );
}
