//! Health (API §6.3): the control plane's own health (`GET /api/health`, public) and the
//! health of the upstream services the proxies report (`GET /api/health/services`,
//! `GET /api/health/services/{service}`).
//!
//! Services are shared infrastructure: the per-service view is for platform admins and
//! platform-wide auditors only (`Access::PlatformRead`); tenant roles get 403. A tenant watches
//! its own traffic through alert rules on its usage (`error_rate`, `p99_latency_ms`) instead.

mod redis;
mod services;
mod system;

pub use services::{aggregate, ServiceHealth};

use crate::api::ApiBuilder;

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    services::routes(system::routes(api))
}
