//! Who is calling, by network address: the peer, or, when the peer is one of
//! `server.trusted_proxies`, the first address of `X-Forwarded-For` from the right that is
//! not a trusted proxy (the leftmost entries are whatever the client chose to send).

use std::net::{IpAddr, SocketAddr};

use actix_web::dev::ServiceRequest;
use actix_web::http::header::HeaderMap;

/// The header a proxy appends the address it saw to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client address of `request` (`None` only when the peer is unknown, e.g. in
/// in-process tests).
pub fn of_request(request: &ServiceRequest, trusted_proxies: &[ipnet::IpNet]) -> Option<IpAddr> {
    let peer = request.peer_addr()?.ip();
    Some(resolve(peer, request.headers(), trusted_proxies))
}

/// The client address behind `peer`, believing `X-Forwarded-For` only from trusted proxies.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[ipnet::IpNet]) -> IpAddr {
    let trusted = |ip: &IpAddr| trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    // Several headers count as one list, in order (RFC 7230 3.2.2).
    let entries: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect();
    for entry in entries.iter().rev() {
        let Some(ip) = parse_entry(entry) else {
            // An entry we cannot read: stop at the last hop we could.
            return client;
        };
        client = ip;
        if !trusted(&ip) {
            return ip;
        }
    }
    client
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:443`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                HeaderName::from_static(X_FORWARDED_FOR),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let got = resolve(ip("192.0.2.7"), &headers(&["198.51.100.1"]), &trusted);
        assert_eq!(got, ip("192.0.2.7"));
        let got = resolve(ip("10.0.0.1"), &headers(&["198.51.100.1"]), &[]);
        assert_eq!(got, ip("10.0.0.1"));
    }

    #[test]
    fn the_first_untrusted_address_from_the_right_is_the_client() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let spoofed = headers(&["203.0.113.9, 198.51.100.1", "10.1.1.1"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &spoofed, &trusted),
            ip("198.51.100.1")
        );
        let with_ports = headers(&["[2001:db8::1]:443, 10.2.2.2:80"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &with_ports, &trusted),
            ip("2001:db8::1")
        );
    }

    #[test]
    fn unreadable_or_all_trusted_entries_stop_at_the_last_known_hop() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            resolve(
                ip("10.0.0.1"),
                &headers(&["198.51.100.1, junk, 10.3.3.3"]),
                &trusted
            ),
            ip("10.3.3.3")
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &headers(&["10.4.4.4"]), &trusted),
            ip("10.4.4.4")
        );
        assert_eq!(
            resolve(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }
}
