//! Routes of API §5.3: redemption and recharge history.
//!
//! `POST /api/recharge` credits the caller's tenant (a tenant admin's own; a platform admin
//! names one). Every call is audited by the API guard, success and failure alike; the entry
//! names the tenant and, on success, the card, never the code. The audit details of a
//! failure do not say why a code failed, since tenant admins may read their own audit
//! trail and it must not become the oracle the uniform `invalid_code` answer avoids.

use axum::extract::State;
use axum::response::Response;
use axum::Json;

use super::history::{self, RechargeHistoryQuery, RechargeRecord};
use super::keys::CardKeys;
use super::redeem::{self, RedeemRequest, Redeemed};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::Page;
use crate::api::ClientIp;
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource;
use crate::state::AppState;
use crate::tenants;

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::post(
            "/api/recharge",
            "recharge.redeem",
            "Redeem a recharge card for a tenant (exactly once; 422 invalid_code for any code \
             that cannot be redeemed; 429 after too many failures)",
        )
        .access(Access::TenantWrite)
        .resource("recharge_card")
        .request::<RedeemRequest>()
        .response::<Redeemed>(),
        redeem_card,
    )
    .add(
        Endpoint::get(
            "/api/recharge/history",
            "recharge.history",
            "Recharge history (tenant roles: their own tenant)",
        )
        .resource("recharge_card")
        .query::<RechargeHistoryQuery>()
        .response::<Page<RechargeRecord>>(),
        list_history,
    )
    .add(
        Endpoint::get(
            "/api/recharge/history/{tenantId}",
            "recharge.history_tenant",
            "One tenant's recharge history",
        )
        .resource("recharge_card")
        .query::<RechargeHistoryQuery>()
        .response::<Page<RechargeRecord>>(),
        tenant_history,
    )
}

async fn redeem_card(
    State(state): State<AppState>,
    principal: Principal,
    ClientIp(client_ip): ClientIp,
    ApiJson(input): ApiJson<RedeemRequest>,
) -> ApiResult<Response> {
    let tenant_id = resource::owning_tenant(&principal, input.tenant_id)?;
    let tenant = tenants::ensure_exists(state.store(), &tenant_id).await?;
    let outcome = async {
        tenants::refuse_terminated(&tenant, "redeem recharge cards")?;
        let code = redeem::parse_code(&input.code)?;
        let keys = CardKeys::from_settings(state.settings())?;
        redeem::redeem(
            state.store(),
            &keys,
            &tenant,
            code,
            client_ip,
            &principal.subject,
        )
        .await
    }
    .await;
    Ok(match outcome {
        Ok(done) => {
            let details = serde_json::json!({
                "code_hint": done.code_hint,
                "amount_minor": done.amount_minor,
                "currency": done.currency,
                "ledger_entry_id": done.ledger_entry_id,
                "client_ip": client_ip.map(|ip| ip.to_string()),
            });
            AuditTarget::new(&done.card_id, Some(&tenant.id))
                .with_details(details)
                .attach(Json(done))
        }
        Err(err) => {
            let details = serde_json::json!({
                "client_ip": client_ip.map(|ip| ip.to_string()),
            });
            AuditTarget {
                resource_id: None,
                tenant_id: Some(tenant.id.clone()),
                details: Some(details),
            }
            .attach(err)
        }
    })
}

async fn list_history(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<RechargeHistoryQuery>,
) -> ApiResult<Json<Page<RechargeRecord>>> {
    let tenant = principal.tenant_filter(q.tenant_id.clone())?;
    Ok(Json(history::page(state.store(), tenant, &q).await?))
}

async fn tenant_history(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RechargeHistoryQuery>,
) -> ApiResult<Json<Page<RechargeRecord>>> {
    if q.tenant_id.as_deref().is_some_and(|t| t != tenant_id) {
        return Err(ApiError::invalid(
            "tenant_id",
            "must be omitted or equal the tenant of the path",
        ));
    }
    // The guard already answered 404 to a tenant role naming another tenant.
    principal.check_tenant(Some(&tenant_id), "tenant", &tenant_id)?;
    tenants::ensure_exists(state.store(), &tenant_id).await?;
    Ok(Json(
        history::page(state.store(), Some(tenant_id), &q).await?,
    ))
}
