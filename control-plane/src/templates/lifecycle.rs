//! Version statuses (V3, V4): `PUT /api/templates/{id}/versions/{version}/status`, and which
//! version a record is checked against.
//!
//! | from    | to      | allowed                                                        |
//! |---------|---------|----------------------------------------------------------------|
//! | draft   | active  | only by `POST /api/templates/{id}/publish`                     |
//! | active  | retired | yes                                                            |
//! | retired | active  | only with `force: true` and a `reason` (audited): reactivation |
//!
//! Every other pair (a status to itself, anything to `draft`) is 409 `invalid_transition` and
//! changes nothing. Only the status moves: content and `content_sha256` never change. The
//! template's own status follows its versions: `active` while one is, `retired` when none is.
//!
//! Records (V3): a new record uses an active version (the highest one by default); a retired
//! version refuses new records (409 `version_retired`) but still checks records captured on it
//! (`existing=true`), so pinned records keep validating and displaying.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::resource::{Template, TemplateStatus};
use super::versions::{self, TemplateVersion};
use crate::api::extract::{ApiJson, ApiPath};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Resource};
use crate::state::AppState;

/// Longest reason of a status change.
pub const MAX_REASON: usize = 500;

/// Body of `PUT /api/templates/{id}/versions/{version}/status`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VersionStatusChange {
    /// `retired` to withdraw an active version; `active` (with `force`) to reactivate one.
    pub status: TemplateStatus,
    /// Required to bring a retired version back (retired -> active); ignored otherwise.
    #[serde(default)]
    pub force: bool,
    /// Why (1 to 500 characters); required with `force`, recorded in the audit log.
    pub reason: Option<String>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::put(
            "/api/templates/{id}/versions/{version}/status",
            "templates.version_status",
            "Retire a published version (no new records), or reactivate a retired one with \
             force and a reason; 409 for any other transition",
        )
        .access(Access::TenantWrite)
        .resource(Template::KIND)
        .request::<VersionStatusChange>()
        .response::<TemplateVersion>(),
        change_status,
    )
}

/// Whether a published version may go from `from` to `to` (see the module table).
pub fn check_transition(from: TemplateStatus, to: TemplateStatus, force: bool) -> ApiResult<()> {
    use TemplateStatus::{Active, Retired};
    match (from, to) {
        (Active, Retired) => Ok(()),
        (Retired, Active) if force => Ok(()),
        (Retired, Active) => Err(ApiError::conflict(
            "invalid_transition",
            "a retired version stays retired: publish a new version, or reactivate this one \
             explicitly with force: true and a reason",
        )),
        (from, to) => Err(ApiError::conflict(
            "invalid_transition",
            format!(
                "a template version cannot go from {} to {}",
                from.as_str(),
                to.as_str()
            ),
        )),
    }
}

fn check_reason(req: &VersionStatusChange) -> ApiResult<()> {
    if let Some(reason) = &req.reason {
        let len = reason.trim().chars().count();
        if len == 0 || len > MAX_REASON || reason.chars().any(char::is_control) {
            return Err(ApiError::invalid(
                "reason",
                format!("must be 1 to {MAX_REASON} characters without control characters"),
            ));
        }
    } else if req.force {
        return Err(ApiError::invalid(
            "reason",
            "is required with force: reactivating a retired version is recorded with why",
        ));
    }
    Ok(())
}

