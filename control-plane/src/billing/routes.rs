//! Routes of API §2.1 (usage reports), §2.2 (billing plans and rates), the balance routes
//! ([`super::balance_routes`]) and the internal balance feed:
//!
//! * `GET`/`PUT /api/billing/rates`: everyone authenticated reads; platform admins append.
//! * `/api/billing/plans` (`GET`, `POST`, `GET`/`PUT`/`DELETE /{id}`): the tenant plans
//!   (`/api/tenant-plans`), the same resource at a second address.
//! * `GET /api/billing/usage[/{tenantId}[/daily|/models]]`: tenant roles see their own tenant.
//! * `GET /api/internal/balances`: the data plane's balance feed (node token).

use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use medgate_config::FundsFeed;

use super::feed::{self, FeedQuery};
use super::rates::{self, ModelRate, RatesQuery, RatesUpdate};
use super::usage::{
    self, DailyUsageReport, ModelUsageReport, TenantUsage, TenantUsageReport, UsageQuery,
};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::crud_routes_at;
use crate::state::AppState;
use crate::tenants::{self, TenantPlan};

/// Every billing route of this module.
pub fn routes(api: ApiBuilder) -> ApiBuilder {
    let api = crud_routes_at::<TenantPlan>(api, "/api/billing/plans", "billing_plans");
    let api = super::balance_routes::routes(api);
    let api = api
        .add(
            Endpoint::get(
                "/api/billing/rates",
                "billing.rates",
                "Model rates in force (or one model's history)",
            )
            .resource("model_rate")
            .query::<RatesQuery>()
            .response::<Page<ModelRate>>(),
            list_rates,
        )
        .add(
            Endpoint::put(
                "/api/billing/rates",
                "billing.update_rates",
                "Append new rate versions (effective now or later)",
            )
            .access(Access::PlatformAdmin)
            .resource("model_rate")
            .request::<RatesUpdate>()
            .response::<Vec<ModelRate>>(),
            update_rates,
        )
        .add(
            Endpoint::get(
                "/api/billing/usage",
                "billing.usage",
                "Usage per tenant and currency",
            )
            .resource("usage_event")
            .query::<UsageQuery>()
            .response::<Page<TenantUsage>>(),
            usage_all,
        )
        .add(
            Endpoint::get(
                "/api/internal/balances",
                "internal.balances",
                "Balance feed of gated tenants (long-poll with ?after=)",
            )
            .access(Access::Node)
            .resource("tenant_balance")
            .query::<FeedQuery>()
            .response::<FundsFeed>(),
            balances_feed,
        );
    api.add(
        tenant_report("", "billing.usage_tenant", "One tenant's usage totals")
            .response::<TenantUsageReport>(),
        usage_tenant,
    )
    .add(
        tenant_report(
            "/daily",
            "billing.usage_daily",
            "One tenant's usage per day (in the tenant's timezone)",
        )
        .response::<DailyUsageReport>(),
        usage_daily,
    )
    .add(
        tenant_report(
            "/models",
            "billing.usage_models",
            "One tenant's usage per model",
        )
        .response::<ModelUsageReport>(),
        usage_models,
    )
}

/// The declaration shared by the per-tenant usage reports.
fn tenant_report(suffix: &str, operation: &str, summary: &str) -> Endpoint {
    Endpoint::get(
        format!("/api/billing/usage/{{tenantId}}{suffix}"),
        operation,
        summary,
    )
    .resource("usage_event")
    .query::<UsageQuery>()
}

async fn list_rates(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<RatesQuery>,
) -> ApiResult<Json<Page<ModelRate>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    Ok(Json(rates::list(state.store(), &q, page, size).await?))
}

async fn update_rates(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<RatesUpdate>,
) -> ApiResult<Response> {
    let created = rates::append(state.store(), body.rates, &principal.subject).await?;
    let ids: Vec<&str> = created.iter().map(|r| r.id.as_str()).collect();
    let target = AuditTarget::default().with_details(serde_json::json!({
        "rate_ids": ids,
        "models": created.iter().map(|r| r.model_id.as_str()).collect::<Vec<_>>(),
    }));
    Ok(target.attach(Json(created)))
}

async fn usage_all(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<Page<TenantUsage>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let tenant = principal.tenant_filter(q.tenant_id.clone())?;
    Ok(Json(
        usage::per_tenant(state.store(), &q, tenant.as_deref(), page, size).await?,
    ))
}

/// The tenant of a per-tenant report (the guard has already answered 404 to callers of other
/// tenants): it must exist, and the query may not name another one.
async fn report_tenant(
    state: &AppState,
    tenant_id: &str,
    q: &UsageQuery,
) -> ApiResult<tenants::Tenant> {
    if q.tenant_id.as_deref().is_some_and(|t| t != tenant_id) {
        return Err(ApiError::invalid(
            "tenant_id",
            "must be omitted or equal the tenant of the path",
        ));
    }
    if q.page.is_some() || q.page_size.is_some() {
        return Err(ApiError::invalid(
            "page",
            "this report is not paginated (it has one entry per day, model or currency)",
        ));
    }
    tenants::ensure_exists(state.store(), tenant_id).await
}

async fn usage_tenant(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<TenantUsageReport>> {
    report_tenant(&state, &tenant_id, &q).await?;
    Ok(Json(
        usage::tenant_totals(state.store(), &tenant_id, &q).await?,
    ))
}

async fn usage_daily(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<DailyUsageReport>> {
    let tenant = report_tenant(&state, &tenant_id, &q).await?;
    Ok(Json(
        usage::daily(state.store(), &tenant_id, &tenant.timezone, &q).await?,
    ))
}

async fn usage_models(
    State(state): State<AppState>,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<UsageQuery>,
) -> ApiResult<Json<ModelUsageReport>> {
    report_tenant(&state, &tenant_id, &q).await?;
    Ok(Json(usage::per_model(state.store(), &tenant_id, &q).await?))
}

async fn balances_feed(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<FeedQuery>,
) -> ApiResult<Json<FundsFeed>> {
    let wait = Duration::from_secs(q.wait_secs.unwrap_or(0));
    Ok(Json(
        feed::changes(
            state.store(),
            q.after.unwrap_or(0),
            wait,
            state.changes().feed(),
        )
        .await?,
    ))
}
