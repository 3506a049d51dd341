//! The template resource (API §4.1): name, owner, status and the one editable draft. Published
//! content lives in the append-only `template_versions` table ([`super::versions`]); only the
//! draft here can change, so a published version is frozen by construction.

use async_trait::async_trait;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::Content;
use super::structure;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Crud, Resource, Scope};
use crate::store::Tx;
use crate::validate;

/// FHIR PublicationStatus, less `unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TemplateStatus {
    /// Never published.
    Draft,
    /// Has a published version for new records.
    Active,
    /// Withdrawn: existing records stay valid against their version.
    Retired,
}

/// Where a copied template came from (`POST /api/templates/{id}/copy`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CopiedFrom {
    /// The source template, usually a platform template.
    pub template_id: String,
    /// The published version whose content was copied.
    pub version: i64,
    /// That version's content hash, so a copy can be traced to exact content.
    pub content_sha256: String,
}

impl TemplateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateStatus::Draft => "draft",
            TemplateStatus::Active => "active",
            TemplateStatus::Retired => "retired",
        }
    }

    /// The status spelled as [`Self::as_str`] spells it.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "draft" => Some(TemplateStatus::Draft),
            "active" => Some(TemplateStatus::Active),
            "retired" => Some(TemplateStatus::Retired),
            _ => None,
        }
    }
}

/// A medical record template. `tenant_id` is `None` for a platform template: managed by
/// platform admins, readable by every role once published, copied by tenants.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Template {
    pub id: String,
    pub tenant_id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    /// `draft` until first published, `active` while some version is active, `retired` once
    /// every published version is.
    pub status: TemplateStatus,
    /// The latest published version, if any (it may be retired; see the versions list).
    pub current_version: Option<i64>,
    /// The editable content; `None` when everything is published (create a version to edit).
    pub draft: Option<Content>,
    /// Set on copies: the template and version this one started from.
    #[serde(default)]
    pub copied_from: Option<CopiedFrom>,
    /// The FHIR identity (`url`, `identifier`) of a template imported from a Questionnaire,
    /// which its exports keep; `None` for templates created here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fhir: Option<super::fhir::FhirIdentity>,
    pub created_at: String,
    pub updated_at: String,
}

/// Body of `POST /api/templates`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateCreate {
    /// Tenant admins get their own tenant; platform admins name one or leave it out for a
    /// platform template.
    pub tenant_id: Option<String>,
    pub name: String,
    pub description: Option<String>,
    /// The first draft; empty when left out.
    #[serde(default)]
    pub content: Content,
}

/// Body of `PUT /api/templates/{id}`: metadata at any time, content only while a draft exists.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    /// Replaces the draft; 409 when there is none (published content is frozen).
    pub content: Option<Content>,
}

fn check_metadata(name: &str, description: Option<&str>) -> ApiResult<()> {
    validate::text("name", name, 1, 200)?;
    if let Some(d) = description {
        if d.chars().count() > 2000 {
            return Err(ApiError::invalid(
                "description",
                "must be at most 2000 characters",
            ));
        }
    }
    Ok(())
}

impl Template {
    /// Replaces the draft; 409 when there is none, 422 when it breaks a rule.
    pub fn set_draft(&mut self, content: Content) -> ApiResult<()> {
        if self.draft.is_none() {
            return Err(no_draft());
        }
        structure::check(&content)?;
        self.draft = Some(content);
        Ok(())
    }
}

/// The 409 for content changes without a draft.
pub fn no_draft() -> ApiError {
    ApiError::conflict(
        "version_frozen",
        "published template versions cannot change; create a new version to edit",
    )
}

impl Resource for Template {
    const KIND: &'static str = "template";
    const ID_PREFIX: &'static str = "tpl";
    const LABEL: &'static str = "template";
    const SCOPE: Scope = Scope::Tenant;
    const AFFECTS_SNAPSHOT: bool = false;

    crate::resource_timestamps!();

    fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
    fn status(&self) -> Option<String> {
        Some(self.status.as_str().to_owned())
    }
    /// A platform template is readable by every role once it has a published version.
    fn shared(&self) -> bool {
        self.tenant_id.is_none() && self.current_version.is_some()
    }
}

#[async_trait]
impl Crud for Template {
    type Create = TemplateCreate;
    type Update = TemplateUpdate;
    type View = Template;
    const PATH: &'static str = "/api/templates";
    const TAG: &'static str = "templates";

    fn build(id: String, input: TemplateCreate, principal: &Principal) -> ApiResult<Self> {
        let tenant_id = match principal.tenant_scope() {
            // Platform-wide callers may create a platform template (no tenant).
            None => input.tenant_id,
            Some(_) => Some(resource::owning_tenant(principal, input.tenant_id)?),
        };
        check_metadata(&input.name, input.description.as_deref())?;
        structure::check(&input.content)?;
        Ok(Template {
            id,
            tenant_id,
            name: input.name,
            description: input.description,
            status: TemplateStatus::Draft,
            current_version: None,
            draft: Some(input.content),
            copied_from: None,
            fhir: None,
            created_at: String::new(),
            updated_at: String::new(),
        })
    }

    fn apply(&mut self, input: TemplateUpdate) -> ApiResult<()> {
        let name = input.name.unwrap_or_else(|| self.name.clone());
        let description = input.description.or_else(|| self.description.clone());
        check_metadata(&name, description.as_deref())?;
        if let Some(content) = input.content {
            self.set_draft(content)?;
        }
        self.name = name;
        self.description = description;
        Ok(())
    }

    fn view(&self) -> Template {
        self.clone()
    }

    /// Published versions may be pinned by records: such a template is retired, not deleted.
    async fn check_delete(&self, tx: &mut Tx) -> ApiResult<()> {
        if super::versions::latest(tx, &self.id).await?.is_some() {
            return Err(ApiError::conflict(
                "template_published",
                "a template with published versions cannot be deleted; records may pin them",
            ));
        }
        Ok(())
    }
}
