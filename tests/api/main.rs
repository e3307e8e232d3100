//! Integration tests: the real app over HTTP, real Redis, an in-process fake provider.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable,
    clippy::todo
)]

mod arcgis;
mod backchannel;
mod bearer;
mod cli;
mod dashboard;
mod edge_checks;
mod fake_op;
mod fake_portal;
mod health_and_metadata;
mod helpers;
mod high_assurance;
mod hostile_input;
mod introspection_faults;
mod jwt_algorithms;
mod logging;
mod login;
mod logout;
mod multi_instance;
mod operate;
mod pending_login;
mod private_redis;
mod properties;
mod provider_faults;
mod proxy;
mod proxy_trust;
mod redaction;
mod redirects;
mod redis_access;
mod refusal_logs;
mod round_trips;
mod session_refresh;
mod session_store_faults;
mod sessions;
mod shutdown;
mod signing_keys;
mod store_suite;
mod targets;
mod token_strategies;
mod traces;
mod upstream;
mod user_sessions;
mod userinfo;
