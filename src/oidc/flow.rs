//! The authorization code flow (OIDC Core 3.1) with PKCE (RFC 7636):
//!
//! ```text
//! browser ──GET /login──▶ us: secret r, state = H(r), nonce, PKCE verifier sealed in the login cookie (10 min)
//! browser ◀──302 authorize?response_type=code&state&nonce&code_challenge (S256)
//! browser ──credentials──▶ provider ──302 /callback?code&state[&iss]──▶ us
//! us ──POST token (code + verifier)──▶ provider ──id_token, access_token, refresh_token──▶ us
//! us: verify the ID token (3.1.3.7), merge userinfo (5.3), create the session
//! ```

use openidconnect::{
    AuthorizationCode, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    RequestTokenError, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

pub use super::authorize_url::{AuthorizeUrlBase, LoginHints};
use super::client_auth::JWT_BEARER_ASSERTION;
use super::dpop::{
    self, DpopKey, Prover, is_dpop_token_type, is_nonce_demand, send_for_openidconnect,
};
use super::jwt::jwt_payload;
use super::provider::{Discovered, Provider};
use super::token_endpoint::{TokenClient, authenticated_post, expiry_after};
use crate::clock::unix_now;
use crate::crypto;
use crate::error::{ApiError, printable};
use crate::redirect::ReturnUrl;
use crate::session::{LOGIN_SECRET_LEN, LoginSecret, ProviderTokens};

/// Allowed clock difference for `iat` in the future.
const CLOCK_SKEW_SECONDS: i64 = 60;

/// What a login in flight remembers between `/login` and `/callback`.
#[derive(Serialize, Deserialize)]
pub struct PendingLogin {
    /// Provider id.
    pub provider: String,
    /// PKCE verifier.
    pub pkce_verifier: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// Where the browser goes afterwards (checked again when the login completes: it
    /// comes back from the browser's login cookie).
    pub return_url: ReturnUrl,
}

impl std::fmt::Debug for PendingLogin {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PendingLogin")
            .field("provider", &self.provider)
            .field("pkce_verifier", &"***")
            .field("nonce", &"***")
            .field("return_url", &self.return_url)
            .finish()
    }
}

/// A login about to start: where to send the browser and what to remember.
pub struct LoginStart {
    /// The provider's authorization URL with all parameters.
    pub authorize_url: String,
    /// The `state`: a hash of `secret`, so it gives neither the secret nor the login.
    pub state: String,
    /// The secret only the browser's login cookie carries (the seal key derives from it).
    pub secret: LoginSecret,
    /// What the browser's login cookie carries to `/callback`.
    pub pending: PendingLogin,
    /// A fresh random nonce for sealing `pending` (drawn with the state).
    pub seal_nonce: [u8; crypto::SEAL_NONCE_LEN],
}

/// A completed login.
pub struct LoginOutcome {
    /// The provider's `sub`.
    pub subject: String,
    /// The provider's session id, when sent.
    pub sid: Option<String>,
    /// ID token claims, merged with userinfo claims.
    pub claims: Map<String, Value>,
    /// Tokens to keep in the session.
    pub tokens: ProviderTokens,
}

/// Builds the authorization request for `provider`: the login's secret (whose hash is the
/// `state`), `nonce` and the PKCE verifier (RFC 7636, S256) are 32 random bytes each,
/// drawn at once with the nonce that seals the pending login.
pub fn begin_login(
    provider: &Provider,
    discovered: &Discovered,
    return_url: ReturnUrl,
    hints: &LoginHints<'_>,
) -> Result<LoginStart, ApiError> {
    let random = crypto::random_bytes::<{ LOGIN_SECRET_LEN + 64 + crypto::SEAL_NONCE_LEN }>()?;
    let (secret, rest) = random.split_at(LOGIN_SECRET_LEN);
    let (nonce, rest) = rest.split_at(32);
    let (verifier, seal_nonce) = rest.split_at(32);
    let seal_nonce = seal_nonce.try_into().map_err(|_| crypto::CryptoError)?;
    let secret = LoginSecret::new(secret.try_into().map_err(|_| crypto::CryptoError)?);
    let (state, nonce) = (secret.state(), crypto::b64(nonce));
    let verifier = PkceCodeVerifier::new(crypto::b64(verifier));
    let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
    let authorize_url = discovered
        .authorize_url
        .with(&state, &nonce, challenge.as_str(), hints);
    Ok(LoginStart {
        authorize_url,
        state,
        secret,
        pending: PendingLogin {
            provider: provider.id().to_owned(),
            pkce_verifier: verifier.secret().clone(),
            nonce,
            return_url,
        },
        seal_nonce,
    })
}

