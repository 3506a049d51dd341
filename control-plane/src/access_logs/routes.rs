//! `POST /api/internal/access-logs` (data-plane nodes), `GET /api/access-logs` and
//! `GET /api/access-logs/{tenantId}`.

use axum::extract::State;
use axum::Json;
use medgate_config::{AccessLogBatch, AccessLogEntry, UsageAck};

use super::ingest;
use super::query::{self, AccessLogQuery};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Body limit of access-log batches: 10 000 entries of up to ~3 KiB each.
const BODY_LIMIT: usize = 32 * 1024 * 1024;

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::post(
            "/api/internal/access-logs",
            "internal.access_logs",
            "Ingest a batch of access-log entries (idempotent by request id)",
        )
        .access(Access::Node)
        .resource("access_log")
        .request::<AccessLogBatch>()
        .response::<UsageAck>()
        .max_body(BODY_LIMIT)
        .unaudited(),
        ingest_batch,
    )
    .add(
        Endpoint::get(
            "/api/access-logs",
            "access_logs.list",
            "List access-log entries (newest first; never bodies, keys or query strings)",
        )
        .resource("access_log")
        .query::<AccessLogQuery>()
        .response::<Page<AccessLogEntry>>(),
        list,
    )
    .add(
        Endpoint::get(
            "/api/access-logs/{tenantId}",
            "access_logs.list_tenant",
            "List one tenant's access-log entries (newest first)",
        )
        .resource("access_log")
        .query::<AccessLogQuery>()
        .response::<Page<AccessLogEntry>>(),
        list_tenant,
    )
}

async fn ingest_batch(
    State(state): State<AppState>,
    ApiJson(batch): ApiJson<AccessLogBatch>,
) -> ApiResult<Json<UsageAck>> {
    let received = u64::try_from(batch.events.len()).unwrap_or(u64::MAX);
    let mut entries = ingest::prepare(batch)?;
    // Log sampling (system settings): successful requests beyond the configured fraction are
    // acknowledged but not stored; errors always are.
    let sampling = crate::settings::general::load(state.store())
        .await?
        .log_sampling;
    let before = entries.len();
    entries
        .retain(|e| crate::settings::general::keep_access_log(&e.request_id, e.status, sampling));
    let sampled_out = u64::try_from(before - entries.len()).unwrap_or_default();
    let inserted = ingest::ingest(state.store(), &entries).await?;
    state.metrics().access_log_entries.inc_by(inserted);
    Ok(Json(UsageAck {
        inserted,
        duplicates: received.saturating_sub(inserted + sampled_out),
    }))
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(mut q): ApiQuery<AccessLogQuery>,
) -> ApiResult<Json<Page<AccessLogEntry>>> {
    q.tenant_id = principal.tenant_filter(q.tenant_id.take())?;
    respond(&state, &q).await
}

/// The guard has already answered 404 to callers of other tenants.
async fn list_tenant(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(mut q): ApiQuery<AccessLogQuery>,
) -> ApiResult<Json<Page<AccessLogEntry>>> {
    if q.tenant_id.as_deref().is_some_and(|t| t != tenant_id) {
        return Err(ApiError::invalid(
            "tenant_id",
            "must be omitted or equal the tenant of the path",
        ));
    }
    q.tenant_id = Some(tenant_id);
    respond(&state, &q).await
}

async fn respond(state: &AppState, q: &AccessLogQuery) -> ApiResult<Json<Page<AccessLogEntry>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let (items, total) = query::page(state.store(), q, page, size).await?;
    Ok(Json(Page {
        items,
        total,
        page,
        page_size: size,
    }))
}
