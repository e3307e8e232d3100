//! Maps provider claims (ID token merged with userinfo) to the user we show: name, roles,
//! groups and attributes, each found by a configured dotted path such as
//! `realm_access.roles`.

use serde_json::{Map, Value};

use crate::config::ProviderConfig;
use crate::session::Profile;

/// The profile `config`'s claim paths select from `claims`.
pub fn map_profile(config: &ProviderConfig, claims: &Map<String, Value>) -> Profile {
    let name = lookup(claims, &config.name_claim)
        .and_then(Value::as_str)
        .or_else(|| claims.get("name").and_then(Value::as_str))
        .or_else(|| claims.get("sub").and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned();
    let mut attributes = Map::new();
    for attribute in &config.attributes {
        if let Some(value) = lookup(claims, attribute) {
            attributes.insert(attribute.clone(), value.clone());
        }
    }
    Profile {
        name,
        roles: strings_at(claims, config.roles_claim.as_deref()),
        groups: strings_at(claims, config.groups_claim.as_deref()),
        attributes,
    }
}

/// The value at `path`: the whole path as one claim name first (claim names such as
/// `https://example.com/roles` contain dots), then `a.b.c` as nested objects.
pub fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(path) {
        return Some(value);
    }
    let mut segments = path.split('.');
    let mut current = claims.get(segments.next()?)?;
    for segment in segments {
        current = current.as_object()?.get(segment)?;
    }
    Some(current)
}

fn strings_at(claims: &Map<String, Value>, path: Option<&str>) -> Vec<String> {
    match path.and_then(|path| lookup(claims, path)) {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        Some(Value::String(single)) => vec![single.clone()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn dotted_paths_reach_nested_claims_and_literal_names_win() {
        let claims = claims(json!({
            "realm_access": {"roles": ["admin", "gis"]},
            "https://example.com/groups": ["staff"],
            "sub": "u1"
        }));
        assert_eq!(
            strings_at(&claims, Some("realm_access.roles")),
            vec!["admin", "gis"]
        );
        assert_eq!(
            strings_at(&claims, Some("https://example.com/groups")),
            vec!["staff"]
        );
        assert!(strings_at(&claims, Some("missing.path")).is_empty());
        assert!(lookup(&claims, "sub.deeper").is_none());
    }
}
