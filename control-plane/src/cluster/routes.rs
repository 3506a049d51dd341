//! `GET /api/cluster` (which control plane runs which singleton job) and the probes of the
//! control plane: `GET /api/health/live` (the process serves) and `GET /api/health/ready`
//! (the store answers and is migrated: send traffic here).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::lease::{self, LeaseRow};
use super::INSTANCE_ID;
use crate::api::{ApiBuilder, Endpoint};
use crate::auth::Access;
use crate::error::ApiResult;
use crate::state::AppState;

/// The control planes' view of the cluster.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ClusterView {
    /// The control plane that answered.
    pub instance: String,
    /// `sqlite` (one node) or `postgres` (cluster).
    pub store: String,
    /// Singleton job leases and their holders.
    pub leases: Vec<LeaseRow>,
}

/// A probe's answer.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Probe {
    /// `ok`, or `unavailable` (with a 503).
    pub status: String,
    pub detail: Option<String>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/cluster",
            "cluster.get",
            "This control plane's instance id and which control plane runs each singleton job",
        )
        .access(Access::PlatformRead)
        .response::<ClusterView>(),
        cluster,
    )
    .add(
        Endpoint::get(
            "/api/health/live",
            "health.live",
            "Liveness probe: 200 while the process serves",
        )
        .access(Access::Public)
        .response::<Probe>(),
        live,
    )
    .add(
        Endpoint::get(
            "/api/health/ready",
            "health.ready",
            "Readiness probe: 200 when the store answers and is migrated, else 503",
        )
        .access(Access::Public)
        .response::<Probe>(),
        ready,
    )
}

async fn cluster(State(state): State<AppState>) -> ApiResult<Json<ClusterView>> {
    Ok(Json(ClusterView {
        instance: INSTANCE_ID.clone(),
        store: match state.store().backend() {
            crate::store::Backend::Sqlite => "sqlite",
            crate::store::Backend::Postgres => "postgres",
        }
        .into(),
        leases: lease::list(state.store()).await?,
    }))
}

async fn live() -> Json<Probe> {
    Json(Probe {
        status: "ok".into(),
        detail: None,
    })
}

async fn ready(State(state): State<AppState>) -> Response {
    // The last migration's table answering means the store is up and migrated.
    let check = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query("SELECT COUNT(*) FROM cluster_leases").fetch_one(state.store().reader()),
    )
    .await;
    match check {
        Ok(Ok(_)) => Json(Probe {
            status: "ok".into(),
            detail: None,
        })
        .into_response(),
        Ok(Err(e)) => unavailable(format!("store: {e}")),
        Err(_) => unavailable("store: no answer within 2 s".into()),
    }
}

fn unavailable(detail: String) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(Probe {
            status: "unavailable".into(),
            detail: Some(detail),
        }),
    )
        .into_response()
}
