//! What a login or an ESRI bearer token makes of `community/self`
//! (<https://developers.arcgis.com/rest/users-groups-and-items/self/>, fields as in
//! <https://developers.arcgis.com/rest/users-groups-and-items/user/>): the user's fields as
//! claims, `roles` per `roles_from` and `groups` as the group titles, so the provider's
//! claim paths (`username`, `roles`, `groups`, `attributes`) map it like any profile.

use serde_json::{Map, Value};

use crate::config::RolesFrom;

/// The claims of `user` (a `community/self` answer); `None` without a `username`.
pub fn claims(mut user: Map<String, Value>, roles_from: RolesFrom) -> Option<Map<String, Value>> {
    let username = user.get("username").and_then(Value::as_str)?.to_owned();
    if username.is_empty() {
        return None;
    }
    let roles: Vec<Value> = match roles_from {
        RolesFrom::Role => user
            .get("role")
            .and_then(Value::as_str)
            .map(|role| vec![Value::String(role.to_owned())])
            .unwrap_or_default(),
        RolesFrom::Privileges => strings(user.get("privileges")),
    };
    let groups: Vec<Value> = match user.get("groups") {
        Some(Value::Array(groups)) => groups
            .iter()
            .filter_map(|group| group.get("title").and_then(Value::as_str))
            .map(|title| Value::String(title.to_owned()))
            .collect(),
        _ => Vec::new(),
    };
    user.insert("sub".to_owned(), Value::String(username));
    user.insert("roles".to_owned(), Value::Array(roles));
    user.insert("groups".to_owned(), Value::Array(groups));
    Some(user)
}

fn strings(value: Option<&Value>) -> Vec<Value> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter(|item| item.is_string())
            .cloned()
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn user() -> Map<String, Value> {
        match json!({
            "username": "jdoe", "fullName": "Jane Doe", "role": "org_publisher",
            "privileges": ["portal:user:createItem", "portal:publisher:publishFeatures"],
            "groups": [{"id": "g1", "title": "Field crew"}, {"id": "g2", "title": "Editors"}]
        }) {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn roles_follow_roles_from_and_groups_are_titles() {
        let by_role = claims(user(), RolesFrom::Role).unwrap();
        assert_eq!(by_role["roles"], json!(["org_publisher"]));
        assert_eq!(by_role["groups"], json!(["Field crew", "Editors"]));
        assert_eq!(by_role["sub"], json!("jdoe"));
        let by_privileges = claims(user(), RolesFrom::Privileges).unwrap();
        assert_eq!(
            by_privileges["roles"],
            json!(["portal:user:createItem", "portal:publisher:publishFeatures"])
        );
    }

    #[test]
    fn a_profile_without_username_is_refused() {
        let mut anonymous = user();
        anonymous.remove("username");
        assert!(claims(anonymous, RolesFrom::Role).is_none());
    }
}
