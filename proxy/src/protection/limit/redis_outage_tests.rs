//! Cluster-mode scenarios while Redis is unreachable, and its return (resilience.md §5.6.4).
//! They need no Redis at 6379: the recovery test starts its own `redis-server` on a free port
//! (skipped when the binary is missing) and stops it by its handle.

use std::time::{Duration, Instant};

use medgate_config::{LimitMetric, RateLimitEntry, StoreFailureMode};

use super::redis_tests::{cluster, compile, req};
use super::*;
use crate::protection::clock::ManualClock;

const UNREACHABLE: &str = "redis://127.0.0.1:1";

/// Elapsed time of `admit`, and its answer.
async fn timed(
    limiter: &Limiter,
    rules: &LimitRules,
) -> (Duration, Result<Admission, LimitRefusal>) {
    let start = Instant::now();
    let r = limiter.admit(rules, &req("t"), 0).await;
    (start.elapsed(), r)
}

#[tokio::test]
async fn an_unreachable_store_follows_each_rules_failure_mode() {
    let timeout = Duration::from_millis(50);
    let store = RedisLimitStore::new(UNREACHABLE, timeout).expect("constructed while down");
    let limiter = Limiter::new(ManualClock::new(), Some(store));
    let open = compile(vec![RateLimitEntry {
        on_store_error: StoreFailureMode::FailOpen,
        ..cluster("open")
    }]);
    let closed = compile(vec![cluster("closed")]);
    let fallback = compile(vec![RateLimitEntry {
        limit: 100,
        fallback_limit: Some(3),
        on_store_error: StoreFailureMode::LocalFallback,
        ..cluster("fb")
    }]);
    for _ in 0..3 {
        let (took, r) = timed(&limiter, &open).await;
        assert!(took < timeout * 10, "{took:?}");
        assert_eq!(r.expect("fail open").headers(), None);
        let (took, r) = timed(&limiter, &closed).await;
        assert!(took < timeout * 10, "{took:?}");
        assert_eq!(
            r.expect_err("closed"),
            LimitRefusal::StoreUnavailable {
                rule_id: "closed".into()
            }
        );
        let (took, r) = timed(&limiter, &fallback).await;
        assert!(took < timeout * 10, "{took:?}");
        r.expect("fallback has room");
    }
    let (_, r) = timed(&limiter, &fallback).await;
    assert!(
        matches!(r, Err(LimitRefusal::Exceeded { ref rule_id, .. }) if rule_id == "fb"),
        "{r:?}"
    );
}

#[tokio::test]
async fn without_a_store_a_fail_open_settlement_is_kept_locally() {
    let limiter = Limiter::new(ManualClock::new(), None);
    let rules = compile(vec![RateLimitEntry {
        metric: LimitMetric::Tokens,
        limit: 10_000,
        on_store_error: StoreFailureMode::FailOpen,
        ..cluster("tpm")
    }]);
    let a = limiter
        .admit(&rules, &req("t"), 100)
        .await
        .expect("fail open");
    assert_eq!(limiter.local_keys(), 0);
    a.settle(1_000).await;
    assert_eq!(
        limiter.local_keys(),
        1,
        "usage charged to the fallback bucket"
    );
}

/// A `redis-server` this test started, killed (by its handle) when dropped.
struct OwnRedis(std::process::Child);

impl OwnRedis {
    fn start(port: u16) -> Option<Self> {
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        Some(Self(child))
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Calls `admit` until `done` accepts the answer (at most 15 s).
async fn until(
    limiter: &Limiter,
    rules: &LimitRules,
    done: impl Fn(&Result<Admission, LimitRefusal>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = limiter.admit(rules, &req("t"), 0).await;
        if done(&r) {
            return;
        }
        assert!(Instant::now() < deadline, "still {r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_store_is_used_again_once_redis_returns() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let timeout = Duration::from_millis(100);
    let store = RedisLimitStore::new(&format!("redis://127.0.0.1:{port}"), timeout).expect("url");
    let limiter = Limiter::new(ManualClock::new(), Some(store));
    let rules = compile(vec![RateLimitEntry {
        limit: 100_000,
        ..cluster("closed")
    }]);
    let down = |r: &Result<Admission, LimitRefusal>| {
        matches!(r, Err(LimitRefusal::StoreUnavailable { .. }))
    };
    until(&limiter, &rules, down).await;

    let Some(server) = OwnRedis::start(port) else {
        eprintln!("skipped: no redis-server binary to start");
        return;
    };
    until(&limiter, &rules, Result::is_ok).await;
    drop(server);
    until(&limiter, &rules, down).await;
    let (took, r) = timed(&limiter, &rules).await;
    assert!(down(&r) && took < timeout * 10, "{took:?} {r:?}");
    let _server = OwnRedis::start(port).expect("restart");
    until(&limiter, &rules, Result::is_ok).await;
}

#[tokio::test(start_paused = true)]
async fn a_settlement_redis_refuses_is_retried_then_kept_locally() {
    let store = RedisLimitStore::new(UNREACHABLE, Duration::from_millis(50)).expect("url");
    let limiter = Limiter::new(ManualClock::new(), Some(store));
    let rules = compile(vec![RateLimitEntry {
        metric: LimitMetric::Tokens,
        limit: 10_000,
        on_store_error: StoreFailureMode::FailOpen,
        ..cluster("tpm")
    }]);
    let a = limiter
        .admit(&rules, &req("t"), 100)
        .await
        .expect("fail open");
    a.settle(1_000).await;
    assert_eq!(limiter.local_keys(), 0, "retries run in the background");
    // Paused time: the backoff (0.2 + 0.8 + 3.2 s) passes instantly.
    for _ in 0..60 {
        if limiter.local_keys() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("the settlement was never charged locally");
}
