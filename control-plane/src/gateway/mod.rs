//! Gateway operations (API §7.4): the gateway-wide settings the data plane applies
//! (`GET/PUT /api/gateway/config`), proxy instances reporting in (`POST
//! /api/internal/heartbeat`, `GET /api/gateway/status`), and `POST /api/gateway/reload`.

mod config;
mod instances;
mod reload;
mod routes;

pub use config::{current as current_config, GatewayConfig, GatewayConfigUpdate};
pub use instances::{live_count, live_reports, InstanceReport, InstanceStatus, ProtectionReport};
pub use reload::ReloadReport;
pub use routes::{routes, GatewayStatus};
