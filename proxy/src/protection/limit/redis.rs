//! The cluster counter store: GCRA in Redis Lua scripts on the Redis server's clock.
//!
//! * One script charges N keys all-or-nothing (check all, then commit all) and one applies
//!   post-hoc adjustments; both read `redis.call('TIME')`, so proxies with skewed clocks
//!   share exact counters. TAT is kept in microseconds (a float formatted with `%.3f`, exact
//!   well beyond the ~1.7e15 µs of today's epoch), so intervals below 1 ms stay accurate.
//! * Every key written gets a PEXPIRE of (time until the counter is empty + 1 s): an
//!   expired key and a drained one are the same, so Redis never holds idle counters.
//! * Keys are `<prefix>:rl:{<tag>}:<rule_id>:<counter>` (prefix `mg`), the tag being the
//!   counter's tenant or `global`. On Redis Cluster every key of one script must share a
//!   slot: requests meeting rules of one tenant (plan RPM + TPM) are fine, but a request
//!   meeting both a tenant rule and a global/model/route rule needs standalone or Sentinel
//!   Redis (this store speaks to one Redis endpoint through a `ConnectionManager`).
//! * Needs Redis >= 5 (scripts replicated by effects, required for `TIME` before writes).
//! * Every call is bounded by the configured timeout. The connection is made lazily on the
//!   first call (construction never needs Redis) and re-made in the background by the
//!   `ConnectionManager` after a failure, so Redis coming back is picked up by itself.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

pub(crate) use crate::redis_link::LinkError as StoreError;
use crate::redis_link::RedisLink;

/// Extra lifetime of a key beyond the moment its counter is empty.
const TTL_MARGIN_MS: u64 = 1_000;
#[cfg(test)]
pub(crate) use crate::redis_link::DEFAULT_TIMEOUT;

/// KEYS = counters; ARGV[1] = TTL margin (ms); then per key: interval (µs), capacity, cost.
/// Returns {admitted (0|1), per key: TAT - now in µs after the commit (or as found)}.
const ADMIT_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local margin = tonumber(ARGV[1])
local tats = {}
local ok = 1
for i = 1, #KEYS do
  local interval = tonumber(ARGV[3 * i - 1])
  local cap = tonumber(ARGV[3 * i])
  local cost = tonumber(ARGV[3 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then tat = now end
  tats[i] = tat
  if (tat - now) + cost * interval > cap * interval then ok = 0 end
end
local out = {ok}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[3 * i - 1])
  local cost = tonumber(ARGV[3 * i + 1])
  local tat = tats[i]
  if ok == 1 and cost > 0 then
    tat = math.min(tat + cost * interval, now + 9e15)
    local ttl = math.ceil((tat - now) / 1000) + margin
    redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', string.format('%d', ttl))
  end
  out[i + 1] = math.floor(tat - now)
end
return out
";

/// KEYS = counters; ARGV[1] = TTL margin (ms); then per key: interval (µs), signed delta.
/// Always applies (debt kept, refunds floored at empty). Returns per key TAT - now in µs.
const ADJUST_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local margin = tonumber(ARGV[1])
local out = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local delta = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then tat = now end
  tat = math.min(tat + delta * interval, now + 9e15)
  if tat > now then
    local ttl = math.ceil((tat - now) / 1000) + margin
    redis.call('SET', KEYS[i], string.format('%.3f', tat), 'PX', string.format('%d', ttl))
  else
    tat = now
    redis.call('DEL', KEYS[i])
  end
  out[i] = math.floor(tat - now)
end
return out
";

/// One counter to charge in Redis.
#[derive(Debug, Clone)]
pub(crate) struct RedisCharge {
    pub(crate) key: String,
    pub(crate) interval_ns: u64,
    pub(crate) capacity: u64,
    pub(crate) cost: u64,
}

/// The script's answer: whether all were charged, and each counter's level as time
/// (TAT - now on the Redis clock, ns) after the commit or, when refused, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RedisOutcome {
    pub(crate) admitted: bool,
    pub(crate) levels_ns: Vec<u64>,
}

/// Handle to the Redis that holds cluster-mode counters. Cheap to clone; Send + Sync.
#[derive(Clone)]
pub struct RedisLimitStore {
    inner: Arc<Inner>,
}

struct Inner {
    link: RedisLink,
    prefix: String,
    admit: Script,
    adjust: Script,
}

