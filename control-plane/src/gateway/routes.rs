//! The gateway endpoints: configuration, status, reload, and the nodes' heartbeat.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use medgate_config::{Heartbeat, HeartbeatAck};
use serde::Serialize;

use super::config::{self, GatewayConfig, GatewayConfigUpdate};
use super::instances::{self, InstanceStatus};
use super::reload::{self, ReloadReport};
use crate::api::extract::ApiJson;
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::Access;
use crate::error::ApiResult;
use crate::state::AppState;

/// What `GET /api/gateway/status` answers.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GatewayStatus {
    /// The control plane's current snapshot version; instances with a lower applied version
    /// have not caught up yet.
    pub snapshot_version: u64,
    /// Every instance that reported within the last day.
    pub instances: Vec<InstanceStatus>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/gateway/config",
            "gateway.get_config",
            "Get the gateway-wide settings the data plane applies",
        )
        .access(Access::PlatformRead)
        .resource("gateway_config")
        .response::<GatewayConfig>(),
        get_config,
    )
    .add(
        Endpoint::put(
            "/api/gateway/config",
            "gateway.update_config",
            "Update the gateway-wide settings (omitted fields keep their value)",
        )
        .access(Access::PlatformAdmin)
        .resource("gateway_config")
        .request::<GatewayConfigUpdate>()
        .response::<GatewayConfig>(),
        update_config,
    )
    .add(
        Endpoint::get(
            "/api/gateway/status",
            "gateway.status",
            "Proxy instances (address, applied snapshot version, uptime, heartbeat, request rate)",
        )
        .access(Access::PlatformRead)
        .resource("proxy_instance")
        .response::<GatewayStatus>(),
        status,
    )
    .add(
        Endpoint::post(
            "/api/gateway/reload",
            "gateway.reload",
            "Make every proxy fetch the latest snapshot; reports which did (waits up to 3 s)",
        )
        .access(Access::PlatformAdmin)
        .resource("snapshot")
        .response::<ReloadReport>(),
        reload,
    )
    .add(
        Endpoint::post(
            "/api/internal/heartbeat",
            "internal.heartbeat",
            "A proxy instance reports itself (every 5 s and after applying a snapshot)",
        )
        .access(Access::Node)
        .resource("proxy_instance")
        .request::<Heartbeat>()
        .response::<HeartbeatAck>()
        .unaudited(),
        heartbeat,
    )
}

async fn get_config(State(state): State<AppState>) -> ApiResult<Json<GatewayConfig>> {
    Ok(Json(config::current(state.store()).await?))
}

async fn update_config(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<GatewayConfigUpdate>,
) -> ApiResult<Response> {
    let value = config::update(state.store(), input).await?;
    let details = serde_json::to_value(&value).unwrap_or_default();
    Ok(AuditTarget::new("gateway", None)
        .with_details(details)
        .attach(Json(value)))
}

async fn status(State(state): State<AppState>) -> ApiResult<Json<GatewayStatus>> {
    Ok(Json(GatewayStatus {
        snapshot_version: state.store().config_version().await?,
        instances: instances::list(state.store()).await?,
    }))
}

async fn reload(State(state): State<AppState>) -> ApiResult<Response> {
    let report = reload::reload(state.store()).await?;
    let target = AuditTarget::default().with_details(serde_json::json!({
        "target_version": report.target_version,
        "applied": report.applied.len(),
        "pending": report.pending.len(),
    }));
    Ok(target.attach(Json(report)))
}

async fn heartbeat(
    State(state): State<AppState>,
    ApiJson(beat): ApiJson<Heartbeat>,
) -> ApiResult<Json<HeartbeatAck>> {
    instances::record(state.store(), &beat).await?;
    state.metrics().heartbeats.inc();
    Ok(Json(HeartbeatAck {
        snapshot_version: state.store().config_version().await?,
    }))
}
