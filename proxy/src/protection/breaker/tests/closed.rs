//! Closed-state scenarios: tripping (1, 2), strategies and their boundaries (8, 9, 10) and
//! failure classification (11).

use super::*;
use crate::protection::breaker::is_failure;

fn rfc3339_ms(at: &str) -> i64 {
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(t) => t.timestamp_millis(),
        Err(e) => panic!("bad time {at}: {e}"),
    }
}

/// §5.1-1: five failures open the breaker; the sixth call is refused locally and the report
/// shows it open until about ten seconds after it opened.
#[test]
fn s01_opens_after_n_failures() {
    let h = Harness::new(&[rule("cb")]);
    h.advance(ms(1_234));
    assert_eq!(h.calls(M, fail(), 4), 4);
    assert_eq!(h.state("cb"), BreakerState::Closed);
    assert!(h.call(M, fail()));
    assert_eq!(h.state("cb"), BreakerState::Open);

    let refusal = match h.breakers.acquire(&M) {
        Err(refusal) => refusal,
        Ok(_) => panic!("the sixth call must be refused"),
    };
    assert_eq!(refusal.breaker_id, "cb");
    assert_eq!(refusal.state, BreakerState::Open);
    assert_eq!(refusal.retry_after, ms(10_000));

    let report = h.report("cb", None);
    assert_eq!(report.times_opened, 1);
    assert_eq!((report.window_calls, report.window_failures), (5, 5));
    let next = report.next_retry_at.as_deref().map(rfc3339_ms);
    let since = rfc3339_ms(&report.since);
    let waited = next.map(|n| n - since);
    assert!(
        waited.is_some_and(|w| (9_950..=10_050).contains(&w)),
        "next_retry_at - since = {waited:?} ms"
    );
    assert_eq!(h.breakers.state_of("model:m"), BreakerState::Open);
    assert_eq!(h.transitions(), 1);
}

/// §5.1-2: a success in between resets the consecutive count.
#[test]
fn s02_success_resets_the_consecutive_count() {
    let h = Harness::new(&[rule("cb")]);
    let admitted = h.calls(M, fail(), 4) + usize::from(h.call(M, ok())) + h.calls(M, fail(), 4);
    assert_eq!(admitted, 9);
    assert_eq!(h.state("cb"), BreakerState::Closed);
    assert_eq!(h.transitions(), 0);
}

/// §5.1-8: error ratio 0.5 with at least 5 calls in a 10 s window, compared with `>=`.
#[test]
fn s08_error_ratio_boundaries() {
    let mut r = rule("cb");
    r.strategy = BreakerStrategy::ErrorRatio;
    r.threshold = 0.5;

    // Below the minimum: 4 calls, all failing.
    let h = Harness::new(&[r.clone()]);
    h.calls(M, fail(), 4);
    assert_eq!(h.state("cb"), BreakerState::Closed);
    // ... and the fifth reaches the minimum.
    h.call(M, fail());
    assert_eq!(h.state("cb"), BreakerState::Open);

    // Exactly half of 10: trips (>=), and not one call earlier.
    let h = Harness::new(&[r.clone()]);
    h.calls(M, ok(), 5);
    h.calls(M, fail(), 4);
    assert_eq!(h.state("cb"), BreakerState::Closed, "4 of 9 is below 0.5");
    h.call(M, fail());
    assert_eq!(h.state("cb"), BreakerState::Open, "5 of 10 trips");

    // 6 of 10 trips.
    let h = Harness::new(&[r.clone()]);
    h.calls(M, ok(), 4);
    h.calls(M, fail(), 6);
    assert_eq!(h.state("cb"), BreakerState::Open);

    // 4 of 10 does not.
    let h = Harness::new(&[r]);
    h.calls(M, ok(), 6);
    h.calls(M, fail(), 4);
    assert_eq!(h.state("cb"), BreakerState::Closed);
}

/// §5.1-9: error count in a 1 s tumbling window. With `>=` a threshold of 2 trips on the
/// second error, so the "2 + 2 across the boundary" case uses a threshold of 3: each window
/// holds only 2 errors (a sliding window would hold 4).
#[test]
fn s09_error_count_tumbling_window() {
    let mut r = rule("cb");
    r.strategy = BreakerStrategy::ErrorCount;
    r.threshold = 3.0;
    r.min_requests = 1;
    r.window_ms = 1_000;
    let h = Harness::new(&[r.clone()]);
    h.advance(ms(900));
    h.calls(M, fail(), 2);
    h.advance(ms(200)); // t = 1.1 s, the next window
    h.calls(M, fail(), 2);
    assert_eq!(h.state("cb"), BreakerState::Closed);
    assert_eq!(h.report("cb", None).window_failures, 2);
    h.call(M, fail());
    assert_eq!(h.state("cb"), BreakerState::Open, "3 errors in one window");

    // Threshold 2: reached by two errors in the same window.
    r.threshold = 2.0;
    let h = Harness::new(&[r]);
    h.advance(ms(900));
    h.call(M, fail());
    h.advance(ms(200));
    h.call(M, fail());
    assert_eq!(h.state("cb"), BreakerState::Closed);
    h.call(M, fail());
    assert_eq!(h.state("cb"), BreakerState::Open);
}

