//! Limiter scenarios on the local store and a manual clock (resilience.md §5.4, §5.5).

use std::sync::Arc;
use std::time::Duration;

use medgate_config::{LimitMetric, LimitMode, LimitScope, RateLimitEntry, StoreFailureMode};

use super::rules::tests::{rule, snapshot};
use super::*;
use crate::protection::clock::ManualClock;

fn setup(rules: Vec<RateLimitEntry>) -> (Arc<ManualClock>, Limiter, LimitRules) {
    let clock = ManualClock::new();
    let limiter = Limiter::new(clock.clone(), None);
    (
        clock,
        limiter,
        LimitRules::compile(&snapshot(rules, vec![]), false),
    )
}

fn tenant(id: &str) -> LimitRequest<'_> {
    LimitRequest {
        tenant_id: id,
        api_key_id: None,
        model: None,
        route_id: None,
    }
}

fn tokens(id: &str, limit: u64) -> RateLimitEntry {
    RateLimitEntry {
        metric: LimitMetric::Tokens,
        limit,
        ..rule(id)
    }
}

fn headers(limit: u64, remaining: u64, reset_secs: u64) -> RateLimitHeaders {
    RateLimitHeaders {
        limit,
        remaining,
        reset_secs,
    }
}

fn retry_secs(r: &Result<Admission, LimitRefusal>) -> Option<u64> {
    match r {
        Err(LimitRefusal::Exceeded { retry_after, .. }) => Some(retry_after.as_secs()),
        _ => None,
    }
}

#[tokio::test]
async fn sixty_per_minute_admits_sixty_then_one_per_second() {
    let (clock, limiter, rules) = setup(vec![rule("rpm")]);
    let t = tenant("a");
    for i in 1..=60u64 {
        let a = limiter
            .admit(&rules, &t, 0)
            .await
            .expect("within the limit");
        match i {
            1 => assert_eq!(a.headers(), Some(headers(60, 59, 1))),
            30 => assert_eq!(a.headers(), Some(headers(60, 30, 30))),
            60 => assert_eq!(a.headers(), Some(headers(60, 0, 60))),
            _ => {}
        }
    }
    assert_eq!(
        limiter.admit(&rules, &t, 0).await.expect_err("61st"),
        LimitRefusal::Exceeded {
            rule_id: "rpm".into(),
            retry_after: Duration::from_secs(1),
            headers: headers(60, 0, 60),
        }
    );
    clock.advance(Duration::from_secs(1));
    limiter.admit(&rules, &t, 0).await.expect("one refilled");
    assert_eq!(retry_secs(&limiter.admit(&rules, &t, 0).await), Some(1));
}

#[tokio::test]
async fn headers_at_zero_usage_and_none_without_rules() {
    let (_, limiter, rules) = setup(vec![tokens("tpm", 1000)]);
    let a = limiter.admit(&rules, &tenant("a"), 0).await.expect("empty");
    assert_eq!(a.headers(), Some(headers(1000, 1000, 0)));
    assert_eq!(limiter.local_keys(), 0, "a zero-cost check creates no key");
    let (_, limiter, none) = setup(vec![]);
    assert!(none.is_empty());
    assert_eq!(
        limiter
            .admit(&none, &tenant("a"), 5)
            .await
            .expect("no rules")
            .headers(),
        None
    );
}

#[tokio::test]
async fn tenants_have_independent_counters() {
    let (_, limiter, rules) = setup(vec![RateLimitEntry {
        limit: 3,
        ..rule("rpm")
    }]);
    for _ in 0..3 {
        limiter.admit(&rules, &tenant("a"), 0).await.expect("a");
    }
    assert!(limiter.admit(&rules, &tenant("a"), 0).await.is_err());
    for _ in 0..3 {
        limiter
            .admit(&rules, &tenant("b"), 0)
            .await
            .expect("b unaffected");
    }
}

