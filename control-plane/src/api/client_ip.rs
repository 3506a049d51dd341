//! The client's address behind proxies. A request reaches the API from the peer; when the
//! peer is trusted (loopback: the built-in proxy of a one-node install, or one of
//! `api.trusted_proxies`: the proxies and load balancers in front of the API), the address it
//! forwarded in `X-Forwarded-For` is taken instead, hop by hop from the right, until an
//! address that is not trusted. So a client cannot choose the address it is audited and
//! rate-limited by: only trusted hops' claims are believed.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::state::AppState;

/// The client's address (None only when the connection's peer is unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(of_request(parts, state.trusted_proxies())))
    }
}

/// The client's address of a request with `parts`.
pub fn of_request(parts: &Parts, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    resolve(peer, &parts.headers, trusted)
}

/// The right-most address of the chain `X-Forwarded-For, peer` that is not trusted; the
/// left-most one when all are. An address that does not parse ends the walk at the hop that
/// forwarded it.
pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| ip.is_loopback() || trusted.iter().any(|net| net.contains(ip));
    let mut client = peer?.to_canonical();
    if !is_trusted(&client) {
        return Some(client);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) => client = ip.to_canonical(),
            Err(_) => break,
        }
        if !is_trusted(&client) {
            break;
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    fn client(peer: &str, forwarded: &[&str], trusted: &[&str]) -> Option<IpAddr> {
        let mut headers = HeaderMap::new();
        for f in forwarded {
            headers.append("x-forwarded-for", f.parse().expect("header"));
        }
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().expect("net")).collect();
        resolve(ip(peer), &headers, &trusted)
    }

    #[test]
    fn loopback_peers_are_trusted_by_default() {
        assert_eq!(
            client("127.0.0.1", &["203.0.113.9"], &[]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client("::1", &["198.51.100.1, 203.0.113.9"], &[]),
            ip("203.0.113.9"),
            "the right-most untrusted hop, not what the client wrote first"
        );
        assert_eq!(client("127.0.0.1", &["junk"], &[]), ip("127.0.0.1"));
        assert_eq!(client("127.0.0.1", &[], &[]), ip("127.0.0.1"));
        assert_eq!(
            client("::ffff:127.0.0.1", &["203.0.113.9"], &[]),
            ip("203.0.113.9"),
            "an IPv4-mapped loopback peer is loopback"
        );
    }

    #[test]
    fn other_peers_are_believed_only_when_trusted() {
        assert_eq!(
            client("192.0.2.7", &["203.0.113.9"], &[]),
            ip("192.0.2.7"),
            "an untrusted peer's header is ignored"
        );
        assert_eq!(
            client("10.1.2.3", &["203.0.113.9"], &["10.0.0.0/8"]),
            ip("203.0.113.9")
        );
        // Ingress (10.0.0.5) in front of the built-in proxy (10.1.2.3): both trusted, both
        // skipped; the spoofed left-most entry is never reached.
        assert_eq!(
            client(
                "10.1.2.3",
                &["6.6.6.6", "203.0.113.9, 10.0.0.5"],
                &["10.0.0.0/8"]
            ),
            ip("203.0.113.9")
        );
        // Every hop trusted: the left-most address.
        assert_eq!(
            client("10.1.2.3", &["10.0.0.9, 10.0.0.5"], &["10.0.0.0/8"]),
            ip("10.0.0.9")
        );
        // An unparsable hop stops the walk at the hop that forwarded it.
        assert_eq!(
            client(
                "10.1.2.3",
                &["203.0.113.9, bogus, 10.0.0.5"],
                &["10.0.0.0/8"]
            ),
            ip("10.0.0.5")
        );
        assert_eq!(
            client("2001:db8::1", &["203.0.113.9"], &["10.0.0.0/8"]),
            ip("2001:db8::1")
        );
    }
}
