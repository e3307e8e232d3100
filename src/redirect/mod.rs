//! `returnURL` checking (SPEC section 4): where the browser may be sent after
//! login or logout. Dangerous forms are refused before parsing; the rest is parsed
//! with the WHATWG rules against `public_url` and accepted only on our own origin
//! or an allowed one. The `Location` we send is the absolute, serialized result.

use std::borrow::Cow;
use std::fmt;

use percent_encoding::percent_decode_str;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::origin::OriginPolicy;

/// Longest `returnURL` accepted, in bytes; a `Location` header has to stay reasonable.
pub const MAX_RETURN_URL_LEN: usize = 8 * 1024;

/// Longest piece of input (scheme, origin) that a refusal repeats in logs.
const MAX_ECHO: usize = 64;

/// What `returnURL` may be, from `[server] public_url` and `[redirects]`.
#[derive(Debug, Clone)]
pub struct RedirectPolicy {
    /// How browsers reach us; relative URLs resolve against it and its origin is always allowed.
    pub public_url: Url,
    /// Whether relative inputs (`/app`, `app/page?x=1`) are accepted.
    pub allow_relative: bool,
    /// Other origins a `returnURL` may point to.
    pub allowed_origins: OriginPolicy,
}

/// A `returnURL` that passed SPEC section 4: absolute, `http(s)`, on an allowed origin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReturnUrl(Url);

/// Why a `returnURL` was refused. Meant for logs (never holds the whole input);
/// the HTTP layer answers every variant with `REDIRECT_NOT_ALLOWED`.
#[derive(Debug, thiserror::Error)]
pub enum RedirectRefused {
    /// The value is empty.
    #[error("returnURL is empty")]
    Empty,
    /// The value is longer than [`MAX_RETURN_URL_LEN`].
    #[error("returnURL is too long ({0} bytes)")]
    TooLong(usize),
    /// A raw backslash.
    #[error("returnURL contains a backslash")]
    Backslash,
    /// A raw control character, tab, newline or other whitespace.
    #[error("returnURL contains a control character or whitespace")]
    ControlOrSpace,
    /// A percent-encoded backslash, control character or whitespace (`%5C`, `%00`-`%1F`, `%20`, `%7F`, ...).
    #[error("returnURL contains a percent-encoded backslash, control character or whitespace")]
    EncodedControlOrSpace,
    /// User info (`https://good@evil`).
    #[error("returnURL contains user info")]
    UserInfo,
    /// A protocol-relative form (`//evil`).
    #[error("returnURL is protocol-relative")]
    ProtocolRelative,
    /// A scheme other than `http` or `https`.
    #[error("returnURL scheme {0:?} is not allowed")]
    Scheme(String),
    /// A relative URL while `allow_relative` is off.
    #[error("relative returnURL is not allowed")]
    RelativeNotAllowed,
    /// The WHATWG parser refused it.
    #[error("returnURL does not parse: {0}")]
    Unparsable(#[from] url::ParseError),
    /// It parsed, but its origin is neither ours nor an allowed one.
    #[error("returnURL origin {0} is not allowed")]
    OriginNotAllowed(String),
}

impl ReturnUrl {
    /// Checks `raw` (the already query-decoded `returnURL`) against SPEC section 4.
    pub fn parse(raw: &str, policy: &RedirectPolicy) -> Result<Self, RedirectRefused> {
        refuse_before_parsing(raw, policy)?;
        let url = policy.public_url.join(raw)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(RedirectRefused::Scheme(echo(url.scheme())));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(RedirectRefused::UserInfo);
        }
        let origin = url.origin();
        if origin == policy.public_url.origin() || policy.allowed_origins.allows(&origin) {
            Ok(Self(url))
        } else {
            Err(RedirectRefused::OriginNotAllowed(echo(
                &origin.ascii_serialization(),
            )))
        }
    }

