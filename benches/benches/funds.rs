//! Criterion benchmarks of the money gate on the request path: reserving a request's estimated
//! cost and settling it, for a tenant on a spending limit, on one proxy (in memory) and in
//! cluster mode (one Lua script in the Redis at 127.0.0.1:6379 per reservation; skipped when
//! Redis is down).
//!
//! `cargo bench -p medgate-benches --bench funds` (or `bash benches/criterion.sh funds`).

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use medgate_config::FundsEntry;
use medgate_proxy::funds::{ClusterHolds, Funds};

fn gated(funds: &Funds) {
    funds.apply(
        &[FundsEntry {
            tenant_id: "tenant".into(),
            spendable_minor: Some(1_000_000_000),
            currency: "CNY".into(),
        }],
        funds.epoch(),
    );
}

fn redis_up() -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], 6379).into(), Duration::from_secs(1))
        .is_ok()
}

fn reserve_and_settle(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = Arc::new(Funds::new(None));
    gated(&local);
    let mut group = c.benchmark_group("funds");
    group.bench_function("reserve_settle_local", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let r = local
                    .reserve("tenant", 1_500)
                    .await
                    .expect("fits")
                    .expect("gated");
                r.settle("req", 1_200);
            });
        });
    });
    if redis_up() {
        let holds = ClusterHolds::new(
            "redis://127.0.0.1:6379",
            Duration::from_millis(500),
            "bench",
        )
        .expect("url")
        .with_prefix(&format!("mgbench-{}", std::process::id()));
        let cluster = Arc::new(Funds::new(Some(holds)));
        gated(&cluster);
        // The background publisher runs too (it sends each changed hold), as in a proxy.
        runtime.spawn(Arc::clone(&cluster).publish_until(std::future::pending()));
        group.bench_function("reserve_settle_cluster_redis", |b| {
            b.iter(|| {
                runtime.block_on(async {
                    let r = cluster
                        .reserve("tenant", 1_500)
                        .await
                        .expect("fits")
                        .expect("gated");
                    r.settle("req", 1_200);
                });
            });
        });
    } else {
        eprintln!("funds/reserve_settle_cluster_redis skipped: Redis unreachable");
    }
    group.finish();
}

criterion_group!(benches, reserve_and_settle);
criterion_main!(benches);
