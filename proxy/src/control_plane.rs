//! The control planes a proxy talks to (snapshot and funds long-polls, usage and access-log
//! delivery, heartbeats, the management API passthrough).
//!
//! Cluster mode runs several control planes on one database; any of them answers any call.
//! The proxy uses one at a time and moves to the next after a failed call, so a control plane
//! that stops costs the proxy one failed call per consumer, not an outage. (Behind a
//! Kubernetes Service there is one address and the Service does this.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct ControlPlanes {
    addrs: Vec<SocketAddr>,
    current: AtomicUsize,
}

impl ControlPlanes {
    /// `primary` first, then `standby` in order.
    pub fn new(primary: SocketAddr, standby: &[SocketAddr]) -> Self {
        let mut addrs = vec![primary];
        addrs.extend(standby.iter().filter(|a| **a != primary));
        Self {
            addrs,
            current: AtomicUsize::new(0),
        }
    }

    /// The control plane in use.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[self.current.load(Ordering::Relaxed) % self.addrs.len()]
    }

    /// Its base URL (`http://host:port`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// A call to `url` failed: move on to the next control plane, unless another caller
    /// already did.
    pub fn failed(&self, url: &str) {
        let index = self.current.load(Ordering::Relaxed);
        if self.addrs.len() > 1 && format!("http://{}", self.addrs[index % self.addrs.len()]) == url
        {
            let next = (index + 1) % self.addrs.len();
            if self
                .current
                .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                tracing::warn!(from = url, to = %self.addrs[next], "control plane unreachable; switching");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_moves_on_once_and_wraps_around() {
        let a: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        let cps = ControlPlanes::new(a, &[b, a]);
        assert_eq!(cps.url(), "http://127.0.0.1:1");
        cps.failed("http://127.0.0.1:1");
        cps.failed("http://127.0.0.1:1"); // a second report of the same failure
        assert_eq!(cps.addr(), b);
        cps.failed("http://127.0.0.1:2");
        assert_eq!(cps.addr(), a);
        let single = ControlPlanes::new(a, &[]);
        single.failed("http://127.0.0.1:1");
        assert_eq!(single.addr(), a);
    }
}
