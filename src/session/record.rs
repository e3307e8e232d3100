//! What a session holds: who the user is (already mapped to the userinfo shape) and the
//! provider's tokens. Stored sealed; see [`super::SessionService`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One logged-in browser session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Id of the provider the user logged in with.
    pub provider: String,
    /// The provider's `sub`.
    pub subject: String,
    /// The provider's session id (`sid` claim), for back-channel logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The user as `/userinfo` shows them.
    pub profile: Profile,
    /// Unix milliseconds of login.
    pub created_at_ms: i64,
    /// Unix milliseconds of the last idle-timer touch.
    pub last_touch_ms: i64,
    /// Tokens from the provider.
    pub tokens: ProviderTokens,
}

/// Name, roles, groups and attributes mapped from the configured claim paths.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    /// Display name (`name_claim`, falling back to `sub`).
    pub name: String,
    /// Roles (`roles_claim`).
    pub roles: Vec<String>,
    /// Groups (`groups_claim`).
    pub groups: Vec<String>,
    /// Configured `attributes` that the provider sent.
    pub attributes: Map<String, Value>,
}

/// The provider's tokens for this session.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct ProviderTokens {
    /// The raw ID token (for `id_token_hint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Unix seconds when the access token expires, when the provider said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_expires_at: Option<i64>,
    /// Unix seconds when the access token was obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_issued_at: Option<i64>,
    /// The refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for ProviderTokens {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProviderTokens")
            .field("id_token", &self.id_token.as_ref().map(|_| "***"))
            .field("access_token", &self.access_token.as_ref().map(|_| "***"))
            .field("access_token_expires_at", &self.access_token_expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .finish()
    }
}
