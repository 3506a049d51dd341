//! The testkit mock OpenAI upstream as a process, for the load scenario.
//!
//! `mock_upstream [--listen 127.0.0.1:18401] [--threads 2] [--delay-ms 0]`; runs until SIGINT
//! or SIGTERM. `--delay-ms` makes every answer wait (a slow shared model backend).

use medgate_benches::{addr_arg, arg};
use medgate_testkit::{Behavior, MockUpstream};
use tokio::signal::unix::{signal, SignalKind};

fn main() -> std::io::Result<()> {
    let listen = addr_arg("--listen", 18401);
    let threads: usize = arg("--threads", 2);
    let delay_ms: u64 = arg("--delay-ms", 0);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?
        .block_on(async move {
            let upstream = MockUpstream::start_on(listen).await?;
            upstream.set_behavior(Behavior {
                delay_ms,
                ..Behavior::default()
            });
            println!("mock upstream listening on {}", upstream.base_url());
            let mut term = signal(SignalKind::terminate())?;
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            println!(
                "mock upstream served {} requests under /v1",
                upstream.hits()
            );
            upstream.shutdown().await;
            Ok(())
        })
}
