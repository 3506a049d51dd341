//! `GET /api/health`: liveness plus store reachability.

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
    /// The data plane, until it reports in (data-plane issue).
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
    let ok = store.status == "ok";
    let body = Health {
        status: if ok { "ok" } else { "degraded" }.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: state.uptime_secs(),
        store,
        proxy: ComponentHealth {
            status: if medgate_proxy_available() {
                "ok"
            } else {
                "unavailable"
            }
            .into(),
            detail: Some("the data plane is not part of this build yet".into()),
        },
    };
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

fn medgate_proxy_available() -> bool {
    false
}