/// How long the provider's PAR endpoint may take.
const PAR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The parameters of an authorization request we push (RFC 9126 section 2.1); the
/// authorization endpoint's own query parameters stay on the browser's URL.
const PUSHED_PARAMETERS: [&str; 10] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "code_challenge_method",
    "state",
    "nonce",
    "code_challenge",
    "prompt",
    "login_hint",
];

#[derive(Deserialize)]
struct PushedRequest {
    request_uri: String,
}

#[derive(Deserialize)]
struct PushError {
    error: String,
}

/// RFC 9126: when the provider's logins are pushed, POSTs `start`'s authorization
/// parameters with client authentication to the PAR endpoint and points the browser at
/// the authorization endpoint with only `client_id` and the returned `request_uri`.
/// Else `start` as it is. A failed push is one WARN line: `PROVIDER_UNAVAILABLE` when the
/// endpoint cannot be reached or fails (5xx), `LOGIN_FAILED` when it refuses (4xx).
pub async fn push_authorization_request(
    provider: &Provider,
    discovered: &Discovered,
    http: &reqwest::Client,
    mut start: LoginStart,
) -> Result<LoginStart, ApiError> {
    if !discovered.push_requests {
        return Ok(start);
    }
    let id = provider.id();
    let unavailable = |reason: &str| {
        tracing::warn!(check = "pushed authorization request", provider = %id, reason, "login refused");
        ApiError::ProviderUnavailable(id.to_owned())
    };
    let endpoint = discovered
        .par_endpoint
        .as_ref()
        .ok_or_else(|| unavailable("no pushed_authorization_request_endpoint"))?;
    let full = Url::parse(&start.authorize_url)
        .map_err(|_| unavailable("the authorization URL is not a URL"))?;
    // `authenticated_post` adds `client_id` itself for every method but HTTP Basic.
    let basic = matches!(
        provider.config.client_auth,
        crate::config::ClientAuth::ClientSecretBasic { .. }
    );
    let form: Vec<(&'static str, String)> = full
        .query_pairs()
        .filter_map(|(name, value)| {
            let name = PUSHED_PARAMETERS.iter().find(|known| **known == name)?;
            (basic || *name != "client_id").then(|| (*name, value.into_owned()))
        })
        .collect();
    let client = TokenClient {
        client_id: &provider.config.client_id,
        auth: &provider.config.client_auth,
        key: provider.client_key.as_ref(),
    };
    let request = authenticated_post(http, endpoint, &client, form)
        .map_err(|_| unavailable("the client assertion could not be signed"))?;
    let response = crate::http_client::send(request.timeout(PAR_TIMEOUT), "par")
        .await
        .map_err(|_| unavailable("the PAR endpoint could not be reached"))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|_| unavailable("the PAR endpoint's answer broke off"))?;
    if status.is_server_error() {
        return Err(unavailable(&format!("the PAR endpoint answered {status}")));
    }
    if !status.is_success() {
        let error = serde_json::from_slice::<PushError>(&body)
            .map(|answer| printable(&answer.error))
            .unwrap_or_else(|_| "unknown".to_owned());
        tracing::warn!(check = "pushed authorization request", provider = %id, %status, %error, "login refused");
        return Err(ApiError::login_failed(format!(
            "the provider refused the authorization request ({error})"
        )));
    }
    let pushed = serde_json::from_slice::<PushedRequest>(&body)
        .map_err(|_| unavailable("the PAR endpoint's answer has no request_uri"))?;
    let mut url = discovered.authorization_endpoint.clone();
    url.set_fragment(None);
    url.query_pairs_mut()
        .append_pair("client_id", &provider.config.client_id)
        .append_pair("request_uri", &pushed.request_uri);
    start.authorize_url = url.into();
    Ok(start)
}

