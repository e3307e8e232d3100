//! Store URLs: `redis://`, `rediss://`, `redis+cluster://` and `redis+sentinel://`
//! into the connection details of each node. Errors never echo the URL (it may hold
//! a password).

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisResult};

use super::{SENTINEL_DEFAULT_PORT, tcp_settings, unavailable};
use crate::store::StoreError;

/// What a URL asks for.
pub(super) enum Topology {
    Standalone(ConnectionInfo),
    Cluster(Vec<ConnectionInfo>),
    Sentinel {
        sentinels: Vec<ConnectionInfo>,
        master_name: String,
        master: redis::RedisConnectionInfo,
    },
}

/// Parses a store URL.
pub(super) fn parse(url: &str) -> Result<Topology, StoreError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| unavailable("invalid redis URL"))?;
    match scheme.to_ascii_lowercase().as_str() {
        "redis+cluster" | "rediss+cluster" => {
            let node_scheme = if scheme.eq_ignore_ascii_case("rediss+cluster") {
                "rediss"
            } else {
                "redis"
            };
            let parts = MultiHost::split(rest, "invalid redis cluster URL")?;
            let nodes = parts
                .hosts
                .iter()
                .map(|host| node_info(&parts.node_url(node_scheme, host, "")))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| unavailable("invalid redis cluster URL"))?;
            Ok(Topology::Cluster(nodes))
        }
        "redis+sentinel" => {
            let invalid =
                "invalid redis sentinel URL (redis+sentinel://host:port,…/master_name[/db])";
            let parts = MultiHost::split(rest, invalid)?;
            let mut path = parts.path.trim_matches('/').split('/');
            let master_name = path
                .next()
                .filter(|name| !name.is_empty())
                .ok_or_else(|| unavailable(invalid))?;
            let db = path.next().unwrap_or("");
            let sentinels = parts
                .hosts
                .iter()
                .map(|host| match has_port(host) {
                    true => node_info(&format!("redis://{host}")),
                    false => node_info(&format!("redis://{host}:{SENTINEL_DEFAULT_PORT}")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| unavailable(invalid))?;
            let first = parts.hosts.first().copied().unwrap_or_default();
            let master = node_info(&parts.node_url("redis", first, db))
                .map_err(|_| unavailable(invalid))?
                .redis_settings()
                .clone();
            Ok(Topology::Sentinel {
                sentinels,
                master_name: master_name.to_owned(),
                master,
            })
        }
        _ => node_info(url)
            .map(Topology::Standalone)
            .map_err(|_| unavailable("invalid redis URL")),
    }
}

/// `host1:port1,host2:port2` with optional credentials, path and query.
struct MultiHost<'a> {
    userinfo: Option<&'a str>,
    hosts: Vec<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> MultiHost<'a> {
    fn split(rest: &'a str, invalid: &str) -> Result<Self, StoreError> {
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
        if hosts.iter().any(|host| host.is_empty()) {
            return Err(unavailable(invalid));
        }
        Ok(Self {
            userinfo,
            hosts,
            path,
            query,
        })
    }

    /// `scheme://[userinfo@]host[/db][?query]`, for redis' own URL parser.
    fn node_url(&self, scheme: &str, host: &str, db: &str) -> String {
        let mut url = format!("{scheme}://");
        if let Some(userinfo) = self.userinfo {
            url.push_str(userinfo);
            url.push('@');
        }
        url.push_str(host);
        if !db.is_empty() {
            url.push('/');
            url.push_str(db);
        }
        if let Some(query) = self.query {
            url.push('?');
            url.push_str(query);
        }
        url
    }
}

fn node_info(url: &str) -> RedisResult<ConnectionInfo> {
    let info = url.into_connection_info()?;
    if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
        // redis builds its rustls config from the process-wide crypto provider and
        // panics without one; `main` installs the same one, so this is a no-op there.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    Ok(info.set_tcp_settings(tcp_settings()))
}

/// Whether `host` ends in `:port` (`[::1]:26379` yes, `::1` or `name` no).
fn has_port(host: &str) -> bool {
    host.rsplit_once(':').is_some_and(|(name, port)| {
        !port.is_empty()
            && port.bytes().all(|b| b.is_ascii_digit())
            && (!name.contains(':') || name.ends_with(']'))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::TCP_USER_TIMEOUT;
    use super::*;

    fn addresses(nodes: &[ConnectionInfo]) -> Vec<String> {
        nodes.iter().map(|node| node.addr().to_string()).collect()
    }

    #[test]
    fn a_cluster_url_lists_every_node_with_the_shared_credentials() {
        let Ok(Topology::Cluster(nodes)) = parse("redis+cluster://u:p%40ss@h1:7000,h2:7001") else {
            panic!("not a cluster");
        };
        assert_eq!(addresses(&nodes), ["h1:7000", "h2:7001"]);
        for node in &nodes {
            assert_eq!(node.redis_settings().username(), Some("u"));
            assert_eq!(node.redis_settings().password(), Some("p@ss"));
        }
    }

    #[test]
    fn a_sentinel_url_names_sentinels_master_and_the_masters_credentials_and_db() {
        let Ok(Topology::Sentinel {
            sentinels,
            master_name,
            master,
        }) = parse("redis+sentinel://:pw@s1:5000,s2,[::1]:5002/mymaster/3")
        else {
            panic!("not a sentinel URL");
        };
        assert_eq!(addresses(&sentinels), ["s1:5000", "s2:26379", "::1:5002"]);
        assert!(
            sentinels
                .iter()
                .all(|s| s.redis_settings().password().is_none())
        );
        assert_eq!(master_name, "mymaster");
        assert_eq!(master.password(), Some("pw"));
        assert_eq!(master.db(), 3);
    }

    #[test]
    fn a_plain_url_is_parsed_by_redis_itself() {
        let Ok(Topology::Standalone(info)) = parse("rediss://u:pw@cache.example:6380/2") else {
            panic!("not standalone");
        };
        assert_eq!(info.addr().to_string(), "cache.example:6380");
        assert_eq!(info.redis_settings().db(), 2);
        assert_eq!(info.tcp_settings().user_timeout(), Some(TCP_USER_TIMEOUT));
    }

    #[test]
    fn ports_are_recognised_on_names_and_bracketed_ipv6_only() {
        assert!(has_port("host:1"));
        assert!(has_port("[::1]:26379"));
        assert!(!has_port("host"));
        assert!(!has_port("[::1]"));
        assert!(!has_port("host:"));
    }
}