/// §5.1-10: slow ratio judged on time to first byte (slow above 2 s, ratio 0.6, min 5).
#[test]
fn s10_slow_ratio_uses_time_to_first_byte() {
    let mut r = rule("cb");
    r.strategy = BreakerStrategy::SlowRatio;
    r.threshold = 0.6;
    r.slow_call_ms = Some(2_000);

    let h = Harness::new(&[r.clone()]);
    h.calls(M, CallOutcome::status(200, ms(3_000)), 5);
    assert_eq!(h.state("cb"), BreakerState::Open);

    // Fast first token; the stream may last 30 s, its total time is never reported.
    let h = Harness::new(&[r.clone()]);
    h.calls(M, CallOutcome::status(200, ms(300)), 5);
    h.advance(ms(30_000));
    assert_eq!(h.state("cb"), BreakerState::Closed);

    // 3 slow of 5 is exactly 0.6: trips; exactly 2 s is not slow.
    let h = Harness::new(&[r]);
    h.calls(M, CallOutcome::status(200, ms(2_000)), 2);
    h.calls(M, CallOutcome::status(200, ms(2_001)), 2);
    assert_eq!(h.state("cb"), BreakerState::Closed);
    h.call(M, CallOutcome::status(200, ms(2_001)));
    assert_eq!(h.state("cb"), BreakerState::Open);
}

/// §5.1-11: which outcomes count.
#[test]
fn s11_failure_classification() {
    let h = Harness::new(&[rule("cb")]);
    for code in [400, 401, 404, 429, 200, 302] {
        h.calls(M, status(code), 10);
    }
    // Cancelled permits (refused locally after acquiring) count for nothing.
    for _ in 0..10 {
        if let Some(p) = h.acquire(M) {
            p.cancel();
        }
    }
    let report = h.report("cb", None);
    assert_eq!(report.state, BreakerState::Closed);
    assert_eq!((report.window_calls, report.window_failures), (60, 0));

    // No response and 503 count.
    h.calls(M, CallOutcome::no_response(), 3);
    h.calls(M, status(503), 2);
    assert_eq!(h.state("cb"), BreakerState::Open);

    // 429 counts only with count_429.
    let mut r = rule("cb");
    r.count_429 = true;
    let h = Harness::new(&[r.clone()]);
    h.calls(M, status(429), 5);
    assert_eq!(h.state("cb"), BreakerState::Open);

    let e = r;
    let no = |status: Option<u16>| CallOutcome { status, ttfb: None };
    assert!(is_failure(&e, &no(None)));
    assert!(is_failure(&e, &no(Some(500))));
    assert!(is_failure(&e, &no(Some(599))));
    assert!(is_failure(&e, &no(Some(429))));
    assert!(!is_failure(&e, &no(Some(499))));
    assert!(!is_failure(&rule("x"), &no(Some(429))));
}

/// A closed-state permit dropped without an outcome is not counted.
#[test]
fn dropped_closed_permits_are_not_counted() {
    let h = Harness::new(&[rule("cb")]);
    for _ in 0..10 {
        drop(h.acquire(M));
    }
    let report = h.report("cb", None);
    assert_eq!(report.state, BreakerState::Closed);
    assert_eq!(report.window_calls, 0);
}

/// No rule, or no matching rule: an empty permit set, nothing counted.
#[test]
fn calls_no_breaker_matches_get_empty_permits() {
    let h = Harness::new(&[]);
    assert!(h.acquire(M).is_some_and(|p| p.is_empty()));
    let h = Harness::new(&[rule("cb")]);
    let other = CallTarget {
        model: Some("other"),
        ..M
    };
    assert!(h.acquire(other).is_some_and(|p| p.is_empty()));
    assert!(h.acquire(M).is_some_and(|p| p.len() == 1));
    assert_eq!(h.breakers.state_of("model:other"), BreakerState::Closed);
    assert_eq!(h.breakers.state_of("nonsense"), BreakerState::Closed);
}
