//! The declaration of one endpoint.

use axum::http::Method;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::auth::Access;

/// Produces the schema of a type, registering its definitions with the generator.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T` as a (usually `$ref`) subschema.
pub fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Everything known about one endpoint: routing, access, documentation, audit.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: Method,
    /// axum path syntax, e.g. `/api/tenants/{id}`.
    pub path: String,
    /// Stable operation id, also the audit action (e.g. `tenants.activate`).
    pub operation: String,
    pub summary: String,
    pub tag: String,
    pub access: Access,
    /// Resource type recorded in audit entries.
    pub resource: String,
    pub request: Option<SchemaFn>,
    pub query: Option<SchemaFn>,
    pub response: Option<SchemaFn>,
    /// Content type of the success response when it is not JSON.
    pub response_content_type: Option<&'static str>,
    pub success: u16,
    /// A second success status with the same body (e.g. 200 for a replayed or replacing
    /// call of an endpoint that answers 201 when it creates).
    pub also_success: Option<u16>,
    /// Request body limit of this endpoint when it differs from the API-wide one.
    pub max_body: Option<usize>,
    /// Whether mutating calls are written to the audit log (see [`Endpoint::unaudited`]).
    pub audited: bool,
    /// Error statuses beyond those implied by the endpoint's shape (see [`Endpoint::error`]).
    pub extra_errors: Vec<(u16, &'static str)>,
}

impl Endpoint {
    pub fn new(
        method: Method,
        path: impl Into<String>,
        operation: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        let operation = operation.into();
        let tag = operation.split('.').next().unwrap_or_default().to_owned();
        Self {
            method,
            path: path.into(),
            resource: tag.clone(),
            operation,
            summary: summary.into(),
            tag,
            access: Access::Read,
            request: None,
            query: None,
            response: None,
            response_content_type: None,
            success: 200,
            also_success: None,
            max_body: None,
            audited: true,
            extra_errors: Vec::new(),
        }
    }

    pub fn get(
        path: impl Into<String>,
        operation: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        Self::new(Method::GET, path, operation, summary)
    }

    pub fn post(
        path: impl Into<String>,
        operation: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        Self::new(Method::POST, path, operation, summary)
    }

    pub fn put(
        path: impl Into<String>,
        operation: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        Self::new(Method::PUT, path, operation, summary)
    }

    pub fn delete(
        path: impl Into<String>,
        operation: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        Self::new(Method::DELETE, path, operation, summary).status(204)
    }

    pub fn access(mut self, access: Access) -> Self {
        self.access = access;
        self
    }

    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = tag.into();
        self
    }

    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = resource.into();
        self
    }

    pub fn request<T: JsonSchema>(mut self) -> Self {
        self.request = Some(schema_of::<T>);
        self
    }

    pub fn query<T: JsonSchema>(mut self) -> Self {
        self.query = Some(schema_of::<T>);
        self
    }

    pub fn response<T: JsonSchema>(mut self) -> Self {
        self.response = Some(schema_of::<T>);
        self
    }

    /// A non-JSON success body (CSV, HTML, JSON Lines).
    pub fn produces(mut self, content_type: &'static str) -> Self {
        self.response_content_type = Some(content_type);
        self
    }

    /// Accepts bodies up to `bytes` (bulk endpoints such as usage ingest).
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = Some(bytes);
        self
    }

    pub fn status(mut self, status: u16) -> Self {
        self.success = status;
        self
    }

    /// Documents a second success status answering the same body.
    pub fn also_status(mut self, status: u16) -> Self {
        self.also_success = Some(status);
        self
    }

    /// Documents an error status the endpoint's shape does not imply (e.g. 502 when a server
    /// it calls on the caller's behalf fails).
    pub fn error(mut self, status: u16, description: &'static str) -> Self {
        self.extra_errors.push((status, description));
        self
    }

    /// Node telemetry (heartbeats, access-log batches): POSTs that change no configuration and
    /// come every few seconds from every proxy. Auditing them would bury the operators'
    /// actions under tens of thousands of entries a day in a log that can never be pruned.
    pub fn unaudited(mut self) -> Self {
        self.audited = false;
        self
    }

    /// Whether calls change state.
    pub fn is_mutation(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    /// The path parameter that names a tenant, when the path is about one tenant
    /// (`/api/tenants/{id}/...` or any `{tenantId}`).
    pub fn tenant_param(&self) -> Option<&'static str> {
        if self.path.contains("{tenantId}") {
            Some("tenantId")
        } else if self.path.starts_with("/api/tenants/{id}") {
            Some("id")
        } else {
            None
        }
    }

    /// Names of the `{param}` segments of the path.
    pub fn path_params(&self) -> Vec<&str> {
        self.path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect()
    }
}
