//! identity-service: OpenID Connect login sessions and downstream tokens for browser apps.
//! See README.md for what it does and how to run it, ARCHITECTURE.md for how `src/` is cut.

pub mod arcgis;
pub mod caller;
pub mod cli;
pub mod client_address;
pub mod clock;
pub mod config;
pub mod cookies;
pub mod crypto;
pub mod error;
pub mod extract;
pub mod http_client;
pub mod limits;
pub mod metrics;
pub mod observed_store;
pub mod oidc;
pub mod origin;
pub mod pages;
pub mod proxy;
pub mod redirect;
pub mod routes;
pub mod session;
pub mod single_flight;
pub mod spans;
pub mod startup;
pub mod state;
pub mod store;
pub mod targets;
pub mod telemetry;
pub mod upstream_health;
