//! `GET /api/health`: liveness, store reachability, and whether proxies report in.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::api::{ApiBuilder, Endpoint};
use crate::auth::Access;
use crate::state::AppState;
use crate::store::Backend;

/// Health of the control plane.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Health {
    /// `ok` when every component is reachable, `degraded` otherwise.
    pub status: String,
    pub version: String,
    pub uptime_secs: u64,
    pub store: ComponentHealth,
    /// The data plane: `ok` while a proxy instance reports (heartbeat within 30 s), `none`
    /// otherwise. Informational: it does not change `status`.
    pub proxy: ComponentHealth,
}

/// Health of one component.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ComponentHealth {
    pub status: String,
    pub detail: Option<String>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
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
    let backend = match state.store().backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    let store = match state.store().ping().await {
        Ok(()) => ComponentHealth {
            status: "ok".into(),
            detail: Some(backend.into()),
        },
        Err(e) => {
            tracing::warn!(error = %e, "store health check failed");
            ComponentHealth {
                status: "down".into(),
                detail: Some(format!("{backend} unreachable")),
            }
        }
    };
    let proxy = proxy_health(&state).await;
    let ok = store.status == "ok";
    let body = Health {
        status: if ok { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: state.uptime_secs(),
        store,
        proxy,
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `ok` while at least one proxy instance sent a heartbeat within 30 s, `none` otherwise. A
/// control plane without proxies is still healthy itself, so this does not change the overall
/// status.
async fn proxy_health(state: &AppState) -> ComponentHealth {
    match crate::gateway::live_count(state.store()).await {
        Ok(0) => ComponentHealth {
            status: "none".into(),
            detail: Some("no proxy instance sent a heartbeat in the last 30 s".into()),
        },
        Ok(n) => ComponentHealth {
            status: "ok".into(),
            detail: Some(format!("{n} proxy instance(s) reporting")),
        },
        Err(e) => {
            tracing::warn!(error = %e, "proxy instances could not be read");
            ComponentHealth {
                status: "unknown".into(),
                detail: Some("proxy instances could not be read".into()),
            }
        }
    }
}
