//! Routes of API §8: CRUD from the generic resource layer, the certificate, the verification
//! check, and the per-tenant list.

use axum::extract::State;
use axum::response::Response;
use axum::Json;

use super::model::Domain;
use super::verify;
use crate::api::extract::{ApiPath, ApiQuery};
use crate::api::pagination::Page;
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, crud_routes, ListQuery, Resource, Scope};
use crate::state::AppState;
use crate::store;
use crate::tenants;

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    super::certificate::routes(crud_routes::<Domain>(api))
        .add(
            Endpoint::post(
                "/api/domains/{id}/verify",
                "domains.verify",
                "Check the domain's DNS TXT record or HTTP token now; the answer has the outcome",
            )
            .access(Access::TenantWrite)
            .resource(Domain::KIND)
            .response::<Domain>(),
            verify_now,
        )
        .add(
            Endpoint::get(
                "/api/tenants/{tenantId}/domains",
                "domains.list_tenant",
                "List one tenant's domains",
            )
            .resource(Domain::KIND)
            .query::<ListQuery>()
            .response::<Page<Domain>>(),
            list_tenant,
        )
}

/// Runs the check, then records its outcome (200 either way: `status` and `last_error` say
/// how it went). Only a verified domain enters the snapshot.
async fn verify_now(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    let domain = resource::visible(
        &principal,
        resource::load::<Domain>(state.store(), &id).await?,
        &id,
    )?
    .value;
    let outcome = verify::check(&state.settings().api, &domain).await;
    let now = store::now();
    let token = domain.verification.token.clone();
    let domain = resource::mutate::<Domain, _>(state.store(), &principal, &id, |d| {
        // The check proved the token it read; a token changed meanwhile proves nothing.
        let outcome = if d.verification.token == token {
            outcome.clone()
        } else {
            Err("the domain changed during the check; verify again".into())
        };
        d.record_check(outcome, &now);
        Ok(())
    })
    .await?;
    let details = serde_json::json!({
        "method": domain.verification.method,
        "status": domain.status,
    });
    Ok(AuditTarget::new(&id, Some(&domain.tenant_id))
        .with_details(details)
        .attach(Json(domain)))
}

async fn list_tenant(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(tenant_id): ApiPath<String>,
    ApiQuery(mut q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Domain>>> {
    if q.tenant_id.as_deref().is_some_and(|t| t != tenant_id) {
        return Err(ApiError::invalid(
            "tenant_id",
            "must be omitted or equal the tenant of the path",
        ));
    }
    tenants::ensure_exists(state.store(), &tenant_id).await?;
    q.tenant_id = Some(tenant_id);
    let (page, size) = q.paging()?;
    let filter = q.filter(&principal, Scope::Tenant)?;
    Ok(Json(
        resource::list::<Domain>(state.store(), &filter, page, size).await?,
    ))
}
