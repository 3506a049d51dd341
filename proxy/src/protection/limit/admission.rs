//! An admitted request: its header figures, and the token charges to reconcile once the
//! actual usage is known.

use std::sync::Arc;
use std::time::Duration;

use super::limiter::{Shared, MAX_TOKENS_PER_REQUEST};
use super::rules::Matched;
use super::RateLimitHeaders;

/// Background retries of a failed Redis settlement before it is charged locally.
const SETTLE_RETRIES: u32 = 3;
const SETTLE_FIRST_BACKOFF: Duration = Duration::from_millis(200);

/// Where a rule's charge went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// The local store, under the rule's own bucket.
    Local,
    /// Redis.
    Redis,
    /// The local store, under the rule's fallback bucket (Redis was unreachable).
    Fallback,
    /// Nowhere: a `fail_open` rule while Redis was unreachable.
    Uncharged,
}

/// One rule charged for the request.
#[derive(Debug, Clone)]
pub(crate) struct Charged {
    pub(crate) matched: Matched,
    pub(crate) cost: u64,
    pub(crate) place: Place,
    headers: Option<RateLimitHeaders>,
    room: f64,
}

impl Charged {
    /// A charge that left its counter at `tat` (`now` on the same clock).
    pub(crate) fn new(matched: &Matched, cost: u64, place: Place, tat: u64, now: u64) -> Self {
        let gcra = match place {
            Place::Fallback => Some(matched.rule.fallback),
            Place::Local | Place::Redis => Some(matched.rule.gcra),
            Place::Uncharged => None,
        };
        Self {
            matched: matched.clone(),
            cost,
            place,
            headers: gcra.map(|g| g.headers(tat, now)),
            room: gcra.map_or(f64::INFINITY, |g| g.room_fraction(tat, now)),
        }
    }
}

/// A request the limiter let through. Send + 'static: hold it across the upstream call and
/// [`settle`](Admission::settle) it with the actual token usage. Dropped without settling,
/// the token estimate stays charged (the conservative choice).
pub struct Admission {
    shared: Option<Arc<Shared>>,
    /// Token-metric charges only: requests rules have nothing to reconcile.
    tokens: Vec<Charged>,
    estimate: u64,
    headers: Option<RateLimitHeaders>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("estimate", &self.estimate)
            .field("token_rules", &self.tokens.len())
            .field("headers", &self.headers)
            .finish()
    }
}

impl Admission {
    /// No rule applied.
    pub(crate) fn empty() -> Self {
        Self {
            shared: None,
            tokens: Vec::new(),
            estimate: 0,
            headers: None,
        }
    }

    pub(crate) fn new(shared: Arc<Shared>, charged: Vec<Charged>, estimate: u64) -> Self {
        // Most restrictive: least room as a fraction of capacity (rules of different units
        // compare fairly); on a tie, the smaller capacity.
        let headers = charged
            .iter()
            .filter_map(|c| c.headers.map(|h| (c.room, h)))
            .min_by(|(ra, ha), (rb, hb)| ra.total_cmp(rb).then(ha.limit.cmp(&hb.limit)))
            .map(|(_, h)| h);
        let tokens = charged
            .into_iter()
            .filter(|c| c.matched.rule.is_tokens())
            .collect();
        Self {
            shared: Some(shared),
            tokens,
            estimate,
            headers,
        }
    }

    /// Figures for `X-RateLimit-*` of the most restrictive rule; None when no rule applied
    /// (or only `fail_open` rules while Redis was down).
    pub fn headers(&self) -> Option<RateLimitHeaders> {
        self.headers
    }

