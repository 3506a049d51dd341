//! Scope isolation (12) and exactly-once transitions under concurrency (13).

use std::sync::Barrier;

use super::*;

fn model(name: &'static str) -> CallTarget<'static> {
    CallTarget {
        model: Some(name),
        ..M
    }
}

fn tenant(id: &'static str) -> CallTarget<'static> {
    CallTarget { tenant_id: id, ..M }
}

/// §5.1-12a: the breaker of model A opening does not affect model B.
#[test]
fn s12_model_breakers_are_independent() {
    let a = on(rule("a"), BreakerTargetKind::Model, "A");
    let b = on(rule("b"), BreakerTargetKind::Model, "B");
    let h = Harness::new(&[a, b]);
    h.calls(model("A"), fail(), 5);
    assert_eq!(h.state("a"), BreakerState::Open);
    assert!(!h.call(model("A"), ok()));
    assert!(h.call(model("B"), ok()));
    assert_eq!(h.state("b"), BreakerState::Closed);
    assert_eq!(h.breakers.state_of("model:A"), BreakerState::Open);
    assert_eq!(h.breakers.state_of("model:B"), BreakerState::Closed);
}

/// §5.1-12b: with `per_tenant`, tenant X's failures open only X's state; a shared state
/// (the contrast) is opened for everyone.
#[test]
fn s12_per_tenant_states_are_independent() {
    let mut r = rule("cb");
    r.per_tenant = true;
    let h = Harness::new(&[r]);
    h.calls(tenant("x"), fail(), 5);
    assert_eq!(h.report("cb", Some("x")).state, BreakerState::Open);
    assert!(!h.call(tenant("x"), ok()));
    assert!(h.call(tenant("y"), ok()));
    assert_eq!(h.report("cb", Some("y")).state, BreakerState::Closed);
    assert_eq!(h.breakers.reports().len(), 2);
    assert_eq!(
        h.breakers.state_of("model:m"),
        BreakerState::Open,
        "worst state"
    );

    let h = Harness::new(&[rule("cb")]);
    h.calls(tenant("x"), fail(), 5);
    assert!(!h.call(tenant("y"), ok()));
}

/// A rule with a tenant filter applies only to that tenant's calls.
#[test]
fn tenant_filtered_rule_ignores_other_tenants() {
    let mut r = rule("cb");
    r.tenant_id = Some("x".to_owned());
    let h = Harness::new(&[r]);
    assert!(h.acquire(tenant("y")).is_some_and(|p| p.is_empty()));
    h.calls(tenant("y"), fail(), 10);
    assert_eq!(h.state("cb"), BreakerState::Closed);
    h.calls(tenant("x"), fail(), 5);
    assert_eq!(h.state("cb"), BreakerState::Open);
    assert!(h.call(tenant("y"), ok()));
}

/// Rules on upstreams and routes match the call's upstream and route.
#[test]
fn upstream_and_route_targets_match() {
    let up = on(rule("up"), BreakerTargetKind::Upstream, "http://u");
    let rt = on(rule("rt"), BreakerTargetKind::Route, "r1");
    let h = Harness::new(&[up, rt]);
    let call = CallTarget {
        tenant_id: "t1",
        model: Some("m"),
        upstream: Some("http://u"),
        route: Some("r1"),
    };
    assert!(h.acquire(call).is_some_and(|p| p.len() == 2));
    h.calls(call, fail(), 5);
    assert_eq!(h.state("up"), BreakerState::Open);
    assert_eq!(h.state("rt"), BreakerState::Open);
    assert_eq!(h.breakers.state_of("upstream:http://u"), BreakerState::Open);
    assert_eq!(h.breakers.state_of("route:r1"), BreakerState::Open);
}

/// §5.1-13: 1000 concurrent failing calls (all admitted while closed, reported at once from
/// many threads) produce exactly one closed -> open transition.
#[test]
fn s13_exactly_one_transition_under_concurrent_failures() {
    let h = Harness::new(&[rule("cb")]);
    let mut rx = h.breakers.transitions();
    let permits: Vec<Permits> = (0..1000).filter_map(|_| h.acquire(M)).collect();
    assert_eq!(permits.len(), 1000);
    let threads = 8;
    let barrier = Barrier::new(threads);
    let mut chunks: Vec<Vec<Permits>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, p) in permits.into_iter().enumerate() {
        chunks[i % threads].push(p);
    }
    std::thread::scope(|s| {
        for chunk in chunks {
            let barrier = &barrier;
            s.spawn(move || {
                barrier.wait();
                for p in chunk {
                    p.record(fail());
                }
            });
        }
    });
    let report = h.report("cb", None);
    assert_eq!(report.state, BreakerState::Open);
    assert_eq!(report.times_opened, 1);
    assert!(rx.has_changed().unwrap_or(false));
    assert_eq!(*rx.borrow_and_update(), 1);
}

/// The same with calls acquiring and failing concurrently (most are refused once open).
#[test]
fn s13_exactly_one_transition_with_racing_acquirers() {
    let h = Harness::new(&[rule("cb")]);
    let threads = 8;
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..125 {
                    h.call(M, fail());
                }
            });
        }
    });
    assert_eq!(h.report("cb", None).times_opened, 1);
    assert_eq!(h.transitions(), 1);
}
