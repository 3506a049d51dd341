//! Routes of API §5.3 (balance) and §5.4 (adjust, transactions, thresholds), plus the
//! overdraft limit:
//!
//! * `GET /api/tenants/{tenantId}/balance`: any role that sees the tenant.
//! * `PUT /api/tenants/{tenantId}/balance/overdraft`: platform admin.
//! * `POST /api/balance/adjust`: platform admin; header `Idempotency-Key` required; 201 with
//!   the ledger entry, the same body for a replay (header `Idempotent-Replayed: true`).
//! * `GET /api/balance/transactions`: ledger entries and usage debits, newest first.
//! * `POST`/`GET /api/balance/threshold`: tenant admins for their own tenant, platform admins
//!   for any (read: any role that sees the tenant).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::balance::{self, AdjustInput, BalanceView, OverdraftInput};
use super::ledger::LedgerEntry;
use super::thresholds::{self, Threshold, ThresholdInput, ThresholdQuery};
use super::transactions::{self, Transaction, TransactionsQuery};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::Page;
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::ApiResult;
use crate::resource::owning_tenant;
use crate::state::AppState;
use crate::tenants;

/// The header that marks a replayed adjustment.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// A tenant's low-balance threshold (None: not set).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TenantThreshold {
    pub tenant_id: String,
    pub threshold: Option<Threshold>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/tenants/{tenantId}/balance",
            "balance.get",
            "A tenant's balance, overdraft limit, spendable amount and threshold state",
        )
        .resource("tenant_balance")
        .response::<BalanceView>(),
        get_balance,
    )
    .add(
        Endpoint::put(
            "/api/tenants/{tenantId}/balance/overdraft",
            "balance.set_overdraft",
            "Set (or with null remove) a tenant's overdraft limit",
        )
        .access(Access::PlatformAdmin)
        .resource("tenant_balance")
        .request::<OverdraftInput>()
        .response::<BalanceView>(),
        set_overdraft,
    )
    .add(
        Endpoint::post(
            "/api/balance/adjust",
            "balance.adjust",
            "Adjust a tenant's balance (idempotent by the Idempotency-Key header)",
        )
        .access(Access::PlatformAdmin)
        .resource("ledger_entry")
        .request::<AdjustInput>()
        .response::<LedgerEntry>()
        .status(201),
        adjust,
    )
    .add(
        Endpoint::get(
            "/api/balance/transactions",
            "balance.transactions",
            "Balance movements (ledger entries and usage debits), newest first",
        )
        .resource("ledger_entry")
        .query::<TransactionsQuery>()
        .response::<Page<Transaction>>(),
        list_transactions,
    )
    .add(
        Endpoint::post(
            "/api/balance/threshold",
            "balance.set_threshold",
            "Set (or with null remove) a tenant's low-balance threshold",
        )
        .access(Access::TenantWrite)
        .resource("balance_threshold")
        .request::<ThresholdInput>()
        .response::<TenantThreshold>(),
        set_threshold,
    )
    .add(
        Endpoint::get(
            "/api/balance/threshold",
            "balance.get_threshold",
            "A tenant's low-balance threshold",
        )
        .resource("balance_threshold")
        .query::<ThresholdQuery>()
        .response::<TenantThreshold>(),
        get_threshold,
    )
}

/// The guard has already answered 404 to callers of other tenants.
async fn get_balance(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
) -> ApiResult<Json<BalanceView>> {
    tenants::ensure_exists(state.store(), &tenant_id).await?;
    Ok(Json(balance::view(state.store(), &tenant_id).await?))
}

async fn set_overdraft(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
    ApiJson(input): ApiJson<OverdraftInput>,
) -> ApiResult<Response> {
    let view = balance::set_overdraft(state.store(), &tenant_id, input).await?;
    let target = AuditTarget::new(&tenant_id, Some(&tenant_id))
        .with_details(serde_json::json!({ "overdraft_minor": view.overdraft_minor }));
    Ok(target.attach(Json(view)))
}

async fn adjust(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(input): ApiJson<AdjustInput>,
) -> ApiResult<Response> {
    let key = balance::idempotency_key(
        headers
            .get("idempotency-key")
            .map(|v| v.to_str().unwrap_or_default()),
    )?;
    let force = input.force;
    let (entry, replayed) = balance::adjust(state.store(), input, &key, &principal.subject).await?;
    let target =
        AuditTarget::new(&entry.id, Some(&entry.tenant_id)).with_details(serde_json::json!({
            "amount_minor": entry.amount_minor,
            "currency": entry.currency,
            "reason": entry.reason,
            "idempotency_key": key,
            "force": force,
            "replayed": replayed,
        }));
    let mut response = (StatusCode::CREATED, Json(entry)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(target.attach(response))
}

async fn list_transactions(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<TransactionsQuery>,
) -> ApiResult<Json<Page<Transaction>>> {
    let tenant = principal.tenant_filter(q.tenant_id.clone())?;
    Ok(Json(
        transactions::page(state.store(), &q, tenant.as_deref()).await?,
    ))
}

async fn set_threshold(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(input): ApiJson<ThresholdInput>,
) -> ApiResult<Response> {
    let value = thresholds::required(&input)?;
    let tenant_id = owning_tenant(&principal, input.tenant_id)?;
    tenants::ensure_exists(state.store(), &tenant_id).await?;
    let mut tx = state.store().begin().await?;
    let threshold = thresholds::set(&mut tx, &tenant_id, value, &principal.subject).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&tenant_id, Some(&tenant_id))
        .with_details(serde_json::json!({ "threshold_minor": value }));
    Ok(target.attach(Json(TenantThreshold {
        tenant_id,
        threshold,
    })))
}

async fn get_threshold(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<ThresholdQuery>,
) -> ApiResult<Json<TenantThreshold>> {
    let tenant_id = owning_tenant(&principal, q.tenant_id)?;
    tenants::ensure_exists(state.store(), &tenant_id).await?;
    let threshold = thresholds::get(state.store(), &tenant_id).await?;
    Ok(Json(TenantThreshold {
        tenant_id,
        threshold,
    }))
}
