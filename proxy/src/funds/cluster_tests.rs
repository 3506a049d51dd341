//! Spending holds shared through a real Redis: two `Funds` stand for two proxies.
//!
//! Redis at 127.0.0.1:6379 (or `MEDGATE_REDIS_URL`), a random key prefix per test; skipped
//! with a note when unreachable unless `MEDGATE_REQUIRE_REDIS=1`.

use std::sync::Arc;
use std::time::Duration;

use medgate_config::FundsEntry;
use tokio::sync::Notify;

use super::cluster::DEFAULT_TTL;
use super::*;

fn url() -> String {
    std::env::var("MEDGATE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn redis_up() -> bool {
    let up = std::net::TcpStream::connect_timeout(
        &url()
            .trim_start_matches("redis://")
            .split('/')
            .next()
            .unwrap_or("127.0.0.1:6379")
            .parse()
            .unwrap_or(([127, 0, 0, 1], 6379).into()),
        Duration::from_secs(1),
    )
    .is_ok();
    assert!(
        up || std::env::var("MEDGATE_REQUIRE_REDIS").as_deref() != Ok("1"),
        "Redis is required (MEDGATE_REQUIRE_REDIS=1) but unreachable"
    );
    if !up {
        eprintln!("skipped: Redis unreachable");
    }
    up
}

/// A proxy's funds sharing holds under `prefix`, its publisher running until `stop`.
fn proxy(prefix: &str, name: &str, ttl: Duration, stop: &Arc<Notify>) -> Arc<Funds> {
    let holds = ClusterHolds::new(&url(), Duration::from_millis(500), name)
        .expect("url")
        .with_prefix(prefix)
        .with_ttl(ttl);
    let funds = Arc::new(Funds::new(Some(holds)));
    let stop = Arc::clone(stop);
    tokio::spawn(Arc::clone(&funds).publish_until(async move { stop.notified().await }));
    funds
}

fn spendable(funds: &Funds, minor: i64) {
    funds.apply(
        &[FundsEntry {
            tenant_id: "t".into(),
            spendable_minor: Some(minor),
            currency: "CNY".into(),
        }],
        funds.epoch(),
    );
}

fn prefix() -> String {
    format!("mgtest-{}", uuid::Uuid::new_v4().simple())
}

/// Retries `attempt` for up to 3 s (the publisher works in the background).
async fn eventually(mut attempt: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..60 {
        if attempt().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_reservation_must_fit_after_the_other_proxies_holds() {
    if !redis_up() {
        return;
    }
    let (p, stop) = (prefix(), Arc::new(Notify::new()));
    let a = proxy(&p, "a", DEFAULT_TTL, &stop);
    let b = proxy(&p, "b", DEFAULT_TTL, &stop);
    spendable(&a, 1); // 1,000,000 micros on both proxies' feeds
    spendable(&b, 1);

    let held = a.reserve("t", 600_000).await.expect("fits").expect("gated");
    let refused = b.reserve("t", 600_000).await.expect_err("a holds 600,000");
    assert_eq!(
        refused.available_minor, 0,
        "400,000 micros left: 0 whole minor units"
    );
    let small = b.reserve("t", 400_000).await.expect("fits").expect("gated");
    assert!(a.reserve("t", 1).await.is_err(), "all of it is held now");

    // A finished request keeps its actual cost held until the feed shows the debit.
    held.settle("req-a", 700_000);
    drop(small);
    assert!(
        eventually(async || b.reserve("t", 300_000).await.is_ok()).await,
        "b sees a's 700,000 once published, and 300,000 fit"
    );
    assert!(b.reserve("t", 300_001).await.is_err());
    assert_eq!(a.unshared_decisions() + b.unshared_decisions(), 0);
    stop.notify_waiters();
}

#[tokio::test]
async fn concurrent_reservations_across_proxies_never_exceed_the_funds() {
    if !redis_up() {
        return;
    }
    let (p, stop) = (prefix(), Arc::new(Notify::new()));
    let proxies: Vec<Arc<Funds>> = (0..3)
        .map(|i| proxy(&p, &format!("p{i}"), DEFAULT_TTL, &stop))
        .collect();
    for f in &proxies {
        spendable(f, 1);
    }
    let mut tasks = Vec::new();
    for i in 0..60 {
        let f = Arc::clone(&proxies[i % 3]);
        tasks.push(tokio::spawn(async move {
            f.reserve("t", 100_000).await.ok().flatten()
        }));
    }
    let mut admitted = Vec::new();
    for t in tasks {
        if let Some(r) = t.await.expect("task") {
            admitted.push(r);
        }
    }
    assert_eq!(
        admitted.len(),
        10,
        "1,000,000 micros hold exactly ten 100,000 estimates"
    );
    stop.notify_waiters();
}

#[tokio::test]
async fn the_holds_of_a_proxy_that_died_expire() {
    if !redis_up() {
        return;
    }
    let p = prefix();
    let (stop_a, stop_b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let ttl = Duration::from_millis(600);
    let a = proxy(&p, "a", ttl, &stop_a);
    let b = proxy(&p, "b", ttl, &stop_b);
    spendable(&a, 1);
    spendable(&b, 1);
    let held = a.reserve("t", 900_000).await.expect("fits").expect("gated");
    // Still refreshed by a's publisher after more than one TTL.
    tokio::time::sleep(ttl * 2).await;
    assert!(
        b.reserve("t", 200_000).await.is_err(),
        "a is alive and holds 900,000"
    );
    // a dies: no release, no refresh.
    stop_a.notify_waiters();
    std::mem::forget(held);
    assert!(
        eventually(async || b.reserve("t", 200_000).await.is_ok()).await,
        "a's hold expired"
    );
    stop_b.notify_waiters();
}

#[tokio::test]
async fn without_redis_each_proxy_decides_alone() {
    let holds =
        ClusterHolds::new("redis://127.0.0.1:1", Duration::from_millis(50), "a").expect("url");
    let funds = Arc::new(Funds::new(Some(holds)));
    spendable(&funds, 1);
    let r = funds
        .reserve("t", 600_000)
        .await
        .expect("fits")
        .expect("gated");
    assert!(
        funds.reserve("t", 600_000).await.is_err(),
        "the local check still holds"
    );
    assert_eq!(funds.unshared_decisions(), 1);
    drop(r);
}
