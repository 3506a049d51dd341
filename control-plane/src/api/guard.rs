//! The guard around every declared endpoint: authenticate, check the role, run the handler,
//! write one audit entry for every mutating call, whether it succeeded or failed, and count
//! the call in the API's Prometheus metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{request_id, Endpoint};
use crate::audit::{self, NewEntry};
use crate::auth::{Access, Principal};
use crate::error::ApiError;
use crate::state::AppState;

/// Set by a handler on its response to name what it touched, for the audit entry.
/// Without it the guard records the endpoint's resource type and its first path parameter.
#[derive(Debug, Clone, Default)]
pub struct AuditTarget {
    pub resource_id: Option<String>,
    pub tenant_id: Option<String>,
    pub details: Option<serde_json::Value>,
}

impl AuditTarget {
    pub fn new(resource_id: impl Into<String>, tenant_id: Option<&str>) -> Self {
        Self {
            resource_id: Some(resource_id.into()),
            tenant_id: tenant_id.map(str::to_owned),
            details: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// Attaches this target to a response.
    pub fn attach(self, response: impl IntoResponse) -> Response {
        let mut response = response.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

pub(super) async fn guard(
    State((state, endpoint)): State<(AppState, Arc<Endpoint>)>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let response = guarded(&state, &endpoint, request, next).await;
    state
        .metrics()
        .observe(&endpoint.operation, response.status(), started.elapsed());
    response
}

async fn guarded(state: &AppState, endpoint: &Endpoint, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let source_ip =
        super::client_ip::of_request(&parts, state.trusted_proxies()).map(|ip| ip.to_string());
    let params: Vec<(String, String)> = RawPathParams::from_request_parts(&mut parts, &())
        .await
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let first_param = params.first().map(|(_, v)| v.clone());
    let tenant_in_path = endpoint.tenant_param().and_then(|name| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    });

    let principal = match authenticate(state, endpoint, &parts.headers) {
        Ok(p) => p,
        Err(err) => return refuse(state, endpoint, None, err, source_ip, first_param).await,
    };
    if let Some(p) = &principal {
        if let Err(err) = admit(p, endpoint, tenant_in_path.as_deref()) {
            return refuse(state, endpoint, Some(p), err, source_ip, first_param).await;
        }
    }
    if let Some(p) = &principal {
        parts.extensions.insert(p.clone());
    }
    let response = next.run(Request::from_parts(parts, body)).await;
    let outcome = Outcome::of(&response);
    record(
        state,
        endpoint,
        principal.as_ref(),
        outcome,
        source_ip,
        first_param,
    )
    .await;
    response
}

/// Answers a refused call, auditing it when the endpoint mutates.
async fn refuse(
    state: &AppState,
    endpoint: &Endpoint,
    principal: Option<&Principal>,
    err: ApiError,
    source_ip: Option<String>,
    first_param: Option<String>,
) -> Response {
    let response = err.into_response();
    let outcome = Outcome::of(&response);
    record(state, endpoint, principal, outcome, source_ip, first_param).await;
    response
}

/// 401 without a valid token (public endpoints need none).
fn authenticate(
    state: &AppState,
    endpoint: &Endpoint,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    if endpoint.access == Access::Public {
        return Ok(None);
    }
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthenticated("missing Authorization: Bearer <token>".into()))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthenticated("Authorization must be `Bearer <token>`".into())
        })?;
    state
        .keys()
        .verify(token)
        .map(Some)
        .map_err(|e| ApiError::Unauthenticated(e.to_string()))
}

/// 404 for a path naming another tenant (checked before the role, so nothing about other
/// tenants leaks); 403 for a role the endpoint does not admit.
fn admit(
    principal: &Principal,
    endpoint: &Endpoint,
    tenant_in_path: Option<&str>,
) -> Result<(), ApiError> {
    if let Some(tenant) = tenant_in_path {
        if !principal.sees_tenant(tenant) {
            return Err(ApiError::not_found("tenant", tenant));
        }
    }
    let platform_only = endpoint.access == Access::PlatformRead;
    if !endpoint.access.admits(principal.role)
        || (platform_only && principal.tenant_scope().is_some())
    {
        return Err(ApiError::forbidden(format!(
            "role {} may not call {} (allowed: {})",
            principal.role.as_str(),
            endpoint.operation,
            endpoint.access.describe()
        )));
    }
    Ok(())
}

/// What the audit entry needs from a response (the response itself is not `Sync`).
struct Outcome {
    status: axum::http::StatusCode,
    target: AuditTarget,
}

impl Outcome {
    fn of(response: &Response) -> Self {
        Self {
            status: response.status(),
            target: response
                .extensions()
                .get::<AuditTarget>()
                .cloned()
                .unwrap_or_default(),
        }
    }
}

async fn record(
    state: &AppState,
    endpoint: &Endpoint,
    principal: Option<&Principal>,
    outcome: Outcome,
    source_ip: Option<String>,
    first_param: Option<String>,
) {
    if !endpoint.is_mutation() || !endpoint.audited {
        return;
    }
    let Outcome { status, target } = outcome;
    let entry = NewEntry {
        actor: principal.map_or_else(|| "anonymous".to_owned(), |p| p.subject.clone()),
        role: principal.map(|p| p.role.as_str().to_owned()),
        tenant_id: target
            .tenant_id
            .or_else(|| principal.and_then(|p| p.tenant_id.clone())),
        action: endpoint.operation.clone(),
        resource_type: Some(endpoint.resource.clone()),
        resource_id: target.resource_id.or(first_param),
        outcome: if status.is_success() {
            "success"
        } else {
            "failure"
        }
        .to_owned(),
        status_code: status.as_u16(),
        request_id: request_id::current(),
        source_ip,
        details: target.details,
    };
    if let Err(err) = audit::append(state.store(), entry).await {
        tracing::error!(error = %err, action = %endpoint.operation, "audit entry could not be written");
    }
}

/// Handlers take the caller as an argument; the guard has already verified it.
impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthenticated("this endpoint needs a bearer token".into()))
    }
}
