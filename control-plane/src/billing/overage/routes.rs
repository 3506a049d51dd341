//! `/api/billing/overages`: rules (settings), crossing records, and the evaluation that
//! notifies. Platform admins configure and trigger; every role reads (tenant roles their own
//! tenant's records and the rules that apply to it). Mutations are audited by the guard.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::evaluate::{evaluate_tenant, record_of, OverageRecord, RECORD_COLUMNS};
use super::rules::{self, OverageRule, OverageRuleInput};
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::billing::invoices::period::parse_month;
use crate::error::ApiResult;
use crate::resource;
use crate::state::AppState;
use crate::store::filter::Where;
use crate::tenants::{self, Tenant};
use crate::validate;

const SETTINGS: &str = "/api/billing/overages/settings";

/// Query of `GET /api/billing/overages/settings`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    /// The rules that apply to this tenant: its own and the platform defaults.
    pub tenant_id: Option<String>,
}

/// Query of `GET /api/billing/overages`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordQuery {
    pub page: Option<u32>,
    pub page_size: Option<u32>,
    pub tenant_id: Option<String>,
    pub rule_id: Option<String>,
    /// `YYYY-MM`.
    pub period: Option<String>,
    /// Percent.
    pub threshold: Option<i64>,
}

/// Body of `POST /api/billing/overages/notify`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyRequest {
    /// One tenant; absent evaluates every tenant.
    pub tenant_id: Option<String>,
    /// `YYYY-MM` in each tenant's time zone; default the current month.
    pub period: Option<String>,
}

/// What a notify call recorded.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NotifyResult {
    pub evaluated_tenants: u64,
    /// Crossings this call recorded and notified (empty when others did it first).
    pub notified: Vec<OverageRecord>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::post(
            SETTINGS,
            "billing.overages.settings.set",
            "Create or replace an overage rule",
        )
        .access(Access::PlatformAdmin)
        .resource("overage_rule")
        .status(201)
        .also_status(200)
        .request::<OverageRuleInput>()
        .response::<OverageRule>(),
        set_rule,
    )
    .add(
        Endpoint::get(
            SETTINGS,
            "billing.overages.settings.list",
            "List overage rules",
        )
        .access(Access::Read)
        .resource("overage_rule")
        .query::<RuleQuery>()
        .response::<Page<OverageRule>>(),
        list_rules,
    )
    .add(
        Endpoint::get(
            "/api/billing/overages",
            "billing.overages.list",
            "List overage records",
        )
        .access(Access::Read)
        .resource("overage_record")
        .query::<RecordQuery>()
        .response::<Page<OverageRecord>>(),
        list_records,
    )
    .add(
        Endpoint::post(
            "/api/billing/overages/notify",
            "billing.overages.notify",
            "Evaluate usage against overage rules and notify new crossings",
        )
        .access(Access::PlatformAdmin)
        .resource("overage_record")
        .request::<NotifyRequest>()
        .response::<NotifyResult>(),
        notify,
    )
}

async fn set_rule(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<OverageRuleInput>,
) -> ApiResult<Response> {
    let input = input.normalize()?;
    if let Some(t) = &input.tenant_id {
        tenants::ensure_exists(state.store(), t).await?;
    }
    let mut tx = state.store().begin().await?;
    let (rule, created) = rules::upsert(&mut tx, &input).await?;
    // A changed allowance or mode can lift or impose a hard cap on the data plane.
    crate::store::bump_config_version(&mut tx).await?;
    tx.commit().await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let target = AuditTarget::new(&rule.id, rule.tenant_id.as_deref()).with_details(
        serde_json::json!({ "created": created, "metric": rule.metric, "mode": rule.mode,
                            "thresholds": rule.thresholds }),
    );
    Ok(target.attach((status, Json(rule))))
}

async fn list_rules(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<RuleQuery>,
) -> ApiResult<Json<Page<OverageRule>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let tenant = principal.tenant_filter(q.tenant_id)?;
    if let Some(t) = &tenant {
        validate::plain_id("tenant_id", t, 128)?;
    }
    let all = rules::list(
        &mut *state.store().reader().acquire().await?,
        tenant.as_deref(),
    )
    .await?;
    let total = u64::try_from(all.len()).unwrap_or_default();
    let skip = usize::try_from(u64::from(page - 1) * u64::from(size)).unwrap_or(usize::MAX);
    let items = all.into_iter().skip(skip).take(size as usize).collect();
    Ok(Json(Page {
        items,
        total,
        page,
        page_size: size,
    }))
}

async fn list_records(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<RecordQuery>,
) -> ApiResult<Json<Page<OverageRecord>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let tenant = principal.tenant_filter(q.tenant_id)?;
    if let Some(p) = &q.period {
        parse_month("period", p)?;
    }
    let mut w = Where::new();
    w.eq_text("tenant_id", tenant.as_deref())
        .eq_text("rule_id", q.rule_id.as_deref())
        .eq_text("period", q.period.as_deref())
        .eq_int("threshold", q.threshold);
    let total: i64 = w
        .bind_scalar(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM overage_records WHERE {}",
            w.sql()
        )))
        .fetch_one(state.store().reader())
        .await?;
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM overage_records WHERE {} \
         ORDER BY crossed_at DESC, id DESC LIMIT {size} OFFSET {}",
        w.sql(),
        u64::from(page - 1) * u64::from(size)
    );
    let rows = w
        .bind(sqlx::query(&sql))
        .fetch_all(state.store().reader())
        .await?;
    Ok(Json(Page {
        items: rows.iter().map(record_of).collect::<ApiResult<_>>()?,
        total: u64::try_from(total).unwrap_or_default(),
        page,
        page_size: size,
    }))
}

async fn notify(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<NotifyRequest>,
) -> ApiResult<Response> {
    if let Some(p) = &req.period {
        parse_month("period", p)?;
    }
    let tenant_ids: Vec<String> = match &req.tenant_id {
        Some(t) => {
            validate::plain_id("tenant_id", t, 128)?;
            vec![tenants::ensure_exists(state.store(), t).await?.id]
        }
        None => resource::load_all::<Tenant>(state.store())
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect(),
    };
    let now = chrono::Utc::now();
    let mut notified = Vec::new();
    for tenant_id in &tenant_ids {
        let mut tx = state.store().begin().await?;
        let mut recorded = evaluate_tenant(&mut tx, tenant_id, now, req.period.as_deref()).await?;
        tx.commit().await?;
        notified.append(&mut recorded);
    }
    let details = serde_json::json!({
        "evaluated_tenants": tenant_ids.len(),
        "notified": notified.iter().map(|r| &r.id).collect::<Vec<_>>(),
    });
    let target = AuditTarget {
        resource_id: req.tenant_id.clone(),
        tenant_id: req.tenant_id.clone(),
        details: Some(details),
    };
    let result = NotifyResult {
        evaluated_tenants: u64::try_from(tenant_ids.len()).unwrap_or_default(),
        notified,
    };
    Ok(target.attach(Json(result)))
}
