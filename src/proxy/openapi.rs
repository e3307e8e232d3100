//! The proxy routes in `/openapi.json`: one documented path per `proxy_path`
//! (`{proxy_path}/{rest}`), for every method, with the refusals of SPEC 9.

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{OpenApi, Required, ResponseBuilder};

use crate::config::TargetConfig;

const METHODS: [HttpMethod; 5] = [
    HttpMethod::Get,
    HttpMethod::Post,
    HttpMethod::Put,
    HttpMethod::Patch,
    HttpMethod::Delete,
];

const RESPONSES: [(&str, &str); 8] = [
    (
        "2XX",
        "The target's answer, passed through (as are its 3xx, 4xx and 5xx)",
    ),
    ("400", "INVALID_PARAMETER: the path would leave the target"),
    ("401", "UNAUTHORIZED: no session"),
    (
        "403",
        "TARGET_NOT_ALLOWED (provider or role), FORBIDDEN (no X-Requested-With nor allowed Origin)",
    ),
    ("413", "PAYLOAD_TOO_LARGE: the body exceeds proxy.max_body"),
    ("502", "TOKEN_UNAVAILABLE, UPSTREAM_UNAVAILABLE"),
    ("503", "SESSION_STORE_UNAVAILABLE"),
    ("default", "Whatever the target answers"),
];

/// Adds `{proxy_path}/{rest}` for each proxied target to `openapi`.
pub fn add_paths(openapi: &mut OpenApi, targets: &[TargetConfig]) {
    for target in targets {
        let Some(proxy_path) = &target.proxy_path else {
            continue;
        };
        let mut operation = OperationBuilder::new()
            .tag("proxy")
            .summary(Some(format!("API proxy to {}", target.url)))
            .description(Some(format!(
                "Forwarded to {}{{rest}} with the caller's token for this target attached; \
                 the body is streamed both ways. Needs the session cookie and \
                 X-Requested-With (or an allowed Origin).",
                target.url
            )))
            .parameter(
                ParameterBuilder::new()
                    .name("rest")
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .description(Some("The path below the target's URL")),
            )
            .parameter(
                ParameterBuilder::new()
                    .name("X-Requested-With")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .description(Some("Required unless Origin is ours or allowed")),
            )
            .security(SecurityRequirement::new("cookie", Vec::<String>::new()));
        for (status, description) in RESPONSES {
            operation = operation.response(status, ResponseBuilder::new().description(description));
        }
        let operation = operation.build();
        let item = PathItem::new(METHODS[0].clone(), operation.clone());
        let mut item = item;
        for method in &METHODS[1..] {
            let more = PathItem::new(method.clone(), operation.clone());
            item.merge_operations(more);
        }
        openapi
            .paths
            .paths
            .insert(format!("{proxy_path}/{{rest}}"), item);
    }
}
