//! Open and half-open scenarios: the open-time edge (3), probes under concurrency (4), probe
//! success (5) and failure with backoff (6), dropped and hung probes (7).

use std::sync::Barrier;

use super::*;

/// Opens the breaker `cb` of `h` with five failures; the clock is then at the opening.
fn trip(h: &Harness) {
    assert_eq!(h.calls(M, fail(), 5), 5);
    assert_eq!(h.state("cb"), BreakerState::Open);
}

fn retry_after(h: &Harness) -> Option<(BreakerState, Duration)> {
    h.breakers
        .acquire(&M)
        .err()
        .map(|r| (r.state, r.retry_after))
}

/// §5.1-3: refused 1 ms before the open time ends, exactly one probe at the end.
#[test]
fn s03_open_duration_edge() {
    let h = Harness::new(&[rule("cb")]);
    trip(&h);
    h.advance(ms(9_999));
    assert_eq!(retry_after(&h), Some((BreakerState::Open, ms(1))));
    h.advance(ms(1));
    let probe = h.acquire(M);
    assert!(probe.as_ref().is_some_and(|p| p.has_probe()));
    assert_eq!(h.state("cb"), BreakerState::HalfOpen);
    assert_eq!(
        retry_after(&h).map(|(s, _)| s),
        Some(BreakerState::HalfOpen),
        "only one probe"
    );
    if let Some(p) = probe {
        p.record(ok());
    }
}

/// 100 threads acquire at once from a breaker whose open time is over; how many got a
/// permit. The permits are returned so the caller can report them.
fn race(h: &Harness, threads: usize) -> Vec<Permits> {
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    h.breakers.acquire(&M).ok()
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|t| t.join().ok().flatten())
            .collect()
    })
}

/// §5.1-4: exactly K of 100 concurrent acquirers get a probe permit (K = 1 and K = 3), and
/// K successes close the breaker.
#[test]
fn s04_exactly_k_probes_under_concurrency() {
    for k in [1, 3] {
        let mut r = rule("cb");
        r.half_open_probes = k;
        let h = Harness::new(&[r]);
        trip(&h);
        h.advance(ms(10_000));
        let probes = race(&h, 100);
        assert_eq!(probes.len(), k as usize, "K = {k}");
        assert!(probes.iter().all(Permits::has_probe));
        let mut probes = probes.into_iter();
        if let Some(first) = probes.next() {
            first.record(ok());
        }
        if k > 1 {
            assert_eq!(h.state("cb"), BreakerState::HalfOpen, "one of {k} reported");
        }
        probes.for_each(|p| p.record(ok()));
        assert_eq!(h.state("cb"), BreakerState::Closed);
    }
}

/// §5.1-5: a successful probe closes the breaker with fresh counters: N new failures are
/// needed to reopen it.
#[test]
fn s05_probe_success_closes_with_fresh_counters() {
    let h = Harness::new(&[rule("cb")]);
    trip(&h);
    h.advance(ms(10_000));
    assert!(h.call(M, ok()));
    assert_eq!(h.state("cb"), BreakerState::Closed);
    let report = h.report("cb", None);
    assert_eq!((report.window_calls, report.window_failures), (0, 0));
    assert_eq!(h.calls(M, fail(), 4), 4);
    assert_eq!(h.state("cb"), BreakerState::Closed);
    assert!(h.call(M, fail()));
    assert_eq!(h.state("cb"), BreakerState::Open);
    assert_eq!(h.report("cb", None).times_opened, 2);
    // closed -> open, open -> half-open, half-open -> closed, closed -> open
    assert_eq!(h.transitions(), 4);
}

