//! Upstream endpoints: parsed once per snapshot into peers ready to dial.

use std::net::ToSocketAddrs;
use std::time::Duration;

use medgate_config::{ModelEntry, UpstreamEntry};
use pingora::upstreams::peer::HttpPeer;

/// One upstream endpoint of a model.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub peer: HttpPeer,
    /// `Host` header value.
    pub host: String,
    /// Path prefix from the URL (e.g. `/v1`), without a trailing slash.
    pub base_path: String,
    pub authorization: Option<String>,
    pub weight: u32,
    /// For logs and metrics: scheme://host:port (never the key).
    pub label: String,
    /// The configured base URL: names the upstream for breakers and health
    /// (`upstream:<url>`).
    pub url: String,
    /// Dedicated pool the upstream belongs to; None for the shared pool.
    pub pool: Option<String>,
    /// Concurrency the upstream is sized for (tenants' share caps are computed from it).
    pub max_concurrency: Option<u32>,
}

impl UpstreamTarget {
    /// None when the URL cannot be used (the snapshot validator already refuses bad schemes).
    pub fn new(model: &ModelEntry, upstream: &UpstreamEntry) -> Option<Self> {
        let url = BaseUrl::parse(&upstream.url)?;
        // Resolved once per snapshot; Pingora's own resolution would panic on a bad name.
        let Some(addr) = url.resolve() else {
            tracing::warn!(model = %model.name, host = %url.host_name, "upstream host does not resolve; endpoint skipped");
            return None;
        };
        let mut peer = HttpPeer::new(addr, url.tls, url.host_name.clone());
        peer.options.connection_timeout =
            Some(Duration::from_millis(model.connect_timeout_ms.max(1)));
        peer.options.total_connection_timeout =
            Some(Duration::from_millis(model.connect_timeout_ms.max(1) * 2));
        peer.options.read_timeout = Some(Duration::from_millis(model.read_timeout_ms.max(1)));
        peer.options.write_timeout = Some(Duration::from_secs(60));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        if let (true, Some(ca)) = (url.tls, &upstream.ca_pem) {
            if let Err(e) = crate::tls::trust_ca(&mut peer, ca) {
                tracing::warn!(model = %model.name, upstream = %url.label(), error = %e, "upstream CA certificate unusable; endpoint skipped");
                return None;
            }
        }
        Some(Self {
            peer,
            label: url.label(),
            host: url.authority,
            base_path: url.base_path,
            authorization: upstream.api_key.as_ref().map(|k| format!("Bearer {k}")),
            weight: upstream.weight,
            url: upstream.url.clone(),
            pool: upstream.pool.clone(),
            max_concurrency: upstream.max_concurrency,
        })
    }
}

/// An upstream base URL, `http(s)://host[:port][/path]`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    pub tls: bool,
    /// Host without brackets, for SNI and resolution.
    pub host_name: String,
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// Path prefix (e.g. `/v1`), without a trailing slash.
    pub base_path: String,
}

impl BaseUrl {
    pub fn parse(url: &str) -> Option<Self> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            (false, url.strip_prefix("http://")?)
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, p.parse().ok()?),
            _ => (authority, if tls { 443 } else { 80 }),
        };
        Some(Self {
            tls,
            host_name: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            authority: authority.to_owned(),
            base_path: path.to_owned(),
        })
    }

    /// The first address of the host (blocking DNS: call it once per snapshot, never per
    /// request).
    pub fn resolve(&self) -> Option<std::net::SocketAddr> {
        (self.host_name.as_str(), self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
    }

    /// `scheme://authority`, for logs and metrics (never credentials).
    pub fn label(&self) -> String {
        format!(
            "{}://{}",
            if self.tls { "https" } else { "http" },
            self.authority
        )
    }
}

/// Weighted choice: `roll` in `0..total_weight`.
pub fn pick(targets: &[UpstreamTarget], roll: u32) -> Option<&UpstreamTarget> {
    let mut left = roll;
    for t in targets {
        if left < t.weight {
            return Some(t);
        }
        left -= t.weight;
    }
    targets.last()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> ModelEntry {
        ModelEntry {
            id: "m".into(),
            name: "m".into(),
            enabled: true,
            provider: "openai_compatible".into(),
            upstreams: vec![],
            upstream_model: "m".into(),
            connect_timeout_ms: 1000,
            read_timeout_ms: 1000,
            available_to_all_tenants: true,
            parameters: Default::default(),
            rates: Vec::new(),
        }
    }

    fn upstream(url: &str) -> UpstreamEntry {
        UpstreamEntry {
            url: url.into(),
            weight: 1,
            api_key: Some("sk".into()),
            pool: None,
            max_concurrency: None,
            ca_pem: None,
        }
    }

    #[test]
    fn urls_parse_into_peers() {
        let t =
            UpstreamTarget::new(&model(), &upstream("http://127.0.0.1:9000/v1/")).expect("parses");
        assert_eq!(t.host, "127.0.0.1:9000");
        assert_eq!(t.base_path, "/v1");
        assert_eq!(t.authorization.as_deref(), Some("Bearer sk"));
        let t = UpstreamTarget::new(&model(), &upstream("https://localhost")).expect("parses");
        assert_eq!(t.base_path, "");
        assert_eq!(t.label, "https://localhost");
        assert!(UpstreamTarget::new(&model(), &upstream("ftp://x")).is_none());
        assert!(
            UpstreamTarget::new(&model(), &upstream("http://no-such-host.invalid:80")).is_none(),
            "an unresolvable host is skipped, not a panic"
        );
    }

    #[test]
    fn an_upstream_ca_is_trusted_for_https_only_and_a_bad_one_skips_the_endpoint() {
        let key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertificateParams::new(vec!["ca.test".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("cert")
            .pem();
        let mut u = upstream("https://127.0.0.1:8443/v1");
        u.ca_pem = Some(ca.clone());
        let t = UpstreamTarget::new(&model(), &u).expect("https with a CA");
        assert_eq!(t.peer.options.ca.as_ref().map(|c| c.len()), Some(1));
        let mut plain = upstream("http://127.0.0.1:8080");
        plain.ca_pem = Some(ca);
        let t = UpstreamTarget::new(&model(), &plain).expect("plain http");
        assert!(t.peer.options.ca.is_none(), "no TLS, nothing to verify");
        u.ca_pem = Some("not a certificate".into());
        assert!(UpstreamTarget::new(&model(), &u).is_none());
    }

    #[test]
    fn weighted_pick_covers_every_target() {
        let mut a = UpstreamTarget::new(&model(), &upstream("http://127.0.0.1:1")).expect("a");
        let mut b = UpstreamTarget::new(&model(), &upstream("http://127.0.0.2:1")).expect("b");
        a.weight = 3;
        b.weight = 1;
        let ts = vec![a, b];
        assert_eq!(pick(&ts, 0).map(|t| t.host.as_str()), Some("127.0.0.1:1"));
        assert_eq!(pick(&ts, 2).map(|t| t.host.as_str()), Some("127.0.0.1:1"));
        assert_eq!(pick(&ts, 3).map(|t| t.host.as_str()), Some("127.0.0.2:1"));
    }
}
