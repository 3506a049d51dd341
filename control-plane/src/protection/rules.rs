//! What the three rule kinds (rate limits, circuit breakers, degradation rules) share: the
//! stored form ([`Stamped`]: the snapshot entry of `medgate_config::protection` plus
//! timestamps), the per-kind behaviour ([`RuleKind`]) and the five endpoints
//! [`rule_routes`] declares for a kind.
//!
//! A rule with `tenant_id` None is a platform rule (it applies to every tenant's traffic):
//! only platform admins see or change it. A rule with a tenant belongs to that tenant: its
//! tenant admins manage it, its viewers read it, and other tenants get a 404, as for routes.
//!
//! The endpoints are declared here rather than through `resource::crud_routes` because a
//! breaker's view carries live state read from the proxies' heartbeats (an async read that
//! `Crud::view` cannot do) and lists filter on each kind's own fields.

use async_trait::async_trait;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Resource, Scope};
use crate::state::AppState;
use crate::store::{self, Store, Tx};

/// A rule as stored and shown: the snapshot entry (flattened) plus timestamps.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "Stored{E}")]
pub struct Stamped<E> {
    #[serde(flatten)]
    pub rule: E,
    pub created_at: String,
    pub updated_at: String,
}

impl<E> Stamped<E> {
    fn new(rule: E) -> Self {
        Self {
            rule,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }
}

/// The query of a rule list: paging and the tenant, besides the kind's own filters.
pub trait RuleQuery: DeserializeOwned + JsonSchema + Send + Sync + 'static {
    fn paging(&self) -> PageQuery;
    /// Only this tenant's rules (platform-wide callers; a tenant's own callers always get
    /// their tenant, and naming another is a 404).
    fn tenant_id(&self) -> Option<&str>;
}

/// What differs between the rule kinds.
#[async_trait]
pub trait RuleKind:
    Serialize + DeserializeOwned + JsonSchema + Clone + Send + Sync + 'static
{
    /// Stored kind, also the audit resource type.
    const KIND: &'static str;
    /// Prefix of generated ids.
    const ID_PREFIX: &'static str;
    /// Human name for messages.
    const LABEL: &'static str;
    /// Collection path, e.g. `/api/rate-limits`.
    const PATH: &'static str;
    /// OpenAPI tag and operation prefix.
    const TAG: &'static str;

    /// Body of create and update (`deny_unknown_fields`); update replaces the whole rule.
    type Input: DeserializeOwned + JsonSchema + Send + 'static;
    type Query: RuleQuery;
    /// What the API returns for one rule.
    type View: Serialize + JsonSchema + Send + 'static;

    fn id(&self) -> &str;
    fn tenant_id(&self) -> Option<&str>;

    /// Takes the body's `tenant_id`: absent is None, `null` is `Some(None)`.
    fn take_tenant(input: &mut Self::Input) -> Option<Option<String>>;

    /// The rule a body describes, checked: a rule breaking its contract is a 400 naming
    /// the field (see [`super::rule_error`]).
    fn from_input(input: Self::Input, id: String, tenant_id: Option<String>) -> ApiResult<Self>;

    /// Whether the rule passes the kind's own list filters.
    fn matches(&self, query: &Self::Query) -> bool;

    /// Checks what the rule names (models, routes, keys) inside the write transaction: an
    /// unknown reference is a 422 naming the field.
    async fn check_references(&self, tx: &mut Tx) -> ApiResult<()>;

    /// The API views of `rules`, in order (one read of live state for a whole page).
    async fn views(store: &Store, rules: Vec<Stamped<Self>>) -> ApiResult<Vec<Self::View>>;
}

impl<E: RuleKind> Resource for Stamped<E> {
    const KIND: &'static str = E::KIND;
    const ID_PREFIX: &'static str = E::ID_PREFIX;
    const LABEL: &'static str = E::LABEL;
    const SCOPE: Scope = Scope::Tenant;
    const AFFECTS_SNAPSHOT: bool = true;

    fn id(&self) -> &str {
        self.rule.id()
    }
    fn tenant_id(&self) -> Option<&str> {
        self.rule.tenant_id()
    }
    fn set_timestamps(&mut self, created_at: &str, updated_at: &str) {
        self.created_at = created_at.to_owned();
        self.updated_at = updated_at.to_owned();
    }
}

/// The owner of a new rule. Tenant callers get their own tenant when they omit `tenant_id`,
/// a 404 for another tenant and a 403 for an explicit `null` (a platform rule); platform
/// admins create a platform rule by omitting it or sending `null`.
fn owner(principal: &Principal, requested: Option<Option<String>>) -> ApiResult<Option<String>> {
    match (principal.tenant_scope(), requested) {
        (Some(_), Some(None)) => Err(ApiError::forbidden(
            "only platform admins manage platform rules (tenant_id null)",
        )),
        (Some(_), requested) => resource::owning_tenant(principal, requested.flatten()).map(Some),
        (None, requested) => Ok(requested.flatten()),
    }
}

/// An update keeps the owner: `tenant_id` is omitted or repeats the rule's own.
fn same_owner(current: Option<&str>, requested: Option<Option<String>>) -> ApiResult<()> {
    match requested {
        Some(t) if t.as_deref() != current => Err(ApiError::invalid(
            "tenant_id",
            "a rule cannot move to another owner; omit it or repeat the rule's own",
        )),
        _ => Ok(()),
    }
}

