//! How endpoints are declared: once, with their method, path, access, schemas and audit
//! metadata. [`ApiBuilder::add`] registers the handler with axum, wraps it in the guard
//! (authentication, role check, audit of mutations) and records it for the OpenAPI document.

pub mod client_ip;
pub mod docs;
mod endpoint;
pub mod extract;
mod guard;
pub mod openapi;
pub mod pagination;
pub mod request_id;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::handler::Handler;
use axum::routing::{on, MethodFilter};
use axum::Router;

pub use client_ip::ClientIp;
pub use endpoint::{schema_of, Endpoint};
pub use guard::AuditTarget;

use crate::state::AppState;

static BODY_LIMIT: AtomicUsize = AtomicUsize::new(1024 * 1024);

/// The request body limit in force (for error messages).
pub fn body_limit() -> usize {
    BODY_LIMIT.load(Ordering::Relaxed)
}

pub(crate) fn set_body_limit(limit: usize) {
    BODY_LIMIT.store(limit, Ordering::Relaxed);
}

/// Accepts any RFC 3339 time and turns it into the stored form, so text comparison is right.
pub fn parse_time(field: &str, text: &str) -> crate::error::ApiResult<String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| crate::store::timestamp(t.with_timezone(&chrono::Utc)))
        .map_err(|_| {
            crate::error::ApiError::invalid(
                field,
                "must be an RFC 3339 time, e.g. 2026-01-31T00:00:00Z",
            )
        })
}

/// Collects routes and their declarations.
pub struct ApiBuilder {
    state: AppState,
    router: Router<AppState>,
    endpoints: Vec<Arc<Endpoint>>,
}

impl ApiBuilder {
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            router: Router::new(),
            endpoints: Vec::new(),
        }
    }

    /// Registers one endpoint.
    pub fn add<H, T>(mut self, endpoint: Endpoint, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let endpoint = Arc::new(endpoint);
        let filter = MethodFilter::try_from(endpoint.method.clone())
            .unwrap_or_else(|_| panic!("unsupported method in {}", endpoint.operation));
        let guard = axum::middleware::from_fn_with_state(
            (self.state.clone(), endpoint.clone()),
            guard::guard,
        );
        let mut route = on(filter, handler).route_layer(guard);
        if let Some(limit) = endpoint.max_body {
            // Inside the API-wide limit layer, so this one is the limit in force.
            route = route.layer(axum::extract::DefaultBodyLimit::max(limit));
        }
        self.router = self.router.route(&endpoint.path, route);
        self.endpoints.push(endpoint);
        self
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The router (state applied) and every declared endpoint.
    pub fn finish(self) -> (Router, Vec<Arc<Endpoint>>) {
        (self.router.with_state(self.state), self.endpoints)
    }
}
