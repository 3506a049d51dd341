//! Spending holds shared by the proxies of a cluster, in Redis (issue 5).
//!
//! Each proxy publishes, per gated tenant, what it holds against the tenant's funds that the
//! funds feed does not show yet (estimates of requests in flight, costs of finished requests
//! whose debit is not in the feed yet). A reservation is admitted only if the tenant's
//! spendable amount covers the holds of every live proxy, so the overshoot bound of the
//! money gate holds for the cluster as a whole instead of per proxy.
//!
//! * One hash per tenant, `<prefix>:funds:{<tenant>}`, one field per proxy instance:
//!   `<micros>|<deadline ms>|<seq>`. One key per script, so Redis Cluster is fine.
//! * Every write is the proxy's absolute hold with a sequence number taken under the same lock
//!   as the value; the script keeps the highest sequence, so writes that overtake each other
//!   never leave a stale value behind, and nothing drifts.
//! * Each field carries a deadline on the Redis clock (`TIME`); a proxy refreshes its
//!   non-zero holds well within it, so the holds of a proxy that died vanish after one TTL.
//! * Scripts need Redis >= 5 (effects replication, for `TIME` before writes).

use std::time::Duration;

use redis::Script;

use crate::redis_link::{LinkError, RedisLink};

/// Default lifetime of a published hold without a refresh.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);

/// KEYS[1] = the tenant's holds. ARGV: instance, held, seq, ttl ms, check (0|1), spendable,
/// counted before this reservation, estimate. Returns {admitted (0|1), others' holds}.
const PUBLISH_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me = ARGV[1]
local held = tonumber(ARGV[2])
local seq = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local others = 0
local stored_seq = -1
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  local micros, deadline, s = string.match(fields[i + 1], '^(-?%d+)|(%d+)|(%d+)$')
  if fields[i] == me then
    stored_seq = tonumber(s) or -1
  elseif micros == nil or tonumber(deadline) < now then
    redis.call('HDEL', KEYS[1], fields[i])
  else
    others = others + tonumber(micros)
  end
end
if ARGV[5] == '1' then
  local available = tonumber(ARGV[6]) - others - tonumber(ARGV[7])
  if available <= 0 or available < tonumber(ARGV[8]) then
    return {0, others}
  end
end
if seq > stored_seq then
  redis.call('HSET', KEYS[1], me, string.format('%d|%d|%d', held, now + ttl, seq))
end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
return {1, others}
";

/// The check a reservation asks for: does `spendable` cover the other proxies' holds plus
/// `counted` (this proxy's holds before the reservation) and `estimate`?
#[derive(Debug, Clone, Copy)]
pub(crate) struct Check {
    pub spendable: i128,
    pub counted: i128,
    pub estimate: i128,
}

/// The script's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Published {
    pub admitted: bool,
    /// What the other live proxies hold for the tenant.
    pub others: i128,
}

/// Handle to the Redis that holds the cluster's spending holds.
pub struct ClusterHolds {
    link: RedisLink,
    prefix: String,
    instance: String,
    ttl: Duration,
    script: Script,
}

impl std::fmt::Debug for ClusterHolds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterHolds")
            .field("prefix", &self.prefix)
            .field("instance", &self.instance)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl ClusterHolds {
    /// Holds of proxy `instance` in the Redis at `url`, every call bounded by `timeout`.
    /// Only parses the URL.
    pub fn new(url: &str, timeout: Duration, instance: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            link: RedisLink::new(url, timeout, "spending holds")?,
            prefix: "mg".to_owned(),
            instance: instance.to_owned(),
            ttl: DEFAULT_TTL,
            script: Script::new(PUBLISH_LUA),
        })
    }

    /// Another key prefix (default `mg`; tests use a random one). `{` is replaced.
    #[must_use]
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.replace('{', "_");
        self
    }

    /// Another lifetime of an unrefreshed hold (at least 300 ms).
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl.max(Duration::from_millis(300));
        self
    }

    /// How often live holds must be refreshed.
    pub(crate) fn refresh_every(&self) -> Duration {
        self.ttl / 3
    }

    fn key(&self, tenant_id: &str) -> String {
        format!("{}:funds:{{{tenant_id}}}", self.prefix)
    }

    /// Publishes this proxy's hold `held` for the tenant as of `seq`; with a check, only if
    /// the tenant's funds cover it.
    pub(crate) async fn publish(
        &self,
        tenant_id: &str,
        held: i128,
        seq: u64,
        check: Option<Check>,
    ) -> Result<Published, LinkError> {
        let mut call = self.script.prepare_invoke();
        call.key(self.key(tenant_id))
            .arg(&self.instance)
            .arg(held.to_string())
            .arg(seq)
            .arg(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX));
        match check {
            Some(c) => call
                .arg(1)
                .arg(c.spendable.to_string())
                .arg(c.counted.to_string())
                .arg(c.estimate.to_string()),
            None => call.arg(0).arg(0).arg(0).arg(0),
        };
        let reply = self.link.invoke(&call).await?;
        match reply.as_slice() {
            [flag, others] => Ok(Published {
                admitted: *flag == 1,
                others: i128::from(*others),
            }),
            other => Err(LinkError::Reply(format!("{other:?}"))),
        }
    }
}
