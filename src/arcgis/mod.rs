//! ArcGIS Online and ArcGIS Enterprise portals (SPEC 10): OAuth 2.0 without OpenID Connect.
//! One [`Portal`] per `kind = "arcgis"` provider speaks the portal's REST operations —
//! each function names the reference page it follows — and keeps the portal's health the
//! way an OpenID provider's is kept (SPEC 7). Profiles are mapped in [`profile`].

pub mod health;
pub mod profile;
pub mod rest;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{ClientAuth, ProviderConfig, RolesFrom};
pub use rest::PortalError;

/// A revocation at logout waits at most this (SPEC 10: bounded by 2 s).
pub const REVOKE_DEADLINE: Duration = Duration::from_secs(2);

/// One configured portal.
pub struct Portal {
    /// The provider id, for log lines.
    id: String,
    /// `portal_url` without a trailing slash.
    root: String,
    client_id: String,
    client_secret: Option<String>,
    redirect_uri: String,
    roles_from: RolesFrom,
    /// Whether the portal answers (`info`), as for OpenID providers.
    pub health: health::Health,
}

/// The answer of `oauth2/token` (authorization_code and refresh_token grants).
#[derive(Deserialize)]
pub struct TokenAnswer {
    /// The portal token.
    pub access_token: String,
    /// Its lifetime in seconds.
    #[serde(default)]
    pub expires_in: Option<f64>,
    /// Who it belongs to.
    #[serde(default)]
    pub username: Option<String>,
    /// A refresh token, when issued.
    #[serde(default)]
    pub refresh_token: Option<String>,
    /// The refresh token's lifetime in seconds.
    #[serde(default)]
    pub refresh_token_expires_in: Option<f64>,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TokenAnswer")
            .field("access_token", &"***")
            .field("expires_in", &self.expires_in)
            .field("username", &self.username)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A server token from `generateToken`.
#[derive(Deserialize)]
pub struct ServerToken {
    /// The token for the ArcGIS Server site.
    pub token: String,
    /// When it expires, in epoch milliseconds.
    pub expires: i64,
}

impl std::fmt::Debug for ServerToken {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ServerToken")
            .field("token", &"***")
            .field("expires", &self.expires)
            .finish()
    }
}

impl Portal {
    /// The portal of an ArcGIS provider (`None` for an OpenID provider); the browser comes
    /// back to `redirect_uri`.
    pub fn new(config: &ProviderConfig, redirect_uri: &str) -> Option<Self> {
        let arcgis = config.arcgis.as_ref()?;
        let client_secret = match &config.client_auth {
            ClientAuth::ClientSecretBasic { secret } | ClientAuth::ClientSecretPost { secret } => {
                Some(secret.expose().to_owned())
            }
            ClientAuth::PrivateKeyJwt { .. } | ClientAuth::None => None,
        };
        Some(Self {
            id: config.id.clone(),
            root: arcgis.portal_url.as_str().trim_end_matches('/').to_owned(),
            client_id: config.client_id.clone(),
            client_secret,
            redirect_uri: redirect_uri.to_owned(),
            roles_from: arcgis.roles_from,
            health: health::Health::default(),
        })
    }

    /// The provider id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn url(&self, operation: &str) -> String {
        format!("{}/{operation}", self.root)
    }

    /// `oauth2/authorize` (<https://developers.arcgis.com/rest/users-groups-and-items/authorize/>):
    /// authorization code with PKCE S256 and `state`.
    pub fn authorize_url(&self, state: &str, code_challenge: &str) -> String {
        let mut url = self.url("oauth2/authorize");
        url.push('?');
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("state", state)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256")
            .finish();
        url.push_str(&query);
        url
    }

    /// `oauth2/token` with `grant_type=authorization_code`
    /// (<https://developers.arcgis.com/rest/users-groups-and-items/token/>).
    pub async fn redeem_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        code_verifier: &str,
    ) -> Result<TokenAnswer, PortalError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", self.client_id.as_str()),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", code_verifier),
        ];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret));
        }
        rest::post_form(http, &self.url("oauth2/token"), &form, rest::CALL_DEADLINE).await
    }

    /// `oauth2/token` with `grant_type=refresh_token`
    /// (<https://developers.arcgis.com/rest/users-groups-and-items/token/>).
    pub async fn refresh(
        &self,
        http: &reqwest::Client,
        refresh_token: &str,
    ) -> Result<TokenAnswer, PortalError> {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("refresh_token", refresh_token),
        ];
        if let Some(secret) = &self.client_secret {
            form.push(("client_secret", secret));
        }
        rest::post_form(http, &self.url("oauth2/token"), &form, rest::CALL_DEADLINE).await
    }

    /// `community/self` (<https://developers.arcgis.com/rest/users-groups-and-items/self/>):
    /// who `token` belongs to, as claims for [`crate::config::ProviderConfig`]'s paths.
    pub async fn profile(
        &self,
        http: &reqwest::Client,
        token: &str,
    ) -> Result<Map<String, Value>, PortalError> {
        let form = [("f", "json"), ("token", token)];
        let user: Map<String, Value> = rest::post_form(
            http,
            &self.url("community/self"),
            &form,
            rest::CALL_DEADLINE,
        )
        .await?;
        profile::claims(user, self.roles_from).ok_or(PortalError::Unusable("no username"))
    }

    /// `oauth2/revokeToken` (<https://developers.arcgis.com/rest/users-groups-and-items/revoke-token/>)
    /// of a refresh token, within [`REVOKE_DEADLINE`]; the outcome is only logged.
    pub async fn revoke(&self, http: &reqwest::Client, refresh_token: &str) {
        let form = [
            ("client_id", self.client_id.as_str()),
            ("auth_token", refresh_token),
            ("token_type_hint", "refresh_token"),
            ("f", "json"),
        ];
        let outcome: Result<Value, PortalError> = rest::post_form(
            http,
            &self.url("oauth2/revokeToken"),
            &form,
            REVOKE_DEADLINE,
        )
        .await;
        match outcome {
            Ok(_) => tracing::info!(provider = %self.id, "refresh token revoked at the portal"),
            Err(error) => {
                tracing::warn!(provider = %self.id, %error, "the portal did not revoke the refresh token");
            }
        }
    }

    /// `oauth2/signout` with `client_id` (SPEC 10); the caller adds `redirect_uri` when
    /// the browser is to come back.
    pub fn signout_url(&self) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &self.client_id)
            .finish();
        format!("{}?{query}", self.url("oauth2/signout"))
    }

    /// `generateToken` (<https://developers.arcgis.com/rest/users-groups-and-items/generate-token/>):
    /// a token for the federated ArcGIS Server `server_url`, for the holder of `token`.
    pub async fn server_token(
        &self,
        http: &reqwest::Client,
        server_url: &str,
        token: &str,
    ) -> Result<ServerToken, PortalError> {
        let form = [
            ("request", "getToken"),
            ("serverUrl", server_url),
            ("token", token),
            ("f", "json"),
        ];
        rest::post_form(http, &self.url("generateToken"), &form, rest::CALL_DEADLINE).await
    }

    /// The portal's `info` (`<portal_url>/info?f=json`): it answers with `authInfo`.
    pub async fn info(&self, http: &reqwest::Client, deadline: Duration) -> Result<(), String> {
        let info: Map<String, Value> = rest::get(http, &self.url("info?f=json"), deadline)
            .await
            .map_err(|error| error.to_string())?;
        if info.get("authInfo").is_some_and(Value::is_object) {
            Ok(())
        } else {
            Err("the portal's info has no authInfo".to_owned())
        }
    }
}
