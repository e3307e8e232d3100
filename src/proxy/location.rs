//! `Location` and `Content-Location` from the target (SPEC 9, "The token never reaches the
//! browser through a response either"), as nginx's `proxy_redirect` treats them: a value
//! is first resolved against the URL the request went to; one that points into the
//! target comes back as the same place under `<public_url><base_path><proxy_path>`, one
//! that points elsewhere comes back as written. Either way without our token: the
//! transport's parameter (`token` / `access_token`) and any parameter whose value is the
//! token we sent are removed from the query.

use std::borrow::Cow;

use actix_web::http::header::HeaderValue;
use url::Url;

/// How one proxied request's `Location`-like headers are rewritten.
pub struct Rewrite<'a> {
    /// Where the request went (its token parameter, if any, is removed like any other).
    pub request_url: &'a Url,
    /// The target's configured URL.
    pub target: &'a Url,
    /// `<public_url><base_path><proxy_path>`.
    pub public_prefix: &'a str,
    /// The query parameter our token travels in, if it travels in one.
    pub parameter: Option<&'a str>,
    /// The token sent.
    pub token: &'a str,
}

impl Rewrite<'_> {
    /// The value the browser gets for `value`; `None` (the header is dropped) when it is not
    /// a URL reference we can read.
    pub fn rewrite(&self, value: &HeaderValue) -> Option<HeaderValue> {
        let text = value.to_str().ok()?;
        let resolved = self.request_url.join(text).ok()?;
        let out = match self.below_target(&resolved) {
            Some(rest) => {
                let mut out = String::with_capacity(text.len() + self.public_prefix.len());
                out.push_str(self.public_prefix);
                out.push_str(rest);
                if let Some(query) = resolved.query() {
                    let query = self.strip(query);
                    if !query.is_empty() {
                        out.push('?');
                        out.push_str(&query);
                    }
                }
                if let Some(fragment) = resolved.fragment() {
                    out.push('#');
                    out.push_str(fragment);
                }
                Cow::Owned(out)
            }
            None => self.strip_reference(text),
        };
        match out {
            Cow::Borrowed(_) => Some(value.clone()),
            Cow::Owned(out) => HeaderValue::from_str(&out).ok(),
        }
    }

    /// The path below the target's (`""` or `/…`) when `url` is in the target: same origin,
    /// its path the target's or below it by whole segments.
    fn below_target<'u>(&self, url: &'u Url) -> Option<&'u str> {
        if url.origin() != self.target.origin() {
            return None;
        }
        let base = self.target.path().trim_end_matches('/');
        let rest = url.path().strip_prefix(base)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// `reference` (absolute or relative) with the token's parameters removed from its query.
    fn strip_reference<'t>(&self, reference: &'t str) -> Cow<'t, str> {
        let Some((before, after)) = reference.split_once('?') else {
            return Cow::Borrowed(reference);
        };
        let (query, fragment) = match after.split_once('#') {
            Some((query, fragment)) => (query, Some(fragment)),
            None => (after, None),
        };
        let stripped = self.strip(query);
        if let Cow::Borrowed(_) = stripped {
            return Cow::Borrowed(reference);
        }
        let mut out = before.to_owned();
        if !stripped.is_empty() {
            out.push('?');
            out.push_str(&stripped);
        }
        if let Some(fragment) = fragment {
            out.push('#');
            out.push_str(fragment);
        }
        Cow::Owned(out)
    }

    /// `query` without the token's parameters (the others as written).
    fn strip<'q>(&self, query: &'q str) -> Cow<'q, str> {
        let ours = |pair: &str| {
            let Some((name, value)) = form_urlencoded::parse(pair.as_bytes()).next() else {
                return false;
            };
            self.parameter.is_some_and(|parameter| name == parameter) || value == self.token
        };
        if !query.split('&').any(ours) {
            return Cow::Borrowed(query);
        }
        let kept: Vec<&str> = query.split('&').filter(|pair| !ours(pair)).collect();
        Cow::Owned(kept.join("&"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn rewrite(target: &str, request: &str, parameter: Option<&str>, value: &str) -> String {
        let target = Url::parse(target).unwrap();
        let request_url = Url::parse(request).unwrap();
        let rewrite = Rewrite {
            request_url: &request_url,
            target: &target,
            public_prefix: "https://id.example.com/auth/api",
            parameter,
            token: "T0KEN",
        };
        let out = rewrite.rewrite(&HeaderValue::from_str(value).unwrap());
        out.map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_else(|| "<dropped>".to_owned())
    }

    #[test]
    fn into_the_target_comes_back_under_the_proxy_path_without_the_token() {
        let t = "http://up:8080/v1/";
        let r = "http://up:8080/v1/a/b";
        let p = Some("token");
        assert_eq!(
            rewrite(t, r, p, "http://up:8080/v1/dir/?x=1&token=T0KEN#f"),
            "https://id.example.com/auth/api/dir/?x=1#f"
        );
        assert_eq!(
            rewrite(t, r, p, "c?token=T0KEN"),
            "https://id.example.com/auth/api/a/c"
        );
        assert_eq!(rewrite(t, r, p, "/v1"), "https://id.example.com/auth/api");
        assert_eq!(
            rewrite(t, r, None, "/v1/x?a=T0KEN&b=2"),
            "https://id.example.com/auth/api/x?b=2"
        );
        assert_eq!(
            rewrite(
                t,
                r,
                Some("access_token"),
                "/v1/x?access_token=other&token=mine"
            ),
            "https://id.example.com/auth/api/x?token=mine"
        );
    }

    #[test]
    fn elsewhere_keeps_its_form_without_the_token() {
        let t = "http://up:8080/v1/";
        let r = "http://up:8080/v1/a/b";
        let p = Some("token");
        assert_eq!(rewrite(t, r, p, "/v2/x?token=T0KEN"), "/v2/x");
        assert_eq!(rewrite(t, r, p, "/v10"), "/v10");
        assert_eq!(
            rewrite(t, r, p, "https://up:8080/v1/x?a=1&token=T0KEN"),
            "https://up:8080/v1/x?a=1"
        );
        assert_eq!(
            rewrite(t, r, p, "https://other.example/?tok%65n=T0KEN#x"),
            "https://other.example/#x"
        );
        assert_eq!(
            rewrite(t, r, p, "https://other.example/?a=1"),
            "https://other.example/?a=1"
        );
        assert_eq!(rewrite(t, r, p, "http://[bad"), "<dropped>");
    }
}
