//! Reachability of the configured Redis: one `PING`, bounded by [`PING_TIMEOUT`], so a Redis
//! that is down or black-holed never makes `GET /api/health` slow.

use std::time::Duration;

/// Longest a health check waits for Redis (connect and `PING` together).
pub const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// `Ok(())` when Redis answered `PING` within [`PING_TIMEOUT`]; otherwise why not, in words
/// that never include the URL (it may carry a password).
pub async fn ping(url: &str) -> Result<(), String> {
    let client = ::redis::Client::open(url).map_err(|_| "invalid redis_url".to_owned())?;
    let attempt = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        ::redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(PING_TIMEOUT, attempt).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("redis unreachable ({})", kind_name(&e))),
        Err(_) => Err(format!(
            "redis did not answer within {} ms",
            PING_TIMEOUT.as_millis()
        )),
    }
}

/// Short name of a Redis error, for the health detail.
fn kind_name(e: &::redis::RedisError) -> String {
    if e.is_connection_refusal() {
        "connection refused".into()
    } else if e.is_timeout() {
        "timeout".into()
    } else if e.is_io_error() {
        "i/o error".into()
    } else {
        format!("{:?}", e.kind()).to_lowercase()
    }
}
