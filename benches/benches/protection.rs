//! Criterion benchmarks of traffic protection on the request path: the rate limiter's local
//! admission and settlement, and circuit-breaker permits (acquire and record).
//!
//! `cargo bench -p medgate-benches --bench protection` (or `bash benches/criterion.sh`).

use std::collections::BTreeMap;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use medgate_config::{
    BreakerEntry, BreakerStrategy, BreakerTarget, BreakerTargetKind, LimitMetric, LimitMode,
    LimitScope, LimitWindow, ProtectionEntry, RateLimitEntry, Snapshot, StoreFailureMode,
    TenantEntry, TenantStatus,
};
use medgate_proxy::protection::breaker::{Breakers, CallOutcome, CallTarget};
use medgate_proxy::protection::clock::SystemClock;
use medgate_proxy::protection::limit::{LimitRequest, LimitRules, Limiter};

fn tenant(i: usize) -> TenantEntry {
    TenantEntry {
        id: format!("tenant-{i:05}"),
        code: format!("code-{i:05}"),
        status: TenantStatus::Active,
        quotas: None,
        allowed_models: vec![],
        log_request_payloads: false,
        cors_allowed_origins: vec![],
        isolation: None,
    }
}

fn rule(id: &str, scope: LimitScope, metric: LimitMetric, limit: u64) -> RateLimitEntry {
    RateLimitEntry {
        id: id.into(),
        tenant_id: None,
        scope,
        target: None,
        metric,
        window: LimitWindow::Second,
        limit,
        burst: None,
        mode: LimitMode::Local,
        on_store_error: StoreFailureMode::LocalFallback,
        fallback_limit: None,
    }
}

/// 1,000 tenants; per-tenant requests and tokens rules and a per-model requests rule, all
/// far from their limits (the admitted path is the one to measure).
fn limited_snapshot() -> Snapshot {
    let protection = ProtectionEntry {
        rate_limits: vec![
            rule(
                "rps",
                LimitScope::Tenant,
                LimitMetric::Requests,
                1_000_000_000,
            ),
            rule(
                "tps",
                LimitScope::Tenant,
                LimitMetric::Tokens,
                1_000_000_000_000,
            ),
            rule(
                "model-rps",
                LimitScope::Model,
                LimitMetric::Requests,
                1_000_000_000,
            ),
        ],
        ..ProtectionEntry::default()
    };
    Snapshot::new(1, (0..1_000).map(tenant).collect()).with_protection(protection)
}

fn limiter(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let rules = LimitRules::compile(&limited_snapshot(), false);
    let limiter = Limiter::new(SystemClock::shared(), None);
    let mut group = c.benchmark_group("rate_limits_3_local_rules");
    let mut i = 0usize;
    group.bench_function("admit + settle (tenant rps, tenant tps, model rps)", |b| {
        b.iter(|| {
            i = (i + 1) % 1_000;
            let tenant = format!("tenant-{i:05}");
            let request = LimitRequest {
                tenant_id: &tenant,
                api_key_id: Some("key"),
                model: Some("gpt-4o"),
                route_id: None,
            };
            runtime.block_on(async {
                let admission = limiter
                    .admit(&rules, &request, 600)
                    .await
                    .expect("admitted");
                admission.settle(450).await;
            });
        })
    });
    let empty = LimitRules::default();
    group.bench_function("admit with no rules", |b| {
        let request = LimitRequest {
            tenant_id: "tenant-00001",
            api_key_id: Some("key"),
            model: Some("gpt-4o"),
            route_id: None,
        };
        b.iter(|| {
            runtime.block_on(async {
                let admission = limiter.admit(&empty, &request, 600).await.expect("ok");
                admission.settle(450).await;
            })
        })
    });
    group.finish();
}

fn breaker_rule(id: &str, kind: BreakerTargetKind, name: &str) -> BreakerEntry {
    BreakerEntry {
        id: id.into(),
        tenant_id: None,
        target: BreakerTarget {
            kind,
            name: name.into(),
        },
        per_tenant: false,
        strategy: BreakerStrategy::ErrorRatio,
        threshold: 0.5,
        slow_call_ms: None,
        min_requests: 20,
        window_ms: 10_000,
        open_ms: 10_000,
        max_open_ms: None,
        half_open_probes: 1,
        half_open_max_wait_ms: 30_000,
        count_429: false,
    }
}

fn breakers(c: &mut Criterion) {
    let breakers = Arc::new(Breakers::new(SystemClock::shared()));
    let rules = vec![
        breaker_rule("model", BreakerTargetKind::Model, "gpt-4o"),
        breaker_rule("upstream", BreakerTargetKind::Upstream, "http://u:1/v1"),
    ];
    breakers.apply(&rules, &BTreeMap::new());
    let call = CallTarget {
        tenant_id: "tenant-00001",
        model: Some("gpt-4o"),
        upstream: Some("http://u:1/v1"),
        route: None,
    };
    let mut group = c.benchmark_group("circuit_breakers");
    group.bench_function("acquire + record, 2 matching breakers (closed)", |b| {
        b.iter(|| {
            let permits = breakers.acquire(&call).expect("closed");
            permits.record(CallOutcome {
                status: Some(200),
                ttfb: None,
            });
        })
    });
    let other = CallTarget {
        model: Some("other-model"),
        upstream: Some("http://v:1/v1"),
        ..call
    };
    group.bench_function("acquire + record, no matching breaker", |b| {
        b.iter(|| {
            let permits = breakers.acquire(&other).expect("none");
            permits.record(CallOutcome {
                status: Some(200),
                ttfb: None,
            });
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = limiter, breakers
}
criterion_main!(benches);
