//! `GET /api/health`: liveness, store and Redis reachability, and whether proxies report in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Duration, Utc};
use medgate_config::node::STALE_AFTER_SECS;
use serde::Serialize;

use crate::api::{ApiBuilder, Endpoint};
use crate::auth::Access;
use crate::state::AppState;
use crate::store::{self, Backend};

/// Health of the control plane.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Health {
    /// `ok` when the store and (if configured) Redis are reachable, `degraded` otherwise. The
    /// HTTP status is 503 only when the store is down: without Redis the control plane still
    /// serves, only cluster-wide counters suffer.
    pub status: String,
    pub version: String,
    pub uptime_secs: u64,
    pub store: ComponentHealth,
    /// `ok`, `down`, or `not_configured` when no `redis_url` is set. Checked with one `PING`
    /// bounded by 500 ms.
    pub redis: ComponentHealth,
    /// The data plane: `ok` while a proxy instance reports (heartbeat within 30 s), `none`
    /// otherwise. Informational: it does not change `status`.
    pub proxy: ComponentHealth,
    /// Proxy instances by freshness of their last heartbeat. Informational too.
    pub proxies: ProxyCounts,
}

/// Health of one component.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ComponentHealth {
    pub status: String,
    pub detail: Option<String>,
}

/// Proxy instances known to the control plane.
#[derive(Debug, Default, Serialize, schemars::JsonSchema)]
pub struct ProxyCounts {
    /// Instances with a heartbeat within the last 30 s.
    pub live: u64,
    /// Instances silent for 30 s or more (forgotten after a day).
    pub stale: u64,
}

impl ComponentHealth {
    fn new(status: &str, detail: impl Into<String>) -> Self {
        Self {
            status: status.into(),
            detail: Some(detail.into()),
        }
    }
}

pub(super) fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/health",
            "health.get",
            "System health (503 when the store is unreachable)",
        )
        .access(Access::Public)
        .response::<Health>(),
        health,
    )
}

async fn health(State(state): State<AppState>) -> Response {
    let (store, redis) = tokio::join!(store_health(&state), redis_health(&state));
    let (proxy, proxies) = proxy_health(&state).await;
    let store_ok = store.status == "ok";
    let ok = store_ok && redis.status != "down";
    let body = Health {
        status: if ok { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: state.uptime_secs(),
        store,
        redis,
        proxy,
        proxies,
    };
    let status = if store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn store_health(state: &AppState) -> ComponentHealth {
    let backend = match state.store().backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    match state.store().ping().await {
        Ok(()) => ComponentHealth::new("ok", backend),
        Err(e) => {
            tracing::warn!(error = %e, "store health check failed");
            ComponentHealth::new("down", format!("{backend} unreachable"))
        }
    }
}

async fn redis_health(state: &AppState) -> ComponentHealth {
    let Some(url) = state.settings().redis_url.as_deref() else {
        return ComponentHealth {
            status: "not_configured".into(),
            detail: None,
        };
    };
    match super::redis::ping(url).await {
        Ok(()) => ComponentHealth::new("ok", "PING answered"),
        Err(why) => {
            tracing::warn!(reason = %why, "redis health check failed");
            ComponentHealth::new("down", why)
        }
    }
}

/// `ok` while at least one proxy instance sent a heartbeat within 30 s, `none` otherwise. A
/// control plane without proxies is still healthy itself, so this does not change the overall
/// status.
async fn proxy_health(state: &AppState) -> (ComponentHealth, ProxyCounts) {
    match proxy_counts(state).await {
        Ok(counts) if counts.live == 0 => (
            ComponentHealth::new(
                "none",
                "no proxy instance sent a heartbeat in the last 30 s",
            ),
            counts,
        ),
        Ok(counts) => (
            ComponentHealth::new("ok", format!("{} proxy instance(s) reporting", counts.live)),
            counts,
        ),
        Err(e) => {
            tracing::warn!(error = %e, "proxy instances could not be read");
            (
                ComponentHealth::new("unknown", "proxy instances could not be read"),
                ProxyCounts::default(),
            )
        }
    }
}

/// Live and stale instances in one read of the gateway's `proxy_instances` table, with the
/// same 30 s cut-off as `GET /api/gateway/status`.
async fn proxy_counts(state: &AppState) -> Result<ProxyCounts, sqlx::Error> {
    let since = store::timestamp(Utc::now() - Duration::seconds(STALE_AFTER_SECS as i64));
    let (total, live): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), SUM(CASE WHEN last_heartbeat_at >= $1 THEN 1 ELSE 0 END) \
         FROM proxy_instances",
    )
    .bind(since)
    .fetch_one(state.store().reader())
    .await?;
    let live = live.unwrap_or_default().max(0);
    Ok(ProxyCounts {
        live: u64::try_from(live).unwrap_or_default(),
        stale: u64::try_from(total - live).unwrap_or_default(),
    })
}