/// §5.1-6: a failed probe reopens; with backoff the open time doubles per failed round up
/// to the cap, and is back to the base after the breaker closed. Without backoff it stays.
#[test]
fn s06_probe_failure_reopens_with_backoff() {
    let mut r = rule("cb");
    r.max_open_ms = Some(40_000);
    let h = Harness::new(&[r]);
    trip(&h);
    for expected in [20_000, 40_000, 40_000] {
        let waited = retry_after(&h).map(|(_, d)| d);
        h.advance(waited.unwrap_or_default());
        assert!(h.call(M, fail()), "a probe after the open time");
        assert_eq!(retry_after(&h), Some((BreakerState::Open, ms(expected))));
    }
    h.advance(ms(40_000));
    assert!(h.call(M, ok()));
    trip(&h);
    assert_eq!(retry_after(&h), Some((BreakerState::Open, ms(10_000))));

    let h = Harness::new(&[rule("cb")]);
    trip(&h);
    for _ in 0..3 {
        h.advance(ms(10_000));
        assert!(h.call(M, fail()));
        assert_eq!(retry_after(&h), Some((BreakerState::Open, ms(10_000))));
    }
    assert_eq!(
        h.report("cb", None).times_opened,
        1,
        "reopening is not a new opening"
    );
}

/// §5.1-7a: a probe permit dropped without an outcome is a failed probe; a new probe is
/// allowed after the (next) open time.
#[test]
fn s07_dropped_probe_counts_as_failure() {
    let mut r = rule("cb");
    r.max_open_ms = Some(40_000);
    let h = Harness::new(&[r]);
    trip(&h);
    h.advance(ms(10_000));
    let probe = h.acquire(M);
    assert!(probe.is_some());
    drop(probe);
    assert_eq!(retry_after(&h), Some((BreakerState::Open, ms(20_000))));
    h.advance(ms(20_000));
    assert!(h.call(M, ok()));
    assert_eq!(h.state("cb"), BreakerState::Closed);
}

/// §5.1-7b: a hung probe does not leave the breaker half-open: after
/// `half_open_max_wait_ms` the next acquire reopens it, the late outcome is ignored, and a
/// new probe goes through after the open time.
#[test]
fn s07_hung_probe_reopens_after_max_wait() {
    let h = Harness::new(&[rule("cb")]);
    trip(&h);
    h.advance(ms(10_000));
    let hung = h.acquire(M);
    assert!(hung.is_some());
    h.advance(ms(29_999));
    assert_eq!(
        retry_after(&h),
        Some((BreakerState::HalfOpen, ms(1))),
        "still waiting for the probe"
    );
    h.advance(ms(1));
    assert_eq!(retry_after(&h), Some((BreakerState::Open, ms(10_000))));
    assert_eq!(h.state("cb"), BreakerState::Open);
    if let Some(p) = hung {
        p.record(ok()); // too late: the round is over
    }
    assert_eq!(h.state("cb"), BreakerState::Open);
    h.advance(ms(10_000));
    assert!(h.call(M, ok()));
    assert_eq!(h.state("cb"), BreakerState::Closed);
}

/// A cancelled probe permit returns to the round (another call may probe), and a refusal by
/// one breaker cancels the permits others gave: all or nothing.
#[test]
fn cancelled_probe_returns_its_permit_all_or_nothing() {
    let upstream = on(rule("up"), BreakerTargetKind::Upstream, "u");
    let h = Harness::new(&[rule("cb"), upstream]);
    trip(&h);
    h.advance(ms(10_000));
    let probe = h.acquire(M);
    assert!(probe.as_ref().is_some_and(Permits::has_probe));
    if let Some(p) = probe {
        p.cancel();
    }
    assert_eq!(h.state("cb"), BreakerState::HalfOpen);

    // Open the upstream breaker; a call through both is refused by it, and the model
    // breaker's probe permit it took is given back.
    let both = CallTarget {
        upstream: Some("u"),
        ..M
    };
    let only_up = CallTarget {
        model: None,
        ..both
    };
    h.calls(only_up, fail(), 5);
    let refusal = h.breakers.acquire(&both).err();
    assert_eq!(refusal.map(|r| r.breaker_id), Some("up".to_owned()));
    assert!(h.call(M, ok()), "the probe permit is still free");
    assert_eq!(h.state("cb"), BreakerState::Closed);
}