/// Exchanges `code`, verifies the ID token and gathers the user's claims.
pub async fn finish_login(
    provider: &Provider,
    http: &reqwest::Client,
    pending: &PendingLogin,
    code: &str,
) -> Result<LoginOutcome, ApiError> {
    let discovered = provider
        .discovered(http)
        .await
        .map_err(|_| ApiError::login_upstream_failed("the identity provider is unavailable"))?;
    // RFC 9449: the session's key is made now, before the code exchange binds the tokens.
    let dpop_key = match provider.config.dpop {
        true => Some(DpopKey::generate().map_err(|_| crypto::CryptoError)?),
        false => None,
    };
    let response = exchange_code(
        provider,
        &discovered,
        http,
        pending,
        code,
        dpop_key.as_ref(),
    )
    .await?;
    // RFC 9449 section 5: a token not bound to our key would be a bearer token after all.
    if dpop_key.is_some() && !is_dpop_token_type(response.token_type().as_ref()) {
        return Err(ApiError::login_failed(
            "the provider issued a token that is not DPoP-bound (token_type)",
        ));
    }
    let id_token = response
        .id_token()
        .ok_or_else(|| ApiError::login_failed("the provider sent no ID token"))?;
    let nonce = Nonce::new(pending.nonce.clone());
    let verify = |discovered: &Discovered| {
        let verifier = discovered
            .client
            .id_token_verifier()
            // The one algorithm logout and refreshed ID tokens are held to too (SPEC 3
            // `id_token_signed_response_alg`).
            .set_allowed_algs(openidconnect_algorithms(&[discovered.id_token_algorithm]))
            // Extra audiences are fine when `azp` names us, which the verifier enforces
            // (OIDC Core 3.1.3.7 steps 4-5).
            .set_other_audience_verifier_fn(|_| true)
            .set_issue_time_verifier_fn(|issued_at| {
                if issued_at.timestamp() > unix_now() + CLOCK_SKEW_SECONDS {
                    Err("issued in the future".to_owned())
                } else {
                    Ok(())
                }
            });
        id_token.claims(&verifier, &nonce).map(|_| ())
    };
    if let Err(error) = verify(&discovered) {
        let unknown_key = matches!(
            error,
            openidconnect::ClaimsVerificationError::SignatureVerification(
                openidconnect::SignatureVerificationError::NoMatchingKey
            )
        );
        let retried = match unknown_key {
            true => match provider.refresh_keys(http).await {
                Some(refreshed) => verify(&refreshed),
                None => Err(error),
            },
            false => Err(error),
        };
        if let Err(error) = retried {
            tracing::debug!(provider = %provider.id(), %error, "ID token refused");
            return Err(ApiError::login_failed(describe_claims_error(&error)));
        }
    }
    let raw_id_token = id_token.to_string();
    let mut claims = jwt_payload(&raw_id_token)
        .ok_or_else(|| ApiError::login_failed("the ID token is malformed"))?;
    check_authorized_party(&claims, &provider.config.client_id)?;
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let sid = claims.get("sid").and_then(Value::as_str).map(str::to_owned);
    let access_token = response.access_token().secret().clone();
    if provider.config.use_userinfo_endpoint
        && let Some(endpoint) = &discovered.userinfo_endpoint
    {
        let prover = dpop_key.as_ref().map(|key| Prover {
            key,
            nonce: &provider.dpop_nonce,
            access_token: Some(&access_token),
        });
        merge_userinfo(http, endpoint, &access_token, prover, &subject, &mut claims).await?;
    }
    Ok(LoginOutcome {
        subject,
        sid,
        claims,
        tokens: ProviderTokens {
            id_token: Some(raw_id_token),
            access_token: Some(access_token),
            access_token_issued_at: Some(unix_now()),
            access_token_expires_at: response
                .expires_in()
                .and_then(|lifetime| expiry_after(unix_now(), lifetime.as_secs_f64())),
            refresh_token: response.refresh_token().map(|token| token.secret().clone()),
            dpop_key: dpop_key.map(|key| key.stored().to_owned()),
        },
    })
}

async fn exchange_code(
    provider: &Provider,
    discovered: &Discovered,
    http: &reqwest::Client,
    pending: &PendingLogin,
    code: &str,
    dpop_key: Option<&DpopKey>,
) -> Result<openidconnect::core::CoreTokenResponse, ApiError> {
    let build = || -> Result<_, ApiError> {
        let mut request = discovered
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|_| ApiError::login_upstream_failed("the provider has no token endpoint"))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()));
        if let (Some(key), Some(token_url)) = (&provider.client_key, &discovered.token_endpoint) {
            // No `client_id` here: the oauth2 crate already sends it for a client without a
            // secret, and RFC 6749 section 3.2 forbids repeating a parameter.
            request = request
                .add_extra_param("client_assertion_type", JWT_BEARER_ASSERTION)
                .add_extra_param(
                    "client_assertion",
                    key.assertion(&provider.config.client_id, token_url.as_str())?,
                );
        }
        Ok(request)
    };
    let answer = match dpop_key {
        None => {
            let traced = |request| async move {
                crate::http_client::send_http(http, request, "token")
                    .await
                    .map_err(|error| openidconnect::HttpClientError::Reqwest(Box::new(error)))
            };
            build()?.request_async(&traced).await
        }
        Some(key) => {
            let prover = Prover {
                key,
                nonce: &provider.dpop_nonce,
                access_token: None,
            };
            let client = move |request| send_for_openidconnect(http, request, prover);
            let before = provider.dpop_nonce.get();
            match build()?.request_async(&client).await {
                // RFC 9449 section 8: once more with the nonce just handed out, and a
                // fresh client assertion (its jti is single use).
                Err(RequestTokenError::ServerResponse(response))
                    if is_nonce_demand(response.error().as_ref())
                        && provider.dpop_nonce.get() != before =>
                {
                    build()?.request_async(&client).await
                }
                answer => answer,
            }
        }
    };
    answer.map_err(|error| match error {
        RequestTokenError::ServerResponse(response) => ApiError::login_failed(format!(
            "the provider refused the authorization code ({})",
            response.error().as_ref()
        )),
        RequestTokenError::Request(error) => {
            tracing::debug!(provider = %provider.id(), %error, "token endpoint unreachable");
            ApiError::login_upstream_failed("the provider's token endpoint could not be reached")
        }
        other => {
            tracing::debug!(provider = %provider.id(), error = %other, "token endpoint answer unusable");
            ApiError::login_upstream_failed("the provider's token endpoint answered unexpectedly")
        }
    })
}

