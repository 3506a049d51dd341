//! `--demo`: a demo tenant with a plan and configuration, and the tokens to try it with,
//! written to `<data-dir>/demo-credentials.json`.

use std::time::Duration;

use medgate_config::TenantStatus;
use serde::Serialize;

use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Crud};
use crate::state::AppState;
use crate::tenants::{PlanQuotasInput, Tenant, TenantCreate, TenantPlan, TenantPlanInput};

pub const DEMO_TENANT_CODE: &str = "demo-clinic";
pub const DEMO_PLAN_NAME: &str = "demo";

/// What `demo-credentials.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct DemoCredentials {
    pub admin_token: String,
    pub tenant_id: String,
    pub tenant_admin_token: String,
    pub api_url: String,
    pub docs_url: String,
}

/// Seeds the demo data once (idempotent across restarts) and mints fresh tokens.
pub async fn seed(state: &AppState, token_ttl: Duration) -> ApiResult<DemoCredentials> {
    let store = state.store();
    let platform = crate::auth::Principal {
        subject: "demo-seed".into(),
        role: Role::PlatformAdmin,
        tenant_id: None,
    };
    let plan = match resource::load_by_unique::<TenantPlan>(store, DEMO_PLAN_NAME).await? {
        Some(p) => p.value,
        None => {
            let mut plan = TenantPlan::build(
                crate::store::new_id("plan"),
                TenantPlanInput {
                    name: DEMO_PLAN_NAME.into(),
                    description: Some("Demo plan: generous limits for trying medgate".into()),
                    quotas: PlanQuotasInput {
                        requests_per_minute: Some(600),
                        tokens_per_minute: Some(200_000),
                        monthly_tokens: Some(50_000_000),
                        max_api_keys: Some(20),
                    },
                    allowed_models: vec![],
                    included_credit_minor: 10_000,
                    monthly_price_minor: 0,
                    currency: Some("CNY".into()),
                    included_tokens: None,
                    overage_per_1k_micros: None,
                },
                &platform,
            )?;
            let mut tx = store.begin().await?;
            resource::insert(&mut tx, &mut plan).await?;
            tx.commit().await?;
            plan
        }
    };
    let tenant = match resource::load_by_unique::<Tenant>(store, DEMO_TENANT_CODE).await? {
        Some(t) => t.value,
        None => {
            let mut tenant = Tenant::build(
                crate::store::new_id("tnt"),
                TenantCreate {
                    name: "Demo Clinic".into(),
                    code: DEMO_TENANT_CODE.into(),
                    contact: crate::tenants::Contact {
                        name: Some("Demo Operator".into()),
                        email: Some("ops@demo-clinic.example".into()),
                        phone: None,
                    },
                    plan_id: Some(plan.id.clone()),
                    timezone: Some("Asia/Shanghai".into()),
                    currency: Some("CNY".into()),
                },
                &platform,
            )?;
            tenant.status = TenantStatus::Active;
            tenant.activated_at = Some(crate::store::now());
            tenant.config.notification_email = Some("ops@demo-clinic.example".into());
            let mut tx = store.begin().await?;
            resource::insert(&mut tx, &mut tenant).await?;
            tx.commit().await?;
            tenant
        }
    };
    let keys = state.keys();
    let mint = |subject: &str, role: Role, tenant: Option<&str>| {
        keys.issue(subject, role, tenant, token_ttl)
            .map_err(|e| ApiError::internal(e.to_string()))
    };
    let api_url = state.settings().api_url();
    Ok(DemoCredentials {
        admin_token: mint("demo-admin", Role::PlatformAdmin, None)?,
        tenant_admin_token: mint("demo-tenant-admin", Role::TenantAdmin, Some(&tenant.id))?,
        tenant_id: tenant.id,
        docs_url: format!("{api_url}/api/docs"),
        api_url,
    })
}

/// The demo model's name (the built-in mock upstream echoes what it is sent).
pub const DEMO_MODEL: &str = "mock-echo";

