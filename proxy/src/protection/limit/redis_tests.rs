//! Cluster-mode scenarios against a real Redis (resilience.md §5.6).
//!
//! They use Redis at 127.0.0.1:6379 (or `MEDGATE_REDIS_URL`) with a random key prefix per
//! test, and are skipped with a note when it is unreachable, unless
//! `MEDGATE_REQUIRE_REDIS=1`, in which case they fail. Outage scenarios: `redis_outage_tests`.

use std::sync::Arc;
use std::time::Duration;

use medgate_config::{
    LimitMetric, LimitMode, LimitScope, LimitWindow, RateLimitEntry, StoreFailureMode,
};

use super::rules::tests::{rule, snapshot};
use super::*;
use crate::protection::clock::{ManualClock, SystemClock};

fn url() -> String {
    std::env::var("MEDGATE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A store on the test Redis with a fresh prefix, or None (skip) when Redis is down.
async fn store_with(prefix: &str, timeout: Duration) -> Option<RedisLimitStore> {
    let store = RedisLimitStore::new(&url(), timeout)
        .expect("url")
        .with_prefix(prefix);
    let mut conn = tokio::time::timeout(Duration::from_secs(2), store.raw())
        .await
        .ok()
        .flatten();
    let up = match conn.as_mut() {
        Some(c) => ::redis::cmd("PING").query_async::<String>(c).await.is_ok(),
        None => false,
    };
    if up {
        return Some(store);
    }
    assert!(
        std::env::var("MEDGATE_REQUIRE_REDIS").as_deref() != Ok("1"),
        "Redis at {} is required (MEDGATE_REQUIRE_REDIS=1) but unreachable",
        url()
    );
    eprintln!("skipped: Redis at {} unreachable", url());
    None
}

fn prefix() -> String {
    format!("mgtest-{}", uuid::Uuid::new_v4())
}

pub(super) fn cluster(id: &str) -> RateLimitEntry {
    RateLimitEntry {
        mode: LimitMode::Cluster,
        on_store_error: StoreFailureMode::FailClosed,
        ..rule(id)
    }
}

pub(super) fn req(tenant: &str) -> LimitRequest<'_> {
    LimitRequest {
        tenant_id: tenant,
        api_key_id: None,
        model: None,
        route_id: None,
    }
}

pub(super) fn compile(rules: Vec<RateLimitEntry>) -> LimitRules {
    LimitRules::compile(&snapshot(rules, vec![]), true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_admit_exactly_the_limit() {
    let rules = Arc::new(compile(vec![RateLimitEntry {
        limit: 100,
        window: LimitWindow::Hour,
        ..cluster("hourly")
    }]));
    for round in 0..20 {
        let prefix = prefix();
        let timeout = Duration::from_secs(2);
        let (Some(a), Some(b)) = (
            store_with(&prefix, timeout).await,
            store_with(&prefix, timeout).await,
        ) else {
            return;
        };
        // Replica clocks disagree by 30 s: irrelevant, the script reads Redis TIME.
        let skewed = ManualClock::new();
        skewed.set(Duration::from_secs(30));
        let replicas = [
            Limiter::new(SystemClock::shared(), Some(a)),
            Limiter::new(skewed, Some(b)),
        ];
        let tasks: Vec<_> = (0..300)
            .map(|i| {
                let (limiter, rules) = (replicas[i % 2].clone(), rules.clone());
                tokio::spawn(async move { limiter.admit(&rules, &req("t"), 0).await.map(drop) })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(()) => admitted += 1,
                Err(LimitRefusal::Exceeded { .. }) => {}
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        assert_eq!(admitted, 100, "round {round}");
    }
}

#[tokio::test]
async fn keys_carry_a_ttl_and_vanish_when_refunded_to_empty() {
    let prefix = prefix();
    let Some(store) = store_with(&prefix, Duration::from_secs(1)).await else {
        return;
    };
    let mut conn = store.raw().await.expect("conn");
    let limiter = Limiter::new(SystemClock::shared(), Some(store.clone()));
    let rules = compile(vec![
        cluster("rpm"),
        RateLimitEntry {
            metric: LimitMetric::Tokens,
            limit: 10_000,
            ..cluster("tpm")
        },
    ]);
    let a = limiter.admit(&rules, &req("t"), 3000).await.expect("room");
    let pttl = |key: String| {
        let mut conn = conn.clone();
        async move {
            ::redis::cmd("PTTL")
                .arg(key)
                .query_async::<i64>(&mut conn)
                .await
                .expect("pttl")
        }
    };
    // rpm: 1 s of level + 1 s margin; tpm: 3000 x 6 ms = 18 s + 1 s margin.
    let rpm = pttl(store.key("t", "rpm", "t")).await;
    assert!((1..=2_000).contains(&rpm), "{rpm}");
    let tpm = pttl(store.key("t", "tpm", "t")).await;
    assert!((17_000..=19_000).contains(&tpm), "{tpm}");
    a.settle(0).await;
    assert_eq!(
        pttl(store.key("t", "tpm", "t")).await,
        -2,
        "refunded to empty: deleted"
    );
    let _: () = ::redis::cmd("DEL")
        .arg(store.key("t", "rpm", "t"))
        .query_async(&mut conn)
        .await
        .expect("del");
}

#[tokio::test]
async fn one_script_charges_all_rules_or_none() {
    let Some(store) = store_with(&prefix(), Duration::from_secs(1)).await else {
        return;
    };
    // A global (tag "global") and a tenant rule (tag "t1"): fine on standalone Redis.
    let a = RateLimitEntry {
        scope: LimitScope::Global,
        limit: 2,
        ..cluster("A")
    };
    let b = RateLimitEntry {
        tenant_id: Some("t1".into()),
        limit: 1,
        ..cluster("B")
    };
    let local = RateLimitEntry {
        limit: 3,
        ..rule("local")
    };
    let rules = compile(vec![a, b, local]);
    let limiter = Limiter::new(ManualClock::new(), Some(store));
    limiter
        .admit(&rules, &req("t1"), 0)
        .await
        .expect("all have room");
    let refused = limiter
        .admit(&rules, &req("t1"), 0)
        .await
        .expect_err("B is full");
    assert!(
        matches!(&refused, LimitRefusal::Exceeded { rule_id, retry_after, .. }
            if rule_id == "B" && *retry_after == Duration::from_secs(60)),
        "{refused:?}"
    );
    // A holds one charge (not two); t1's local counter was refunded (two left of three).
    limiter
        .admit(&rules, &req("t2"), 0)
        .await
        .expect("A has one left");
    assert!(limiter.admit(&rules, &req("t2"), 0).await.is_err());
    let only_local = compile(vec![RateLimitEntry {
        limit: 3,
        ..rule("local")
    }]);
    limiter
        .admit(&only_local, &req("t1"), 0)
        .await
        .expect("local 2");
    limiter
        .admit(&only_local, &req("t1"), 0)
        .await
        .expect("local 3");
    assert!(limiter.admit(&only_local, &req("t1"), 0).await.is_err());
}

#[tokio::test]
async fn settle_moves_the_cluster_counter_by_the_exact_difference() {
    let Some(store) = store_with(&prefix(), Duration::from_secs(1)).await else {
        return;
    };
    // Per hour, so the few milliseconds of the test drain nothing (1 token per 360 ms).
    let rules = compile(vec![RateLimitEntry {
        metric: LimitMetric::Tokens,
        limit: 10_000,
        window: LimitWindow::Hour,
        ..cluster("tph")
    }]);
    let limiter = Limiter::new(ManualClock::new(), Some(store));
    let a = limiter.admit(&rules, &req("t"), 3000).await.expect("room");
    assert_eq!(a.headers().map(|h| h.remaining), Some(7_000));
    a.settle(1_500).await;
    let b = limiter.admit(&rules, &req("t"), 0).await.expect("room");
    assert_eq!(b.headers().map(|h| h.remaining), Some(8_500));
    b.settle(12_000).await;
    // 13 500 of 10 000: in debt, refused even at zero cost, for ~3 500 x 360 ms.
    match limiter.admit(&rules, &req("t"), 0).await {
        Err(LimitRefusal::Exceeded { retry_after, .. }) => {
            assert!(
                (1_259..=1_261).contains(&retry_after.as_secs()),
                "{retry_after:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}