/// Registers list, create, get, update and delete for the rule kind `E`.
pub fn rule_routes<E: RuleKind>(api: ApiBuilder) -> ApiBuilder {
    let item = format!("{}/{{id}}", E::PATH);
    let op = |verb: &str| format!("{}.{verb}", E::TAG);
    api.add(
        Endpoint::get(E::PATH, op("list"), format!("List {}s", E::LABEL))
            .access(Access::Read)
            .resource(E::KIND)
            .query::<E::Query>()
            .response::<Page<E::View>>(),
        list_handler::<E>,
    )
    .add(
        Endpoint::post(E::PATH, op("create"), format!("Create a {}", E::LABEL))
            .access(Access::TenantWrite)
            .resource(E::KIND)
            .request::<E::Input>()
            .response::<E::View>()
            .status(201),
        create_handler::<E>,
    )
    .add(
        Endpoint::get(&item, op("get"), format!("Get a {}", E::LABEL))
            .access(Access::Read)
            .resource(E::KIND)
            .response::<E::View>(),
        get_handler::<E>,
    )
    .add(
        Endpoint::put(&item, op("update"), format!("Replace a {}", E::LABEL))
            .access(Access::TenantWrite)
            .resource(E::KIND)
            .request::<E::Input>()
            .response::<E::View>(),
        update_handler::<E>,
    )
    .add(
        Endpoint::delete(&item, op("delete"), format!("Delete a {}", E::LABEL))
            .access(Access::TenantWrite)
            .resource(E::KIND),
        delete_handler::<E>,
    )
}

/// Every stored rule of the kind the caller may see, oldest first.
async fn visible_rules<E: RuleKind>(
    store: &Store,
    principal: &Principal,
    tenant: Option<&str>,
) -> ApiResult<Vec<Stamped<E>>> {
    match principal.tenant_filter(tenant.map(str::to_owned))? {
        Some(t) => {
            super::findable("tenant", &t)?;
            resource::load_for_tenant::<Stamped<E>>(store, &t).await
        }
        None => resource::load_all::<Stamped<E>>(store).await,
    }
}

async fn one_view<E: RuleKind>(store: &Store, rule: Stamped<E>) -> ApiResult<E::View> {
    E::views(store, vec![rule])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("a rule view went missing"))
}

async fn list_handler<E: RuleKind>(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(q): ApiQuery<E::Query>,
) -> ApiResult<Json<Page<E::View>>> {
    let (page, size) = q.paging().resolve()?;
    let matching: Vec<Stamped<E>> = visible_rules::<E>(state.store(), &principal, q.tenant_id())
        .await?
        .into_iter()
        .filter(|r| r.rule.matches(&q))
        .collect();
    let total = matching.len() as u64;
    let skip = usize::try_from(u64::from(page - 1) * u64::from(size)).unwrap_or(usize::MAX);
    let items: Vec<Stamped<E>> = matching
        .into_iter()
        .skip(skip)
        .take(size as usize)
        .collect();
    Ok(Json(Page {
        items: E::views(state.store(), items).await?,
        total,
        page,
        page_size: size,
    }))
}

async fn create_handler<E: RuleKind>(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(mut input): ApiJson<E::Input>,
) -> ApiResult<Response> {
    let tenant = owner(&principal, E::take_tenant(&mut input))?;
    match &tenant {
        Some(t) => {
            super::findable("tenant", t)?;
            crate::tenants::ensure_exists(state.store(), t).await?;
        }
        None => principal.require_platform_admin()?,
    }
    let rule = E::from_input(input, store::new_id(E::ID_PREFIX), tenant)?;
    let mut value = Stamped::new(rule);
    let mut tx = state.store().begin().await?;
    value.rule.check_references(&mut tx).await?;
    resource::insert(&mut tx, &mut value).await?;
    tx.commit().await?;
    let target = AuditTarget::new(value.id(), value.tenant_id());
    let view = one_view(state.store(), value).await?;
    Ok(target.attach((StatusCode::CREATED, Json(view))))
}

async fn get_handler<E: RuleKind>(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<E::View>> {
    super::findable(E::KIND, &id)?;
    let stored = resource::load::<Stamped<E>>(state.store(), &id).await?;
    let rule = resource::visible(&principal, stored, &id)?.value;
    Ok(Json(one_view(state.store(), rule).await?))
}

async fn update_handler<E: RuleKind>(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
    ApiJson(mut input): ApiJson<E::Input>,
) -> ApiResult<Response> {
    super::findable(E::KIND, &id)?;
    let mut tx = state.store().begin().await?;
    let loaded = resource::load_tx::<Stamped<E>>(&mut tx, &id).await?;
    let mut stored = resource::visible(&principal, loaded, &id)?;
    let tenant = stored.value.rule.tenant_id().map(str::to_owned);
    same_owner(tenant.as_deref(), E::take_tenant(&mut input))?;
    stored.value.rule = E::from_input(input, id.clone(), tenant)?;
    stored.value.rule.check_references(&mut tx).await?;
    resource::replace(&mut tx, &mut stored).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&id, stored.value.tenant_id());
    let view = one_view(state.store(), stored.value).await?;
    Ok(target.attach(Json(view)))
}

async fn delete_handler<E: RuleKind>(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Response> {
    super::findable(E::KIND, &id)?;
    let mut tx = state.store().begin().await?;
    let loaded = resource::load_tx::<Stamped<E>>(&mut tx, &id).await?;
    let stored = resource::visible(&principal, loaded, &id)?;
    resource::remove(&mut tx, &stored).await?;
    tx.commit().await?;
    let target = AuditTarget::new(&id, stored.value.tenant_id());
    Ok(target.attach(StatusCode::NO_CONTENT))
}
