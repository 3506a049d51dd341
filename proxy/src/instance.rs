//! This proxy process as the control plane knows it: an instance id chosen at start (a
//! restart is a new instance), its address, start time and request counter. Reported by the
//! heartbeat and stamped on every access-log entry.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// One running proxy.
#[derive(Debug)]
pub struct Instance {
    /// UUIDv7: sorts by start time.
    pub id: String,
    /// RFC 3339 UTC.
    pub started_at: String,
    pub address: String,
    requests: AtomicU64,
}

impl Instance {
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            id: uuid::Uuid::now_v7().to_string(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            address: listen.to_string(),
            requests: AtomicU64::new(0),
        }
    }

    /// Counts one finished request (any route, any outcome).
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn requests_total(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}