async fn change_status(
    State(state): State<AppState>,
    principal: Principal,
    ApiPath((id, number)): ApiPath<(String, i64)>,
    ApiJson(req): ApiJson<VersionStatusChange>,
) -> ApiResult<Response> {
    check_reason(&req)?;
    let (version, from, tenant) = resource::retrying(Template::LABEL, || async {
        let mut tx = state.store().begin().await?;
        let loaded = resource::load_tx::<Template>(&mut tx, &id).await?;
        let mut stored = resource::visible(&principal, loaded, &id)?;
        let mut version = versions::get(&mut tx, &id, number)
            .await?
            .ok_or_else(|| ApiError::not_found("template_version", format!("{id} v{number}")))?;
        let from = TemplateStatus::parse(&version.status)
            .ok_or_else(|| ApiError::internal(format!("template {id} v{number}: bad status")))?;
        check_transition(from, req.status, req.force)?;
        if !versions::set_status(&mut tx, &id, number, from, req.status).await? {
            return Err(ApiError::conflict("concurrent_modification", "retry"));
        }
        version.status = req.status.as_str().to_owned();
        // The template is active while any version is; its row's revision also orders this
        // change against concurrent publishes and other status changes.
        stored.value.status = match versions::latest_active(&mut tx, &id).await? {
            Some(_) => TemplateStatus::Active,
            None => TemplateStatus::Retired,
        };
        resource::replace(&mut tx, &mut stored).await?;
        tx.commit().await?;
        Ok((version, from, stored.value.tenant_id))
    })
    .await?;
    let target = AuditTarget::new(&id, tenant.as_deref()).with_details(json!({
        "version": number,
        "from": from.as_str(),
        "to": version.status,
        "forced": from == TemplateStatus::Retired,
        "reason": req.reason,
        "content_sha256": version.content_sha256,
    }));
    Ok(target.attach(Json(version)))
}

/// The version a record is checked against (V3). `existing` records were captured earlier
/// on `version` (which they must name) and may use a retired one; new records need an active
/// version, the highest one when `version` is left out.
pub async fn record_version(
    conn: &mut sqlx::AnyConnection,
    template: &Template,
    version: Option<i64>,
    existing: bool,
) -> ApiResult<TemplateVersion> {
    let id = &template.id;
    let number = match version {
        Some(n) => n,
        None if existing => {
            return Err(ApiError::invalid(
                "version",
                "is required with existing=true: a record is pinned to the version it was \
                 captured on",
            ))
        }
        None if template.current_version.is_none() => {
            return Err(ApiError::conflict(
                "not_published",
                "the template has no published version to validate against",
            ))
        }
        None => versions::latest_active(conn, id).await?.ok_or_else(|| {
            ApiError::conflict(
                "no_active_version",
                "every version of the template is retired: new records are refused",
            )
        })?,
    };
    let found = versions::get(conn, id, number)
        .await?
        .ok_or_else(|| ApiError::not_found("template_version", format!("{id} v{number}")))?;
    if !existing && found.status != TemplateStatus::Active.as_str() {
        return Err(ApiError::conflict(
            "version_retired",
            format!(
                "version {number} is retired: new records are refused; records captured on it \
                 are checked with existing=true"
            ),
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TemplateStatus::*;

    fn code(r: ApiResult<()>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(ApiError::Conflict { code, .. }) => code,
            Err(_) => "other",
        }
    }

    #[test]
    fn only_draft_active_retired_and_forced_reactivation() {
        assert_eq!(code(check_transition(Active, Retired, false)), "ok");
        assert_eq!(code(check_transition(Retired, Active, true)), "ok");
        for (from, to, force) in [
            (Retired, Active, false),
            (Active, Active, true),
            (Retired, Retired, false),
            (Active, Draft, true),
            (Retired, Draft, true),
            (Draft, Active, false),
        ] {
            assert_eq!(
                code(check_transition(from, to, force)),
                "invalid_transition",
                "{from:?} -> {to:?}"
            );
        }
    }

    #[test]
    fn force_needs_a_reason() {
        let req = |force, reason: Option<&str>| VersionStatusChange {
            status: Active,
            force,
            reason: reason.map(str::to_owned),
        };
        assert!(check_reason(&req(true, None)).is_err());
        assert!(check_reason(&req(true, Some("  "))).is_err());
        assert!(check_reason(&req(true, Some(&"x".repeat(MAX_REASON + 1)))).is_err());
        assert!(check_reason(&req(true, Some("retired by mistake"))).is_ok());
        assert!(check_reason(&req(false, None)).is_ok());
    }
}