    /// The absolute serialized URL, used as the `Location` header.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The parsed URL.
    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

impl fmt::Display for ReturnUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The checks SPEC section 4 makes on the text itself, before any URL parsing.
fn refuse_before_parsing(raw: &str, policy: &RedirectPolicy) -> Result<(), RedirectRefused> {
    if raw.is_empty() {
        return Err(RedirectRefused::Empty);
    }
    if raw.len() > MAX_RETURN_URL_LEN {
        return Err(RedirectRefused::TooLong(raw.len()));
    }
    check_url_text(raw)?;
    match scheme_of(raw) {
        Some(scheme) => {
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
                return Err(RedirectRefused::Scheme(echo(&scheme.to_ascii_lowercase())));
            }
        }
        None => {
            if raw.starts_with("//") {
                return Err(RedirectRefused::ProtocolRelative);
            }
            if !policy.allow_relative {
                return Err(RedirectRefused::RelativeNotAllowed);
            }
        }
    }
    Ok(())
}

/// What SPEC section 4 refuses in the text of a URL before parsing it: forms that
/// parsers disagree on, so that the `url` crate would read one host and another
/// client (a browser, an HTTP library) another. Shared by `returnURL` and token targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeUrlText {
    /// A raw backslash (`https://good\@evil`: WHATWG reads `\` as `/`, others do not).
    #[error("a backslash")]
    Backslash,
    /// A raw control character, tab, newline or other whitespace (WHATWG drops some).
    #[error("a control character or whitespace")]
    ControlOrSpace,
    /// A percent-encoded backslash, control character or whitespace (`%5C`, `%00`-`%1F`, `%20`, `%7F`, ...).
    #[error("a percent-encoded backslash, control character or whitespace")]
    EncodedControlOrSpace,
    /// User info in the authority (`https://good@evil`), even an empty one.
    #[error("user info")]
    UserInfo,
}

/// Refuses the forms of [`UnsafeUrlText`] in `raw` (the already query-decoded value).
pub fn check_url_text(raw: &str) -> Result<(), UnsafeUrlText> {
    if raw.contains('\\') {
        return Err(UnsafeUrlText::Backslash);
    }
    if raw.chars().any(is_control_or_space) {
        return Err(UnsafeUrlText::ControlOrSpace);
    }
    // Decoding once and looking again covers %5C, %00-%1F, %20, %7F in any hex case,
    // and encoded UTF-8 controls or spaces too; bytes that are not UTF-8 become U+FFFD.
    let decoded: Cow<'_, str> = percent_decode_str(raw).decode_utf8_lossy();
    if decoded.chars().any(|c| c == '\\' || is_control_or_space(c)) {
        return Err(UnsafeUrlText::EncodedControlOrSpace);
    }
    if let Some(scheme) = scheme_of(raw) {
        let after_scheme = raw.get(scheme.len() + 1..).unwrap_or_default();
        if authority_has_user_info(after_scheme) {
            return Err(UnsafeUrlText::UserInfo);
        }
    }
    Ok(())
}

impl From<UnsafeUrlText> for RedirectRefused {
    fn from(unsafe_text: UnsafeUrlText) -> Self {
        match unsafe_text {
            UnsafeUrlText::Backslash => Self::Backslash,
            UnsafeUrlText::ControlOrSpace => Self::ControlOrSpace,
            UnsafeUrlText::EncodedControlOrSpace => Self::EncodedControlOrSpace,
            UnsafeUrlText::UserInfo => Self::UserInfo,
        }
    }
}

fn is_control_or_space(c: char) -> bool {
    c.is_control() || c.is_whitespace()
}

/// The scheme as the WHATWG scheme state sees it: an ASCII letter, then letters,
/// digits, `+`, `-` or `.`, up to the first `:`. `None` means a relative input.
pub(crate) fn scheme_of(raw: &str) -> Option<&str> {
    let (candidate, _) = raw.split_once(':')?;
    let mut chars = candidate.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then_some(candidate)
}

/// For a special scheme the parser skips any slashes after `scheme:`, then reads
/// the authority up to `/`, `?` or `#` (backslashes are refused earlier). An `@`
/// there is user info, even an empty one (`https://@evil`) that parsing would hide.
fn authority_has_user_info(after_scheme: &str) -> bool {
    let rest = after_scheme.trim_start_matches('/');
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest.get(..end)
        .is_some_and(|authority| authority.contains('@'))
}

/// At most [`MAX_ECHO`] characters of `text`, for log messages.
fn echo(text: &str) -> String {
    match text.char_indices().nth(MAX_ECHO) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests;