    /// Reconciles token rules with the actual usage (clamped to
    /// [`MAX_TOKENS_PER_REQUEST`]): each counter moves by actual - estimate, wherever it was
    /// charged. The adjustment always applies: a debit beyond what is left becomes debt that
    /// later requests wait for, a refund never takes a counter below empty.
    ///
    /// A Redis settlement that fails is retried in the background (3 times, backoff from
    /// 200 ms) and then charged to the rule's local fallback bucket with a warning; a
    /// `fail_open` rule that was not charged at admission is charged the full usage. Only
    /// the first attempt is awaited (bounded by the store timeout). A timed-out attempt that
    /// Redis did apply may thus be applied twice: the error is on the side of charging.
    pub async fn settle(self, actual_tokens: u64) {
        let Some(shared) = self.shared else { return };
        let actual = i128::from(actual_tokens.min(MAX_TOKENS_PER_REQUEST));
        let delta = actual - i128::from(self.estimate);
        let now = shared.now();
        let mut remote: Vec<(Matched, i64)> = Vec::new();
        for charge in self.tokens {
            let m = &charge.matched;
            match charge.place {
                Place::Local if delta != 0 => {
                    shared.local.adjust(&m.local_key(), m.rule.gcra, delta, now);
                }
                Place::Fallback if delta != 0 => {
                    shared
                        .local
                        .adjust(&m.fallback_key(), m.rule.fallback, delta, now);
                }
                Place::Redis if delta != 0 => remote.push((charge.matched, clamp(delta))),
                Place::Uncharged if actual != 0 => remote.push((charge.matched, clamp(actual))),
                _ => {}
            }
        }
        if remote.is_empty() {
            return;
        }
        let Some(redis) = shared.redis.clone() else {
            charge_fallback(&shared, &remote);
            return;
        };
        let items: Vec<(String, u64, i64)> = remote
            .iter()
            .map(|(m, d)| {
                (
                    redis.key(&m.tag, &m.rule.entry.id, &m.counter),
                    m.rule.gcra.interval_ns(),
                    *d,
                )
            })
            .collect();
        if redis.adjust(&items).await.is_ok() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            charge_fallback(&shared, &remote);
            return;
        };
        runtime.spawn(async move {
            let mut backoff = SETTLE_FIRST_BACKOFF;
            for _ in 0..SETTLE_RETRIES {
                tokio::time::sleep(backoff).await;
                if redis.adjust(&items).await.is_ok() {
                    return;
                }
                backoff = backoff.saturating_mul(4);
            }
            charge_fallback(&shared, &remote);
        });
    }
}

/// Deltas are within ±MAX_TOKENS_PER_REQUEST, so this never clamps in practice.
fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

/// Last resort for a settlement Redis would not take: the local fallback bucket keeps it.
fn charge_fallback(shared: &Shared, remote: &[(Matched, i64)]) {
    let now = shared.now();
    for (m, delta) in remote {
        tracing::warn!(
            rule = %m.rule.entry.id,
            counter = %m.counter,
            delta,
            "token settlement not delivered to the rate-limit store; charged locally"
        );
        shared
            .local
            .adjust(&m.fallback_key(), m.rule.fallback, i128::from(*delta), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_static<T: Send + 'static>() {}

    #[test]
    fn admission_can_be_held_across_awaits() {
        assert_send_static::<Admission>();
        assert_send_static::<super::super::Limiter>();
        fn sync<T: Sync>() {}
        sync::<super::super::Limiter>();
    }

    #[test]
    fn admit_and_settle_futures_are_send() {
        fn send<T: Send>(_: &T) {}
        let limiter =
            super::super::Limiter::new(crate::protection::clock::SystemClock::shared(), None);
        let rules = super::super::LimitRules::default();
        let req = super::super::LimitRequest {
            tenant_id: "t",
            api_key_id: None,
            model: None,
            route_id: None,
        };
        send(&limiter.admit(&rules, &req, 0));
        send(&Admission::empty().settle(0));
    }

    #[tokio::test]
    async fn an_empty_admission_has_no_headers_and_settles_to_nothing() {
        let a = Admission::empty();
        assert_eq!(a.headers(), None);
        a.settle(123).await;
    }
}
