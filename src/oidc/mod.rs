//! OpenID Connect: providers (discovery, keys), the code flow, claim mapping and client
//! authentication.

pub mod authorize_url;
pub mod backchannel;
pub mod bearer;
pub mod claims;
pub mod client_auth;
pub mod dpop;
pub mod flow;
pub mod id_token;
pub mod jwt;
pub mod login;
pub mod logout;
pub mod logout_token;
pub mod portal;
pub mod provider;
pub mod refresh;
pub mod registry;
pub mod revoke;
pub mod seam;
pub mod session_list;
pub mod token_endpoint;

pub use provider::{Discovered, Provider};
pub use registry::ProviderRegistry;
