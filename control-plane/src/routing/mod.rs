//! Generic reverse-proxy routes (API §7.1): match host, path prefix, methods and headers;
//! forward to weighted targets with load balancing, health checks, prefix stripping, timeouts,
//! retries and a chosen set of plugins.
//!
//! Platform admins manage platform routes (no `tenant_id`); tenant admins manage their own
//! tenant's routes, which may only take hosts of that tenant's domains. Routes are compiled
//! into the snapshot; the data plane serves them on Pingora's native proxy path.

mod input;
mod model;

pub use input::{RouteInput, METHODS};
pub use model::Route;

use crate::api::ApiBuilder;
use crate::resource::crud_routes;

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    crud_routes::<Route>(api)
}
