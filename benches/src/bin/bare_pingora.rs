//! A bare Pingora pass-through proxy: the floor of medgate's overhead (DESIGN.md §8).
//!
//! Every request goes to one upstream on Pingora's native proxy path, nothing else.
//! `bare_pingora [--listen 127.0.0.1:18403] [--upstream 127.0.0.1:18401] [--threads 1]`;
//! runs until SIGINT (fast stop) or SIGTERM (graceful stop).

use async_trait::async_trait;
use medgate_benches::{addr_arg, arg};
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::net::SocketAddr;

struct PassThrough {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.upstream, false, String::new())))
    }
}

fn main() {
    let listen = addr_arg("--listen", 18403);
    let upstream = addr_arg("--upstream", 18401);
    let threads: usize = arg("--threads", 1);
    let conf = ServerConf {
        threads: threads.max(1),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, PassThrough { upstream });
    service.add_tcp(&listen.to_string());
    server.add_service(service);
    println!("bare pingora on {listen} -> {upstream}, {threads} thread(s)");
    server.run_forever();
}
