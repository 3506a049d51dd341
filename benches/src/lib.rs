//! medgate benchmarks.
//!
//! - `benches/hot_path.rs`: criterion micro-benchmarks of the proxy's per-request work (route
//!   match, key verification, model extraction, SSE metering) and of the snapshot swap.
//! - `src/bin/mock_upstream.rs` and `src/bin/bare_pingora.rs`: the upstream and the floor
//!   reference of the load scenario `benches/load.sh` (results in `benches/RESULTS.md`).
#![forbid(unsafe_code)]

use std::net::SocketAddr;

/// Reads `--name value` from the command line, or `default`.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| {
            w[1].parse()
                .unwrap_or_else(|_| panic!("{name}: cannot parse {:?}", w[1]))
        })
        .unwrap_or(default)
}

/// The address part of `--listen` style arguments, with a loopback default port.
pub fn addr_arg(name: &str, default_port: u16) -> SocketAddr {
    arg(name, SocketAddr::from(([127, 0, 0, 1], default_port)))
}
