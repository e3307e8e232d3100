//! The shared part of a provider's authorization URL (OIDC Core 3.1.2.1), built once at
//! discovery ([`super::provider`]) and completed per login by the code flow.

use url::Url;

/// Optional parameters passed through to the provider.
#[derive(Debug, Default)]
pub struct LoginHints<'a> {
    /// `prompt`.
    pub prompt: Option<&'a str>,
    /// `login_hint`.
    pub login_hint: Option<&'a str>,
}

/// The part of a provider's authorization URL (OIDC Core 3.1.2.1) that every login
/// shares: the endpoint with `response_type=code`, `client_id`, `redirect_uri`, `scope`
/// (`openid` first) and `code_challenge_method=S256`, encoded once at discovery. A login
/// appends only its own `state`, `nonce`, `code_challenge` and hints.
#[derive(Debug, Clone)]
pub struct AuthorizeUrlBase {
    text: String,
    /// Where the query starts in `text` (after `?`).
    query_start: usize,
}

impl AuthorizeUrlBase {
    /// The shared part for `endpoint` (whose own query parameters are kept; a fragment,
    /// which RFC 6749 3.1 forbids there, is dropped).
    pub fn new(endpoint: &Url, client_id: &str, redirect_uri: &str, scopes: &[String]) -> Self {
        let mut url = endpoint.clone();
        url.set_fragment(None);
        let scope = std::iter::once("openid")
            .chain(
                scopes
                    .iter()
                    .map(String::as_str)
                    .filter(|scope| *scope != "openid"),
            )
            .collect::<Vec<_>>()
            .join(" ");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scope)
            .append_pair("code_challenge_method", "S256");
        let text = String::from(url);
        let query_start = text.find('?').map_or(text.len(), |index| index + 1);
        Self { text, query_start }
    }

    /// The full URL of one login. `state`, `nonce` and `code_challenge` are base64url,
    /// which form encoding leaves as it is; the hints are encoded.
    pub(super) fn with(
        &self,
        state: &str,
        nonce: &str,
        code_challenge: &str,
        hints: &LoginHints<'_>,
    ) -> String {
        let mut text = String::with_capacity(self.text.len() + 192);
        text.push_str(&self.text);
        for (name, value) in [
            ("state", state),
            ("nonce", nonce),
            ("code_challenge", code_challenge),
        ] {
            debug_assert!(
                value
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
            );
            if text.len() > self.query_start {
                text.push('&');
            }
            text.push_str(name);
            text.push('=');
            text.push_str(value);
        }
        let mut pairs = form_urlencoded::Serializer::for_suffix(text, self.query_start);
        if let Some(prompt) = hints.prompt {
            pairs.append_pair("prompt", prompt);
        }
        if let Some(login_hint) = hints.login_hint {
            pairs.append_pair("login_hint", login_hint);
        }
        pairs.finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn pairs(url: &str) -> Vec<(String, String)> {
        Url::parse(url)
            .unwrap()
            .query_pairs()
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect()
    }

    #[test]
    fn an_authorization_url_carries_every_parameter_encoded() {
        let endpoint = Url::parse("https://op.example/authorize?tenant=a%20b#ignored").unwrap();
        let base = AuthorizeUrlBase::new(
            &endpoint,
            "client 1",
            "https://id.example/callback",
            &[
                "profile".to_owned(),
                "openid".to_owned(),
                "email".to_owned(),
            ],
        );
        let hints = LoginHints {
            prompt: Some("login"),
            login_hint: Some("a&b=c@example.com"),
        };
        let url = base.with("st", "no", "ch", &hints);
        assert!(
            url.starts_with("https://op.example/authorize?tenant=a"),
            "{url}"
        );
        assert!(!url.contains('#'), "{url}");
        let expected: Vec<(String, String)> = [
            ("tenant", "a b"),
            ("response_type", "code"),
            ("client_id", "client 1"),
            ("redirect_uri", "https://id.example/callback"),
            ("scope", "openid profile email"),
            ("code_challenge_method", "S256"),
            ("state", "st"),
            ("nonce", "no"),
            ("code_challenge", "ch"),
            ("prompt", "login"),
            ("login_hint", "a&b=c@example.com"),
        ]
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
        assert_eq!(pairs(&url), expected);
    }

    #[test]
    fn an_endpoint_without_a_query_gets_one() {
        let endpoint = Url::parse("https://op.example/authorize").unwrap();
        let base = AuthorizeUrlBase::new(&endpoint, "c", "https://id.example/callback", &[]);
        let url = base.with("st", "no", "ch", &LoginHints::default());
        assert!(
            url.starts_with("https://op.example/authorize?response_type=code&client_id=c&"),
            "{url}"
        );
        assert!(
            url.ends_with("&state=st&nonce=no&code_challenge=ch"),
            "{url}"
        );
        assert_eq!(
            pairs(&url)
                .iter()
                .filter(|(name, _)| name == "scope")
                .count(),
            1
        );
    }
}
