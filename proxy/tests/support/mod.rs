//! What the proxy's end-to-end tests share: the two API keys of their gateway files, free
//! ports, key digests, waiting for readiness and the usage spool reader.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use medgate_config::UsageEvent;
use sha2::{Digest, Sha256};

/// Tenant t1's key (prefix `mg_0123456789ab`).
pub const KEY: &str =
    "mg_0123456789ab_4f1c2a7d9e8b6c5a4f1c2a7d9e8b6c5a4f1c2a7d9e8b6c5a4f1c2a7d9e8b6c5a";
/// Tenant t2's key (prefix `mg_ba9876543210`).
pub const OTHER_KEY: &str =
    "mg_ba9876543210_00000000000000000000000000000000000000000000000000000000000000aa";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Waits (up to 10 s) until the proxy at `base_url` answers `GET /readyz` with 200.
pub async fn wait_ready(base_url: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{base_url}/readyz"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "proxy never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SHA-256 (hex) of a key, as gateway files store it.
pub fn sha(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Reads the usage spool (the sink writes there in static mode), waiting for `n` events.
pub async fn usage_events(dir: &Path, n: usize) -> Vec<UsageEvent> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events: Vec<UsageEvent> = std::fs::read_to_string(dir.join("usage-spool.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if events.len() >= n || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
