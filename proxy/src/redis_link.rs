//! One lazily made, bounded connection to the Redis of a cluster, shared by the cluster-wide
//! stores (rate-limit counters, spending holds).
//!
//! The connection is made on the first call (construction never needs Redis) and re-made in
//! the background by the `ConnectionManager` after a failure, so Redis coming back is picked
//! up by itself. Every call is bounded by the link's timeout; a change of reachability is
//! logged once, not per call.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// Default bound on one Redis call.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// Why a Redis call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("redis call timed out after {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("unexpected script reply: {0}")]
    Reply(String),
}

pub(crate) struct RedisLink {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    timeout: Duration,
    /// What this link serves, for the reachability log lines.
    purpose: &'static str,
    healthy: AtomicBool,
}

impl RedisLink {
    /// A link to `url` whose every call gives up after `timeout` (zero: [`DEFAULT_TIMEOUT`]).
    /// Only parses the URL.
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        purpose: &'static str,
    ) -> Result<Self, redis::RedisError> {
        let timeout = if timeout.is_zero() {
            DEFAULT_TIMEOUT
        } else {
            timeout
        };
        Ok(Self::with_client(
            redis::Client::open(url)?,
            timeout,
            purpose,
        ))
    }

    fn with_client(client: redis::Client, timeout: Duration, purpose: &'static str) -> Self {
        Self {
            client,
            conn: OnceCell::new(),
            timeout,
            purpose,
            healthy: AtomicBool::new(true),
        }
    }

    /// A link to the same Redis with its own connection.
    pub(crate) fn fresh(&self) -> Self {
        Self::with_client(self.client.clone(), self.timeout, self.purpose)
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one script invocation (connecting first if needed), bounded by the timeout.
    pub(crate) async fn invoke(
        &self,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<Vec<i64>, LinkError> {
        let attempt = async {
            let mut conn = self.connection().await?;
            let reply: Vec<i64> = call.invoke_async(&mut conn).await?;
            Ok::<_, LinkError>(reply)
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(LinkError::Timeout(self.timeout)),
        };
        self.note_health(&result);
        result
    }

    async fn connection(&self) -> Result<ConnectionManager, redis::RedisError> {
        let conn = self
            .conn
            .get_or_try_init(|| {
                // Connect attempts are bounded too; the manager keeps retrying in the
                // background after a failure, each attempt as short as our calls.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(self.timeout.max(Duration::from_millis(250)))
                    .set_number_of_retries(3)
                    .set_max_delay(1_000);
                ConnectionManager::new_with_config(self.client.clone(), config)
            })
            .await?;
        Ok(conn.clone())
    }

    fn note_health<T>(&self, result: &Result<T, LinkError>) {
        let ok = result.is_ok();
        if self.healthy.swap(ok, Ordering::Relaxed) != ok {
            match result {
                Ok(_) => tracing::info!(purpose = self.purpose, "redis reachable again"),
                Err(e) => tracing::warn!(purpose = self.purpose, error = %e, "redis unreachable"),
            }
        }
    }

    /// Test access to the connection (reads TTLs, values), without the call timeout.
    #[cfg(test)]
    pub(crate) async fn raw(&self) -> Option<ConnectionManager> {
        let conn = self
            .conn
            .get_or_try_init(|| ConnectionManager::new(self.client.clone()))
            .await
            .ok()?;
        Some(conn.clone())
    }
}
