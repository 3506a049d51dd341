//! Rule updates (14) and manual recovery (15).

use super::*;

fn apply(h: &Harness, rules: &[BreakerEntry]) {
    h.breakers.apply(rules, &BTreeMap::new());
}

fn recoveries(entries: &[(&str, u64)]) -> BTreeMap<String, u64> {
    entries.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
}

/// §5.1-14a: a changed threshold restarts the counters and applies from the next call.
#[test]
fn s14_changed_threshold_applies_from_the_next_call() {
    let h = Harness::new(&[rule("cb")]);
    h.calls(M, fail(), 3);
    let mut r = rule("cb");
    r.threshold = 2.0;
    apply(&h, &[r]);
    assert_eq!(h.report("cb", None).window_calls, 0, "counters restarted");
    h.call(M, fail());
    assert_eq!(h.state("cb"), BreakerState::Closed);
    h.call(M, fail());
    assert_eq!(h.state("cb"), BreakerState::Open);
}

/// An unchanged rule keeps its counters; a changed rule keeps an open state until its time.
#[test]
fn s14_unchanged_rule_keeps_counters_changed_rule_keeps_open_state() {
    let h = Harness::new(&[rule("cb")]);
    h.calls(M, fail(), 4);
    apply(&h, &[rule("cb")]);
    h.call(M, fail());
    assert_eq!(h.state("cb"), BreakerState::Open, "4 + 1 failures");

    let mut r = rule("cb");
    r.threshold = 3.0;
    apply(&h, &[r]);
    assert!(!h.call(M, ok()), "still open");
    h.advance(ms(10_000));
    assert!(h.call(M, ok()), "probe at its time");
    assert_eq!(h.state("cb"), BreakerState::Closed);
    h.calls(M, fail(), 3);
    assert_eq!(h.state("cb"), BreakerState::Open, "the new threshold");
}

/// §5.1-14b: a deleted rule stops refusing at once; its outstanding permits are harmless.
#[test]
fn s14_deleted_rule_stops_at_once() {
    let h = Harness::new(&[rule("cb")]);
    let outstanding = h.acquire(M);
    h.calls(M, fail(), 5);
    assert!(!h.call(M, ok()));
    apply(&h, &[]);
    assert!(h.acquire(M).is_some_and(|p| p.is_empty()));
    assert!(h.breakers.reports().is_empty());
    assert_eq!(h.breakers.state_of("model:m"), BreakerState::Closed);
    if let Some(p) = outstanding {
        p.record(fail());
    }
    // Re-adding the rule starts fresh.
    apply(&h, &[rule("cb")]);
    assert_eq!(h.state("cb"), BreakerState::Closed);
    assert_eq!(h.report("cb", None).times_opened, 0);
}

/// A rule whose target changed is a breaker on something else: it starts closed.
#[test]
fn s14_changed_target_starts_fresh() {
    let h = Harness::new(&[rule("cb")]);
    h.calls(M, fail(), 5);
    apply(&h, &[on(rule("cb"), BreakerTargetKind::Model, "m2")]);
    assert_eq!(h.state("cb"), BreakerState::Closed);
    assert!(h.call(M, ok()));
}

/// §5.1-15a: `recover` by rule id or by service closes the breaker; the next call is
/// admitted as an ordinary call (not a probe).
#[test]
fn s15_recover_closes_and_admits() {
    let up = on(rule("cb"), BreakerTargetKind::Upstream, "u");
    let rt = on(rule("cb"), BreakerTargetKind::Route, "r");
    let via_up = CallTarget {
        upstream: Some("u"),
        ..M
    };
    let via_rt = CallTarget {
        route: Some("r"),
        ..M
    };
    let cases = [
        (rule("cb"), "cb", M),
        (rule("cb"), "model:m", M),
        (up, "upstream:u", via_up),
        (rt, "route:r", via_rt),
    ];
    for (r, target, call) in cases {
        let h = Harness::new(&[r]);
        h.calls(call, fail(), 5);
        assert!(!h.call(call, ok()), "{target}");
        assert_eq!(h.breakers.recover(target), 1, "{target}");
        assert_eq!(h.state("cb"), BreakerState::Closed, "{target}");
        let next = h.acquire(call);
        assert!(
            next.as_ref()
                .is_some_and(|p| p.len() == 1 && !p.has_probe()),
            "{target}"
        );
        if let Some(p) = next {
            p.record(ok());
        }
        assert_eq!(h.breakers.recover("model:none"), 0);
        assert_eq!(h.breakers.recover("nothing"), 0);
    }
}

/// Recovery resets the backoff step.
#[test]
fn s15_recover_resets_backoff() {
    let mut r = rule("cb");
    r.max_open_ms = Some(80_000);
    let h = Harness::new(&[r]);
    h.calls(M, fail(), 5);
    h.advance(ms(10_000));
    h.call(M, fail());
    assert_eq!(
        h.breakers.acquire(&M).err().map(|e| e.retry_after),
        Some(ms(20_000))
    );
    h.breakers.recover("cb");
    h.calls(M, fail(), 5);
    assert_eq!(
        h.breakers.acquire(&M).err().map(|e| e.retry_after),
        Some(ms(10_000))
    );
}

/// §5.1-15b: a grown recovery counter in a snapshot closes the breaker; the first snapshot
/// and an unchanged counter do nothing.
#[test]
fn s15_grown_recovery_counter_closes() {
    let h = Harness::new(&[]);
    h.breakers
        .apply(&[rule("cb")], &recoveries(&[("model:m", 1)]));
    // The Harness applied an empty first snapshot; open the breaker, then re-send the
    // same counter: nothing happens.
    h.calls(M, fail(), 5);
    h.breakers
        .apply(&[rule("cb")], &recoveries(&[("model:m", 1)]));
    assert_eq!(h.state("cb"), BreakerState::Open);
    h.breakers
        .apply(&[rule("cb")], &recoveries(&[("model:m", 2)]));
    assert_eq!(h.state("cb"), BreakerState::Closed);
    assert!(h.call(M, ok()));

    // A target seen for the first time counts as grown from zero.
    h.calls(M, fail(), 5);
    h.breakers
        .apply(&[rule("cb")], &recoveries(&[("model:m", 2), ("cb", 1)]));
    assert_eq!(h.state("cb"), BreakerState::Closed);
}

/// The very first snapshot only records the counters.
#[test]
fn s15_first_snapshot_only_records() {
    let clock = ManualClock::new();
    let breakers = Breakers::new(clock);
    breakers.apply(&[rule("cb")], &recoveries(&[("cb", 7)]));
    let _ = breakers.acquire(&M).map(|p| p.record(fail()));
    breakers.apply(&[rule("cb")], &recoveries(&[("cb", 7)]));
    assert_eq!(breakers.reports().len(), 1);
    assert_eq!(
        breakers.reports()[0].window_failures,
        1,
        "no recovery reset it"
    );
}
