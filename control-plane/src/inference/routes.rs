//! `POST /api/internal/usage` (data-plane nodes), `GET /api/inference/history` and
//! `GET /api/inference/history/{tenantId}`.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use medgate_config::{UsageAck, UsageBatch};

use super::history::{self, HistoryQuery, InferenceRecord};
use super::ingest;
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Body limit of usage batches: 10 000 events of up to ~3 KiB each.
const USAGE_BODY_LIMIT: usize = 32 * 1024 * 1024;

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::post(
            "/api/internal/usage",
            "internal.usage",
            "Ingest a batch of usage events (idempotent by request id)",
        )
        .access(Access::Node)
        .resource("usage_event")
        .request::<UsageBatch>()
        .response::<UsageAck>()
        .max_body(USAGE_BODY_LIMIT),
        ingest_batch,
    )
    .add(
        Endpoint::get(
            "/api/inference/history",
            "inference.history",
            "List inference requests (newest first)",
        )
        .resource("usage_event")
        .query::<HistoryQuery>()
        .response::<Page<InferenceRecord>>(),
        list,
    )
    .add(
        Endpoint::get(
            "/api/inference/history/{tenantId}",
            "inference.history_tenant",
            "List one tenant's inference requests (newest first)",
        )
        .resource("usage_event")
        .query::<HistoryQuery>()
        .response::<Page<InferenceRecord>>(),
        list_tenant,
    )
}

async fn ingest_batch(
    State(state): State<AppState>,
    ApiJson(batch): ApiJson<UsageBatch>,
) -> ApiResult<Response> {
    let (events, repeated) = ingest::prepare(batch)?;
    let ack = ingest::ingest(state.store(), &events, repeated).await?;
    if ack.inserted > 0 {
        let tenants: std::collections::BTreeSet<String> =
            events.iter().map(|e| e.tenant_id.clone()).collect();
        crate::billing::overage::after_ingest::schedule(&state, tenants);
    }
    let counted = &state.metrics().usage_events;
    counted
        .with_label_values(&["inserted"])
        .inc_by(ack.inserted);
    counted
        .with_label_values(&["duplicate"])
        .inc_by(ack.duplicates);
    let target = AuditTarget {
        details: Some(serde_json::json!({
            "inserted": ack.inserted,
            "duplicates": ack.duplicates,
        })),
        ..AuditTarget::default()
    };
    Ok(target.attach(Json(ack)))
}

async fn list(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(mut q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Page<InferenceRecord>>> {
    q.tenant_id = principal.tenant_filter(q.tenant_id.take())?;
    respond(&state, &q).await
}

/// The guard has already answered 404 to callers of other tenants.
async fn list_tenant(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(mut q): ApiQuery<HistoryQuery>,
) -> ApiResult<Json<Page<InferenceRecord>>> {
    if q.tenant_id.as_deref().is_some_and(|t| t != tenant_id) {
        return Err(ApiError::invalid(
            "tenant_id",
            "must be omitted or equal the tenant of the path",
        ));
    }
    q.tenant_id = Some(tenant_id);
    respond(&state, &q).await
}

async fn respond(state: &AppState, q: &HistoryQuery) -> ApiResult<Json<Page<InferenceRecord>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let (items, total) = history::page(state.store(), q, page, size).await?;
    Ok(Json(Page {
        items,
        total,
        page,
        page_size: size,
    }))
}