#[tokio::test]
async fn a_refusal_by_one_rule_charges_no_other() {
    // A: per API key, 2/min, any tenant. B: tenant t1 only, 1/min.
    let a = RateLimitEntry {
        scope: LimitScope::ApiKey,
        limit: 2,
        ..rule("A")
    };
    let b = RateLimitEntry {
        tenant_id: Some("t1".into()),
        limit: 1,
        ..rule("B")
    };
    let (_, limiter, rules) = setup(vec![a, b]);
    let with_key = |t| LimitRequest {
        api_key_id: Some("k"),
        ..tenant(t)
    };
    limiter
        .admit(&rules, &with_key("t1"), 0)
        .await
        .expect("both have room");
    for _ in 0..5 {
        let r = limiter.admit(&rules, &with_key("t1"), 0).await;
        assert!(matches!(r, Err(LimitRefusal::Exceeded { ref rule_id, .. }) if rule_id == "B"));
    }
    // Only A applies to t2: it holds exactly the one charge from the admitted request.
    limiter
        .admit(&rules, &with_key("t2"), 0)
        .await
        .expect("A has one left");
    assert!(limiter.admit(&rules, &with_key("t2"), 0).await.is_err());
}

#[tokio::test]
async fn a_refusing_fallback_or_closed_store_refunds_local_charges() {
    let local = RateLimitEntry {
        limit: 10,
        ..rule("local")
    };
    let fallback = RateLimitEntry {
        tenant_id: Some("t1".into()),
        mode: LimitMode::Cluster,
        fallback_limit: Some(1),
        ..rule("fb")
    };
    let closed = RateLimitEntry {
        tenant_id: Some("t3".into()),
        mode: LimitMode::Cluster,
        on_store_error: StoreFailureMode::FailClosed,
        ..rule("closed")
    };
    // No Redis configured: cluster rules follow on_store_error.
    let (_, limiter, rules) = setup(vec![local, fallback, closed]);
    limiter
        .admit(&rules, &tenant("t1"), 0)
        .await
        .expect("fallback has room");
    for _ in 0..4 {
        let r = limiter.admit(&rules, &tenant("t1"), 0).await;
        assert!(matches!(r, Err(LimitRefusal::Exceeded { ref rule_id, .. }) if rule_id == "fb"));
        assert_eq!(
            limiter
                .admit(&rules, &tenant("t3"), 0)
                .await
                .expect_err("closed"),
            LimitRefusal::StoreUnavailable {
                rule_id: "closed".into()
            }
        );
    }
    // t2 meets only the local rule, per tenant: untouched; t1's local counter holds 1.
    for _ in 0..10 {
        limiter.admit(&rules, &tenant("t2"), 0).await.expect("t2");
    }
    let rules_local = LimitRules::compile(
        &snapshot(
            vec![RateLimitEntry {
                limit: 10,
                ..rule("local")
            }],
            vec![],
        ),
        false,
    );
    for _ in 0..9 {
        limiter
            .admit(&rules_local, &tenant("t1"), 0)
            .await
            .expect("9 left for t1");
    }
    assert!(limiter.admit(&rules_local, &tenant("t1"), 0).await.is_err());
}

#[tokio::test]
async fn a_cost_above_the_burst_is_not_retryable() {
    let (_, limiter, rules) = setup(vec![RateLimitEntry {
        burst: Some(500),
        ..tokens("tpm", 1000)
    }]);
    assert_eq!(
        limiter
            .admit(&rules, &tenant("a"), 501)
            .await
            .expect_err("too big"),
        LimitRefusal::CostAboveBurst {
            rule_id: "tpm".into(),
            cost: 501,
            capacity: 500,
        }
    );
    assert_eq!(limiter.local_keys(), 0);
}

#[tokio::test]
async fn settle_reconciles_the_estimate_with_actual_usage() {
    let (_, limiter, rules) = setup(vec![tokens("tpm", 10_000), rule("rpm")]);
    let t = tenant("a");
    let a = limiter.admit(&rules, &t, 3000).await.expect("room");
    // rpm: 59/60 left (98%); tpm: 7000/10000 (70%) is the most restrictive.
    assert_eq!(a.headers(), Some(headers(10_000, 7_000, 18)));
    a.settle(1500).await;
    let b = limiter.admit(&rules, &t, 0).await.expect("room");
    assert_eq!(b.headers(), Some(headers(10_000, 8_500, 9)));
    // A requests-only admission settles to nothing.
    let (_, limiter, rpm) = setup(vec![rule("rpm")]);
    limiter
        .admit(&rpm, &t, 0)
        .await
        .expect("room")
        .settle(1_000_000)
        .await;
    let c = limiter.admit(&rpm, &t, 0).await.expect("room");
    assert_eq!(c.headers(), Some(headers(60, 58, 2)));
}