/// OIDC Core 5.3: userinfo claims, accepted only for the ID token's `sub`.
async fn merge_userinfo(
    http: &reqwest::Client,
    endpoint: &Url,
    access_token: &str,
    prover: Option<Prover<'_>>,
    subject: &str,
    claims: &mut Map<String, Value>,
) -> Result<(), ApiError> {
    let request = http
        .get(endpoint.clone())
        .header(reqwest::header::ACCEPT, "application/json");
    let sent = match prover {
        // RFC 9449 section 7.1: the bound token goes with the DPoP scheme and a proof.
        Some(prover) => {
            let request = request.header(
                reqwest::header::AUTHORIZATION,
                format!("DPoP {access_token}"),
            );
            let build = || {
                request
                    .try_clone()
                    .and_then(|request| request.build().ok())
                    .ok_or(dpop::SendError::Build)
            };
            dpop::send(http, build, prover, "userinfo")
                .await
                .map_err(|error| error.to_string())
        }
        None => crate::http_client::send(request.bearer_auth(access_token), "userinfo")
            .await
            .map_err(|error| error.to_string()),
    };
    let response = match sent {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            tracing::warn!(status = %response.status(), "userinfo endpoint refused; using ID token claims only");
            return Ok(());
        }
        Err(error) => {
            tracing::warn!(%error, "userinfo endpoint unreachable; using ID token claims only");
            return Ok(());
        }
    };
    let Ok(userinfo) = response.json::<Map<String, Value>>().await else {
        tracing::warn!("userinfo answer is not a JSON object; using ID token claims only");
        return Ok(());
    };
    if userinfo.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(ApiError::login_failed(
            "the userinfo subject does not match the ID token",
        ));
    }
    for (name, value) in userinfo {
        if !matches!(
            name.as_str(),
            "iss" | "aud" | "sub" | "exp" | "iat" | "nonce"
        ) {
            claims.insert(name, value);
        }
    }
    Ok(())
}

/// OIDC Core 3.1.3.7 steps 4-5 (openidconnect 4 leaves them out): with several audiences
/// `azp` must be present, and when present it must be our client id.
fn check_authorized_party(claims: &Map<String, Value>, client_id: &str) -> Result<(), ApiError> {
    let audiences = match claims.get("aud") {
        Some(Value::Array(values)) => values.len(),
        Some(_) => 1,
        None => 0,
    };
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(_) => Err(ApiError::login_failed(
            "the ID token was issued to another party (azp)",
        )),
        None if audiences > 1 => Err(ApiError::login_failed(
            "the ID token has several audiences and no authorized party (azp)",
        )),
        None => Ok(()),
    }
}

/// `algorithms` as openidconnect names them (both spell them as JOSE does).
fn openidconnect_algorithms(
    algorithms: &[jsonwebtoken::Algorithm],
) -> Vec<openidconnect::core::CoreJwsSigningAlgorithm> {
    algorithms
        .iter()
        .filter_map(|algorithm| {
            serde_json::to_value(algorithm)
                .ok()
                .and_then(|name| serde_json::from_value(name).ok())
        })
        .collect()
}

fn describe_claims_error(error: &openidconnect::ClaimsVerificationError) -> &'static str {
    use openidconnect::ClaimsVerificationError as E;
    match error {
        E::Expired(_) => "the ID token is expired or not yet valid",
        E::InvalidAudience(_) => "the ID token is not meant for this client",
        E::InvalidIssuer(_) => "the ID token comes from another issuer",
        E::InvalidNonce(_) => "the ID token's nonce does not match",
        E::SignatureVerification(openidconnect::SignatureVerificationError::DisallowedAlg(_)) => {
            "the ID token's alg is not the provider's id_token_signed_response_alg"
        }
        E::SignatureVerification(_) => "the ID token's signature is invalid",
        _ => "the ID token is invalid",
    }
}
