//! medgate's request plugins.
//!
//! A plugin sees a [`RequestView`] (plain values, no Pingora types) and the snapshot in force,
//! and either lets the request continue or answers it. The proxy runs plugins in the order of
//! DESIGN.md §4; keeping them free of transport types makes each one unit-testable.
#![forbid(unsafe_code)]

mod tenant_status;

pub use tenant_status::TenantStatusGate;

use medgate_config::Snapshot;

/// What a plugin may look at. Filled by the proxy from the authenticated request.
#[derive(Debug, Clone, Default)]
pub struct RequestView {
    /// The tenant resolved from credentials (never from a client-sent header).
    pub tenant_id: Option<String>,
    pub method: String,
    pub path: String,
}

/// A refusal, in terms the proxy turns into an OpenAI-shaped error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    /// OpenAI error `type` (e.g. `invalid_request_error`, `permission_error`).
    pub kind: &'static str,
    /// OpenAI error `code`, stable for clients to match on.
    pub code: &'static str,
    pub message: String,
}

/// What a plugin decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Continue,
    Reject(Rejection),
}

/// One step of the request path.
pub trait Plugin: Send + Sync {
    /// Stable name used in route configuration and metrics.
    fn name(&self) -> &'static str;

    /// Decides on a request against one consistent snapshot.
    fn on_request(&self, request: &RequestView, snapshot: &Snapshot) -> Decision;
}
