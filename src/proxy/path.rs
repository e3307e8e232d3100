//! Where a proxied request goes (SPEC 9 "Path safety"): `<target url><rest>?<query>`,
//! with `<rest>` resolved by the WHATWG URL parser (dot segments, `%2e`) and the result
//! required to stay under the target's path. An encoded slash, a backslash or a dot
//! segment with parameters (`..;`, `.;x`: Java servers cut `;…` off a segment and then
//! resolve it, the URL parser does not) is refused outright: upstream servers disagree on
//! what they mean.

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use url::Url;

/// Characters that may not appear raw in a URL path. `%` is left alone: the router has
/// already decoded every escape except `%25`, `%2F` and `%2B`, which stay as written.
const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Why a path was refused (for the WARN line; the caller answers 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRefusal {
    /// `%2F` in the path.
    EncodedSlash,
    /// `\` (or `%5C`) in the path.
    Backslash,
    /// The resolved path is not under the target's path.
    LeavesTarget,
    /// A segment that is `.` or `..` once its `;` parameters are cut off.
    DotSegmentWithParameters,
}

impl PathRefusal {
    /// A short name of the failed check.
    pub fn check(self) -> &'static str {
        match self {
            Self::EncodedSlash => "encoded slash in path",
            Self::Backslash => "backslash in path",
            Self::LeavesTarget => "path leaves the target",
            Self::DotSegmentWithParameters => "dot segment with parameters in path",
        }
    }
}

/// The upstream URL for `rest` (what follows the `proxy_path`: `""` or `/…`, as routed)
/// and the raw query string, or why not.
pub fn upstream_url(target: &Url, rest: &str, query: &str) -> Result<Url, PathRefusal> {
    if rest.contains('\\') {
        return Err(PathRefusal::Backslash);
    }
    if contains_escape(rest, b"%2f") {
        return Err(PathRefusal::EncodedSlash);
    }
    if has_dot_segment_with_parameters(rest) {
        return Err(PathRefusal::DotSegmentWithParameters);
    }
    let base = target.path().trim_end_matches('/');
    let mut url = target.clone();
    if !rest.is_empty() {
        // The URL parser's path state resolves `.`/`..` (and `%2e`) segments here.
        url.set_path(&format!("{base}{}", utf8_percent_encode(rest, PATH)));
    }
    let path = url.path();
    let under = path == target.path()
        || path == base
        || path
            .strip_prefix(base)
            .is_some_and(|tail| tail.starts_with('/'));
    if !under {
        return Err(PathRefusal::LeavesTarget);
    }
    url.set_query((!query.is_empty()).then_some(query));
    Ok(url)
}

/// Whether `text` holds the escape `escape` (lower case), in either case.
fn contains_escape(text: &str, escape: &[u8; 3]) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|window| window.eq_ignore_ascii_case(escape))
}

/// Whether a segment of `rest` is `.` or `..` before a `;` (`..;`, `.;x`, `%2e%2e%3b`…),
/// escapes decoded. Paths without `;` or `%3b` (nearly all) are not looked at further.
fn has_dot_segment_with_parameters(rest: &str) -> bool {
    if !rest.contains(';') && !contains_escape(rest, b"%3b") {
        return false;
    }
    rest.split('/').any(|segment| {
        let decoded = percent_decode_str(segment).decode_utf8_lossy();
        decoded
            .split_once(';')
            .is_some_and(|(name, _)| name == "." || name == "..")
    })
}

/// Adds `name=token` to the query, dropping any `name` the browser sent.
pub fn add_query_token(url: &mut Url, name: &str, token: &str) {
    let sent = url.query_pairs().any(|(key, _)| key == name);
    if sent {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(key, _)| key != name)
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        url.set_query(None);
        url.query_pairs_mut().extend_pairs(kept);
    }
    url.query_pairs_mut().append_pair(name, token);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn target() -> Url {
        Url::parse("https://api.example.com/maps/").unwrap()
    }

    fn resolve(rest: &str) -> Result<String, PathRefusal> {
        upstream_url(&target(), rest, "").map(String::from)
    }

    #[test]
    fn rest_is_appended_to_the_target() {
        assert_eq!(resolve("").unwrap(), "https://api.example.com/maps/");
        assert_eq!(resolve("/").unwrap(), "https://api.example.com/maps/");
        assert_eq!(
            resolve("/tiles/1").unwrap(),
            "https://api.example.com/maps/tiles/1"
        );
        assert_eq!(
            resolve("/a/../b").unwrap(),
            "https://api.example.com/maps/b"
        );
        assert_eq!(
            resolve("/a b?#").unwrap(),
            "https://api.example.com/maps/a%20b%3F%23"
        );
        let url = upstream_url(&target(), "/x", "a=1&b=%20").unwrap();
        assert_eq!(url.as_str(), "https://api.example.com/maps/x?a=1&b=%20");
    }

    #[test]
    fn a_target_without_trailing_slash_takes_whole_segments() {
        let target = Url::parse("http://up/api").unwrap();
        assert_eq!(
            upstream_url(&target, "", "").unwrap().as_str(),
            "http://up/api"
        );
        assert_eq!(
            upstream_url(&target, "/x", "").unwrap().as_str(),
            "http://up/api/x"
        );
    }

    #[test]
    fn paths_that_leave_the_target_are_refused() {
        assert_eq!(resolve("/.."), Err(PathRefusal::LeavesTarget));
        assert_eq!(resolve("/../secret"), Err(PathRefusal::LeavesTarget));
        assert_eq!(resolve("/%2e%2e/secret"), Err(PathRefusal::LeavesTarget));
        assert_eq!(resolve("/a/../../x"), Err(PathRefusal::LeavesTarget));
        assert_eq!(resolve("/..%2Fsecret"), Err(PathRefusal::EncodedSlash));
        assert_eq!(resolve("/a%2fb"), Err(PathRefusal::EncodedSlash));
        assert_eq!(resolve("/..\\secret"), Err(PathRefusal::Backslash));
    }

    #[test]
    fn dot_segments_with_parameters_are_refused() {
        for rest in [
            "/..;/x",
            "/a/..;x/b",
            "/.;x/b",
            "/.;",
            "/%2e%2e;/x",
            "/..%3b/x",
            "/..%3B/x",
            "/%2E%2E%3Bjsessionid=1/x",
            "/.%3bx",
        ] {
            assert_eq!(
                resolve(rest),
                Err(PathRefusal::DotSegmentWithParameters),
                "{rest}"
            );
        }
        assert_eq!(
            resolve("/a;v=1/b;x=2").unwrap(),
            "https://api.example.com/maps/a;v=1/b;x=2"
        );
        assert_eq!(
            resolve("/...;x").unwrap(),
            "https://api.example.com/maps/...;x"
        );
    }

    #[test]
    fn query_tokens_replace_the_browsers() {
        let mut url = Url::parse("http://up/x?a=1&token=evil").unwrap();
        add_query_token(&mut url, "token", "t+1");
        assert_eq!(url.as_str(), "http://up/x?a=1&token=t%2B1");
        let mut url = Url::parse("http://up/x").unwrap();
        add_query_token(&mut url, "access_token", "abc");
        assert_eq!(url.as_str(), "http://up/x?access_token=abc");
    }
}