/// Points the demo model at `upstream_url` (the mock started by this process, whose port
/// changes at every start) and issues a fresh API key for the demo tenant, revoking the demo
/// keys of earlier starts. Returns the key's plaintext.
pub async fn seed_inference(
    state: &AppState,
    tenant_id: &str,
    upstream_url: &str,
) -> ApiResult<String> {
    use crate::keys::{ApiKey, ApiKeyCreate, KeyStatus};
    use crate::models::{Model, ModelInput, UpstreamInput};

    let store = state.store();
    let input = ModelInput {
        name: DEMO_MODEL.into(),
        display_name: Some("Mock echo model (demo)".into()),
        provider: Default::default(),
        upstreams: vec![UpstreamInput {
            url: upstream_url.into(),
            weight: Some(1),
            api_key: Some(None),
            pool: None,
            max_concurrency: None,
            ca_pem: None,
        }],
        upstream_model: None,
        connect_timeout_ms: Some(2_000),
        read_timeout_ms: Some(60_000),
        pricing: Default::default(),
        enabled: Some(true),
        available_to_all_tenants: Some(true),
        parameters: None,
    };
    let mut tx = store.begin().await?;
    match resource::load_by_unique_tx::<Model>(&mut tx, DEMO_MODEL).await? {
        Some(mut stored) => {
            stored.value = input.into_model(stored.value.id.clone(), Some(&stored.value))?;
            resource::replace(&mut tx, &mut stored).await?;
        }
        None => {
            let mut model = input.into_model(crate::store::new_id("mdl"), None)?;
            resource::insert(&mut tx, &mut model).await?;
        }
    }
    crate::keys::lock_all(&mut tx, tenant_id).await?;
    for mut old in
        resource::load_for_tenant_tx::<ApiKey>(&mut tx, tenant_id, Some(KeyStatus::Active.as_str()))
            .await?
    {
        if old.value.name == "demo" {
            old.value.revoke()?;
            resource::replace(&mut tx, &mut old).await?;
        }
    }
    let (mut key, plaintext) = ApiKey::issue(
        tenant_id.to_owned(),
        ApiKeyCreate {
            tenant_id: None,
            name: "demo".into(),
            expires_at: None,
            allowed_models: vec![],
        },
        None,
    );
    resource::insert(&mut tx, &mut key).await?;
    tx.commit().await?;
    seed_money(state, tenant_id).await?;
    Ok(plaintext)
}

/// Prices the demo model and puts the demo tenant on a prepaid balance of 100.00 CNY, once:
/// inference through the proxy then shows up in `/api/tenants/{id}/balance` and
/// `/api/balance/transactions`, and a spent balance gets 402.
async fn seed_money(state: &AppState, tenant_id: &str) -> ApiResult<()> {
    use crate::billing::{balance, ledger, rates};
    use crate::models::Model;

    let store = state.store();
    let Some(model) = resource::load_by_unique::<Model>(store, DEMO_MODEL).await? else {
        return Ok(());
    };
    if !rates::snapshot_entries(store)
        .await?
        .contains_key(&model.value.id)
    {
        // 0.1 fen per 1k input tokens, 0.2 per 1k output, 0.01 fen per request.
        rates::append(
            store,
            vec![rates::RateInput {
                model_id: model.value.id.clone(),
                currency: Some("CNY".into()),
                input_per_1k_micros: 100_000,
                output_per_1k_micros: 200_000,
                per_request_micros: 10_000,
                effective_from: None,
            }],
            "demo",
        )
        .await?;
    }
    let mut tx = store.begin().await?;
    if ledger::read_balance(&mut tx, tenant_id).await?.is_none() {
        ledger::set_overdraft(&mut tx, tenant_id, "CNY", Some(0)).await?;
    }
    tx.commit().await?;
    balance::adjust(
        store,
        balance::AdjustInput {
            tenant_id: tenant_id.to_owned(),
            amount_minor: 10_000,
            currency: Some("CNY".into()),
            reason: "demo funds".into(),
            force: false,
        },
        "demo-funds",
        "demo",
    )
    .await?;
    Ok(())
}