impl std::fmt::Debug for RedisLimitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimitStore")
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.link.timeout())
            .finish_non_exhaustive()
    }
}

impl RedisLimitStore {
    /// A store for `url` (`redis://host:port/db`) whose every call gives up after `timeout`
    /// (a zero timeout means [`DEFAULT_TIMEOUT`], 50 ms). Only parses the URL: Redis need not
    /// be reachable; the connection is made on first use.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, redis::RedisError> {
        Ok(Self {
            inner: Arc::new(Inner {
                link: RedisLink::new(url, timeout, "rate limits")?,
                prefix: "mg".to_owned(),
                admit: Script::new(ADMIT_LUA),
                adjust: Script::new(ADJUST_LUA),
            }),
        })
    }

    /// The same store with another key prefix (default `mg`; tests use a random one). The
    /// prefix must not contain `{`, or the hash tag would be taken from it.
    pub fn with_prefix(self, prefix: &str) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                link: inner.link.fresh(),
                prefix: prefix.replace('{', "_"),
                admit: Script::new(ADMIT_LUA),
                adjust: Script::new(ADJUST_LUA),
            }),
        }
    }

    pub fn timeout(&self) -> Duration {
        self.inner.link.timeout()
    }

    /// The key of one counter.
    pub(crate) fn key(&self, tag: &str, rule_id: &str, counter: &str) -> String {
        format!("{}:rl:{{{tag}}}:{rule_id}:{counter}", self.inner.prefix)
    }

    /// Charges every counter or none, in one script run.
    pub(crate) async fn admit(&self, charges: &[RedisCharge]) -> Result<RedisOutcome, StoreError> {
        let mut call = self.inner.admit.prepare_invoke();
        call.arg(TTL_MARGIN_MS);
        for c in charges {
            call.key(&c.key)
                .arg(micros(c.interval_ns))
                .arg(c.capacity)
                .arg(c.cost);
        }
        let reply: Vec<i64> = self.run(&call).await?;
        let (flag, levels) = reply
            .split_first()
            .ok_or_else(|| StoreError::Reply("empty".into()))?;
        if levels.len() != charges.len() {
            return Err(StoreError::Reply(format!("{} levels", levels.len())));
        }
        Ok(RedisOutcome {
            admitted: *flag == 1,
            levels_ns: levels.iter().map(|l| micros_to_ns(*l)).collect(),
        })
    }

    /// Applies signed adjustments `(key, interval_ns, delta)`; returns each counter's level
    /// as time (ns).
    pub(crate) async fn adjust(
        &self,
        items: &[(String, u64, i64)],
    ) -> Result<Vec<u64>, StoreError> {
        let mut call = self.inner.adjust.prepare_invoke();
        call.arg(TTL_MARGIN_MS);
        for (key, interval_ns, delta) in items {
            call.key(key).arg(micros(*interval_ns)).arg(*delta);
        }
        let reply: Vec<i64> = self.run(&call).await?;
        Ok(reply.into_iter().map(micros_to_ns).collect())
    }

    async fn run(&self, call: &redis::ScriptInvocation<'_>) -> Result<Vec<i64>, StoreError> {
        self.inner.link.invoke(call).await
    }

    /// Test access to the connection (reads TTLs, values).
    #[cfg(test)]
    pub(crate) async fn raw(&self) -> Option<redis::aio::ConnectionManager> {
        self.inner.link.raw().await
    }
}

/// Nanoseconds as a decimal microsecond string (sub-microsecond intervals stay exact enough).
fn micros(ns: u64) -> String {
    format!("{}.{:03}", ns / 1_000, ns % 1_000)
}

fn micros_to_ns(us: i64) -> u64 {
    u64::try_from(us).unwrap_or(0).saturating_mul(1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn construction_needs_no_server_and_keys_are_hash_tagged() {
        let store = RedisLimitStore::new("redis://127.0.0.1:1", Duration::ZERO)
            .expect("url parses")
            .with_prefix("t{x");
        assert_eq!(store.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(store.key("ten", "r1", "ten"), "t_x:rl:{ten}:r1:ten");
        assert!(RedisLimitStore::new("not a url", DEFAULT_TIMEOUT).is_err());
    }

    #[test]
    fn intervals_are_sent_in_microseconds() {
        assert_eq!(micros(6_000_000), "6000.000");
        assert_eq!(micros(1_234), "1.234");
        assert_eq!(micros_to_ns(-5), 0);
        assert_eq!(micros_to_ns(2), 2_000);
    }
}
