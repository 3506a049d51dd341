//! `POST /api/health/recovery` (API §6.3): close breakers by hand.
//!
//! The command bumps the counter of its target in `Snapshot.protection.recoveries`; every
//! proxy that sees a counter grow closes the matching breaker states and resets their
//! windows. Targets: a breaker rule id, `model:<name>`, `upstream:<url>` or `route:<id>`, each
//! naming something that exists (404 otherwise). Platform admins recover anything; tenant
//! admins only their own tenant's breaker rules (by id).
//!
//! The counters are one row of the generic resource store, written in the transaction that
//! bumps the snapshot version, so the snapshot always carries the counters of its version.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use medgate_config::BreakerTargetKind;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{refs, Breaker};
use crate::api::extract::ApiJson;
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Resource, Scope};
use crate::state::AppState;
use crate::store::{self, Store};
use crate::validate;

/// Id of the one row holding the counters.
const ROW_ID: &str = "recoveries";

/// The recovery counters: target -> number of recovery commands so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Recoveries {
    pub id: String,
    pub counters: BTreeMap<String, u64>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Recoveries {
    const KIND: &'static str = "protection_recoveries";
    const ID_PREFIX: &'static str = "rcv";
    const LABEL: &'static str = "recovery counters";
    const SCOPE: Scope = Scope::Platform;
    /// The handler bumps the version itself, to answer with it.
    const AFFECTS_SNAPSHOT: bool = false;

    crate::resource_timestamps!();
}

/// The stored counters (empty before the first command).
pub async fn counters(store: &Store) -> ApiResult<BTreeMap<String, u64>> {
    Ok(resource::load::<Recoveries>(store, ROW_ID)
        .await?
        .map(|s| s.value.counters)
        .unwrap_or_default())
}

/// Body of `POST /api/health/recovery`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoveryRequest {
    /// A circuit-breaker id, `model:<name>`, `upstream:<url>` or `route:<id>`.
    pub target: String,
}

/// The answer: the command is in the snapshot; proxies apply it when they take that version.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RecoveryAccepted {
    pub target: String,
    /// Ids of the breaker rules the target covers (proxies close their states).
    pub breakers: Vec<String>,
    /// The target's recovery counter after this command.
    pub counter: u64,
    /// The snapshot version carrying the command.
    pub snapshot_version: u64,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::post(
            "/api/health/recovery",
            "health.recovery",
            "Close the circuit breakers of a target on every proxy",
        )
        .access(Access::TenantWrite)
        .resource("recovery")
        .request::<RecoveryRequest>()
        .response::<RecoveryAccepted>()
        .status(202),
        recover,
    )
}

/// The breaker rules a target covers, and the tenant owning the target (for the audit);
/// 404 when it names nothing known.
async fn resolve(
    store: &Store,
    principal: &Principal,
    target: &str,
) -> ApiResult<(Vec<String>, Option<String>)> {
    let by_target = |kind: BreakerTargetKind, name: &str| {
        let name = name.to_owned();
        async move {
            let rules = resource::load_all::<Breaker>(store).await?;
            let ids: Vec<String> = rules
                .into_iter()
                .filter(|b| b.rule.target.kind == kind && b.rule.target.name == name)
                .map(|b| b.rule.id)
                .collect();
            ApiResult::Ok(ids)
        }
    };
    let prefixed = ["model:", "upstream:", "route:"]
        .iter()
        .any(|p| target.starts_with(p));
    if !prefixed {
        let stored = resource::load::<Breaker>(store, target).await?;
        let rule = resource::visible(principal, stored, target)?.value.rule;
        return Ok((vec![rule.id], rule.tenant_id));
    }
    principal.require_platform_admin()?;
    let mut conn = store.reader().acquire().await?;
    let (found, ids) = if let Some(name) = target.strip_prefix("model:") {
        let ids = by_target(BreakerTargetKind::Model, name).await?;
        (refs::model_exists(&mut conn, name).await?, ids)
    } else if let Some(url) = target.strip_prefix("upstream:") {
        let ids = by_target(BreakerTargetKind::Upstream, url).await?;
        (
            !ids.is_empty() || refs::upstream_exists(&mut conn, url).await?,
            ids,
        )
    } else {
        let id = target.strip_prefix("route:").unwrap_or_default();
        let ids = by_target(BreakerTargetKind::Route, id).await?;
        (refs::route_usable(&mut conn, id, None).await?, ids)
    };
    if !found {
        return Err(ApiError::not_found("recovery target", target));
    }
    Ok((ids, None))
}

/// Bumps the target's counter and the snapshot version in one transaction.
async fn bump(store: &Store, target: &str) -> ApiResult<(u64, u64)> {
    resource::retrying(Recoveries::LABEL, || async {
        let mut tx = store.begin().await?;
        let written = match resource::load_tx::<Recoveries>(&mut tx, ROW_ID).await? {
            Some(mut stored) => {
                let counter = stored.value.counters.entry(target.to_owned()).or_default();
                *counter = counter.saturating_add(1);
                let counter = *counter;
                resource::replace(&mut tx, &mut stored)
                    .await
                    .map(|()| counter)
            }
            None => {
                let mut value = Recoveries {
                    id: ROW_ID.to_owned(),
                    counters: BTreeMap::from([(target.to_owned(), 1)]),
                    ..Recoveries::default()
                };
                // Two first commands at once: the loser retries as an update.
                resource::insert(&mut tx, &mut value)
                    .await
                    .map(|()| 1)
                    .map_err(|e| match e {
                        ApiError::Conflict { message, .. } => ApiError::Conflict {
                            code: "concurrent_modification",
                            message,
                        },
                        other => other,
                    })
            }
        };
        let counter = written?;
        let version = store::bump_config_version(&mut tx).await?;
        tx.commit().await?;
        Ok((counter, version))
    })
    .await
}

async fn recover(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(input): ApiJson<RecoveryRequest>,
) -> ApiResult<Response> {
    let target = input.target;
    validate::text("target", &target, 1, 2100)?;
    let (breakers, tenant) = resolve(state.store(), &principal, &target).await?;
    let (counter, snapshot_version) = bump(state.store(), &target).await?;
    let details =
        json!({ "breakers": breakers, "counter": counter, "snapshot_version": snapshot_version });
    let audit = AuditTarget::new(&target, tenant.as_deref()).with_details(details);
    let body = RecoveryAccepted {
        target,
        breakers,
        counter,
        snapshot_version,
    };
    Ok(audit.attach((StatusCode::ACCEPTED, Json(body))))
}