#[tokio::test]
async fn a_debit_beyond_the_balance_is_kept_as_debt() {
    let (clock, limiter, rules) = setup(vec![tokens("tpm", 10_000)]);
    let t = tenant("a");
    limiter
        .admit(&rules, &t, 1000)
        .await
        .expect("room")
        .settle(15_000)
        .await;
    // Level 15 000 of 10 000: even a zero estimate waits until 5 000 tokens drained (30 s).
    assert_eq!(retry_secs(&limiter.admit(&rules, &t, 0).await), Some(30));
    assert_eq!(retry_secs(&limiter.admit(&rules, &t, 100).await), Some(31));
    clock.advance(Duration::from_secs(30));
    limiter.admit(&rules, &t, 0).await.expect("debt repaid");
    assert!(limiter.admit(&rules, &t, 100).await.is_err());
    clock.advance(Duration::from_secs(1));
    limiter.admit(&rules, &t, 100).await.expect("room for 100");
    // Absurd usage is clamped to the per-request cap instead of overflowing.
    limiter
        .admit(&rules, &t, 0)
        .await
        .expect("room")
        .settle(u64::MAX)
        .await;
    assert!(limiter.admit(&rules, &t, 0).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_estimates_overshoot_at_most_concurrency_times_cost() {
    const LIMIT: u64 = 10_000;
    const C: u64 = 20;
    const M: u64 = 1_000;
    let (clock, limiter, rules) = setup(vec![tokens("tpm", LIMIT)]);
    let rules = Arc::new(rules);
    let admit_all = |estimate: u64| {
        let tasks: Vec<_> = (0..C)
            .map(|_| {
                let (limiter, rules) = (limiter.clone(), rules.clone());
                tokio::spawn(async move { limiter.admit(&rules, &tenant("a"), estimate).await })
            })
            .collect();
        async move {
            let mut admitted = Vec::new();
            for t in tasks {
                if let Ok(a) = t.await.expect("task") {
                    admitted.push(a);
                }
            }
            admitted
        }
    };
    // Estimates of M: exactly LIMIT / M pass, whatever the interleaving.
    let admitted = admit_all(M).await;
    assert_eq!(admitted.len() as u64, LIMIT / M);
    for a in admitted {
        a.settle(0).await;
    }
    // Low estimates (M / 2) all pass; the actual usage M each is then charged in full.
    let admitted = admit_all(M / 2).await;
    assert_eq!(admitted.len() as u64, C);
    for a in admitted {
        a.settle(M).await;
    }
    let charged = C * M;
    assert!(charged <= LIMIT + C * M);
    // Level 20 000 of 10 000: refused until the debt decays (10 001 tokens at 6 ms = 60.006 s).
    let r = limiter.admit(&rules, &tenant("a"), 1).await;
    assert_eq!(retry_secs(&r), Some(61));
    clock.advance(Duration::from_secs(60));
    assert!(limiter.admit(&rules, &tenant("a"), 1).await.is_err());
    clock.advance(Duration::from_secs(1));
    limiter
        .admit(&rules, &tenant("a"), 1)
        .await
        .expect("decayed");
}

#[tokio::test]
async fn sweep_reclaims_every_idle_key() {
    let (clock, limiter, rules) = setup(vec![RateLimitEntry {
        scope: LimitScope::ApiKey,
        ..rule("per-key")
    }]);
    // Without an authenticated key the rule does not apply: no state is created.
    limiter
        .admit(&rules, &tenant("anon"), 0)
        .await
        .expect("no rule");
    assert_eq!(limiter.local_keys(), 0);
    for i in 0..100_000 {
        let key = format!("k{i}");
        let req = LimitRequest {
            api_key_id: Some(&key),
            ..tenant("a")
        };
        limiter.admit(&rules, &req, 0).await.expect("fresh key");
    }
    assert_eq!(limiter.local_keys(), 100_000);
    limiter.sweep();
    assert_eq!(limiter.local_keys(), 100_000, "busy keys are kept");
    clock.advance(Duration::from_secs(1));
    limiter.sweep();
    assert_eq!(limiter.local_keys(), 0);
}

#[tokio::test]
async fn a_changed_rule_keeps_the_fraction_in_use() {
    let (_, limiter, rules) = setup(vec![RateLimitEntry {
        limit: 120,
        ..rule("rpm")
    }]);
    for _ in 0..60 {
        limiter.admit(&rules, &tenant("a"), 0).await.expect("room");
    }
    let halved = LimitRules::compile(&snapshot(vec![rule("rpm")], vec![]), false);
    let a = limiter.admit(&halved, &tenant("a"), 0).await.expect("room");
    assert_eq!(a.headers(), Some(headers(60, 29, 31)));
}
