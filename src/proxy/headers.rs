//! Which headers cross the proxy (SPEC 9): hop-by-hop headers (RFC 9110 7.6.1:
//! `Connection` and the headers it names, `Keep-Alive`, `TE`, `Trailer`,
//! `Transfer-Encoding`, `Upgrade`, `Proxy-*`) never do; towards the target the browser's
//! `Cookie`, `Authorization`, `Host` and every header an upstream may trust from its proxy
//! (`Forwarded`, any `X-Forwarded-*`, `X-Real-IP`, `True-Client-IP`, `X-Original-URL`,
//! `X-Rewrite-URL`) are dropped and our `X-Forwarded-For`, `-Proto` and `-Host` set;
//! towards the browser `Set-Cookie` is dropped. `Content-Length` is written again on both
//! sides from the length of the body streamed.

use std::net::IpAddr;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue, USER_AGENT};

/// Sent as `User-Agent` when the browser sent none.
const OUR_USER_AGENT: &str = concat!("identity-service/", env!("CARGO_PKG_VERSION"));

/// Hop-by-hop headers (lower case), besides any `proxy-*` and those `Connection` names.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers never sent upstream: our session cookie, the browser's credentials,
/// `Expect` (we have already answered `100 Continue` ourselves; the upstream connection
/// also relies on never asking for one, see `upstream_io`) and the headers an upstream may
/// believe from its proxy (a browser's own would be believed upstream), besides any
/// [`TRUSTED_PREFIX`] one.
const REQUEST_DROPPED: [&str; 10] = [
    "cookie",
    "content-length",
    "expect",
    "authorization",
    "host",
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "x-original-url",
    "x-rewrite-url",
];

/// Every `X-Forwarded-*` header is ours to set (or not), never the browser's.
const TRUSTED_PREFIX: &str = "x-forwarded-";

/// Headers named by `Connection` (lower case).
fn connection_names<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    values
        .filter_map(|value| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

fn is_hop_by_hop(name: &str, named: &[String]) -> bool {
    HOP_BY_HOP.contains(&name) || name.starts_with("proxy-") || named.iter().any(|n| n == name)
}

/// How we describe the browser's request to the target.
pub struct Forwarding<'a> {
    /// The browser's address.
    pub peer: Option<IpAddr>,
    /// Whether `peer` is a trusted proxy, whose `X-Forwarded-For` chain is kept.
    pub peer_trusted: bool,
    /// `http` or `https`: how the browser reached us (our public URL).
    pub proto: &'a str,
    /// `host[:port]` of our public URL.
    pub host: &'a str,
}

/// Adds to `out` the headers sent upstream for a browser request with `incoming` headers.
pub fn upstream_request_headers(
    incoming: &HeaderMap,
    forwarding: &Forwarding,
    out: &mut HeaderMap,
) {
    let named = connection_names(incoming.get_all("connection").map(HeaderValue::as_bytes));
    for (name, value) in incoming {
        let lower = name.as_str();
        if is_hop_by_hop(lower, &named)
            || REQUEST_DROPPED.contains(&lower)
            || lower.starts_with(TRUSTED_PREFIX)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if !out.contains_key(USER_AGENT) {
        out.insert(USER_AGENT, HeaderValue::from_static(OUR_USER_AGENT));
    }
    let chain = forwarding
        .peer_trusted
        .then(|| incoming.get("x-forwarded-for"))
        .flatten()
        .and_then(|value| value.to_str().ok());
    let peer = forwarding.peer.map(|ip| ip.to_string());
    let forwarded_for = match (chain, peer) {
        (Some(chain), Some(peer)) => Some(format!("{chain}, {peer}")),
        (None, Some(peer)) => Some(peer),
        (Some(chain), None) => Some(chain.to_owned()),
        (None, None) => None,
    };
    let set = [
        ("x-forwarded-for", forwarded_for),
        ("x-forwarded-proto", Some(forwarding.proto.to_owned())),
        ("x-forwarded-host", Some(forwarding.host.to_owned())),
    ];
    for (name, value) in set {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            out.insert(HeaderName::from_static(name), value);
        }
    }
}

/// The upstream response headers the browser gets, as (name, value) pairs (the values of
/// one name in their order).
pub fn downstream_response_headers(
    upstream: &HeaderMap,
) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    let named = connection_names(upstream.get_all("connection").map(HeaderValue::as_bytes));
    upstream.iter().filter(move |(name, _)| {
        let lower = name.as_str();
        !is_hop_by_hop(lower, &named) && lower != "set-cookie" && lower != "content-length"
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn incoming(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    fn upstream(map: &HeaderMap, forwarding: &Forwarding) -> HeaderMap {
        let mut out = HeaderMap::new();
        upstream_request_headers(map, forwarding, &mut out);
        out
    }

    const FWD: Forwarding<'static> = Forwarding {
        peer: Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        peer_trusted: false,
        proto: "https",
        host: "id.example.com",
    };

    #[test]
    fn credentials_hop_by_hop_and_named_headers_stay_behind() {
        let map = incoming(&[
            ("cookie", "ctIDENTITY=secret"),
            ("authorization", "Bearer browser"),
            ("host", "id.example.com"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("expect", "100-continue"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic x"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-port", "443"),
            ("x-forwarded-prefix", "/admin"),
            ("x-real-ip", "6.6.6.6"),
            ("true-client-ip", "6.6.6.6"),
            ("x-original-url", "/admin"),
            ("x-rewrite-url", "/admin"),
            ("forwarded", "for=6.6.6.6"),
            ("content-length", "0"),
            ("accept", "application/json"),
            ("x-requested-with", "fetch"),
        ]);
        let out = upstream(&map, &FWD);
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "accept",
                "user-agent",
                "x-forwarded-for",
                "x-forwarded-host",
                "x-forwarded-proto",
                "x-requested-with"
            ]
        );
        assert_eq!(out.get("x-forwarded-for").unwrap(), "127.0.0.1");
        assert_eq!(out.get("x-forwarded-proto").unwrap(), "https");
        assert_eq!(out.get("x-forwarded-host").unwrap(), "id.example.com");
        assert_eq!(out.get("user-agent").unwrap(), OUR_USER_AGENT);
    }

    #[test]
    fn the_browsers_user_agent_is_kept() {
        let out = upstream(&incoming(&[("user-agent", "Browser/1")]), &FWD);
        let agents: Vec<_> = out.get_all("user-agent").collect();
        assert_eq!(agents, ["Browser/1"]);
    }

    #[test]
    fn a_trusted_peers_chain_is_kept() {
        let map = incoming(&[("x-forwarded-for", "203.0.113.9")]);
        let out = upstream(
            &map,
            &Forwarding {
                peer_trusted: true,
                ..FWD
            },
        );
        assert_eq!(
            out.get("x-forwarded-for").unwrap(),
            "203.0.113.9, 127.0.0.1"
        );
    }

    #[test]
    fn set_cookie_and_hop_by_hop_do_not_come_back() {
        let mut upstream = HeaderMap::new();
        for (name, value) in [
            ("content-type", "application/json"),
            ("set-cookie", "upstream=1"),
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("proxy-authenticate", "Basic"),
            ("x-api", "yes"),
        ] {
            upstream.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let mut names: Vec<&str> = downstream_response_headers(&upstream)
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "x-api"]);
    }
}
