//! The validation rule resource: a [`RuleDefinition`] with its owner and timestamps, the
//! create/replace body and its checks (a bad pattern, expression, bound or unit is a 422
//! naming the field), and which rules a caller sees.
//!
//! Ownership: `tenant_id` None is a platform rule, readable by every role of every tenant (a
//! shared library, like the form elements) and changed only by platform admins; a tenant
//! rule is seen and managed by its own tenant only (another tenant gets a 404).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::expr;
use super::spec::{Check, Message, RuleDefinition, ValueKind};
use super::units;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult};
use crate::resource::{self, Resource, Scope};
use crate::store::Store;
use crate::templates::record::Severity;
use crate::templates::structure;
use crate::templates::value::OptionValue;
use crate::validate;

/// Most options an option-set rule may list.
pub const MAX_OPTIONS: usize = 500;
/// Longest regex pattern, in characters.
pub const MAX_PATTERN: usize = 1000;

/// A stored validation rule.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ValidationRule {
    pub id: String,
    /// `None` for a platform rule.
    pub tenant_id: Option<String>,
    pub description: Option<String>,
    #[serde(flatten)]
    pub definition: RuleDefinition,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for ValidationRule {
    const KIND: &'static str = "validation_rule";
    const ID_PREFIX: &'static str = "vrule";
    const LABEL: &'static str = "validation rule";
    const SCOPE: Scope = Scope::Tenant;
    const AFFECTS_SNAPSHOT: bool = false;

    crate::resource_timestamps!();

    fn tenant_id(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }
    fn name(&self) -> Option<&str> {
        Some(&self.definition.name)
    }
    fn status(&self) -> Option<String> {
        Some(self.definition.check.kind().to_owned())
    }
}

/// The kind of a rule, as the create body names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Required,
    Type,
    Range,
    Regex,
    Length,
    Options,
    Expression,
}

/// Body of `POST /api/validation-rules` and `PUT /api/validation-rules/{id}` (which replaces
/// the whole rule). Only the fields of the rule's `kind` may be given.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// Owner. Tenant callers get their own tenant; platform admins name one, or leave it out
    /// for a platform rule. An update must omit it or repeat the rule's own.
    pub tenant_id: Option<String>,
    /// 1 to 200 characters.
    pub name: String,
    pub description: Option<String>,
    pub kind: RuleKind,
    /// `error` (default) or `warning`.
    pub severity: Option<Severity>,
    /// Shown when the rule fails, in both languages (1 to 500 characters each).
    pub message: Message,
    /// `type`: the kind every answer must have.
    pub value_type: Option<ValueKind>,
    /// `range`: inclusive lower bound.
    pub min: Option<f64>,
    /// `range`: inclusive upper bound.
    pub max: Option<f64>,
    /// `range`: UCUM unit of the bounds (answers in other units are converted).
    pub unit: Option<String>,
    /// `regex`: the pattern the whole answer must match.
    pub pattern: Option<String>,
    /// `length`: fewest characters.
    pub min_length: Option<u32>,
    /// `length`: most characters.
    pub max_length: Option<u32>,
    /// `options`: the permitted answers.
    pub options: Option<Vec<OptionValue>>,
    /// `expression`: a cross-field condition, e.g. `diastolic < systolic`.
    pub expression: Option<String>,
}

fn needs<T>(field: &str, kind: RuleKind, value: Option<T>) -> ApiResult<T> {
    value.ok_or_else(|| ApiError::invalid(field, format!("is required for a {kind:?} rule")))
}

impl RuleInput {
    /// Checks the body and builds the definition (the owner is settled by the caller).
    pub fn definition(self) -> ApiResult<(Option<String>, RuleDefinition)> {
        validate::text("name", &self.name, 1, 200)?;
        if self
            .description
            .as_ref()
            .is_some_and(|d| d.chars().count() > 2000)
        {
            return Err(ApiError::invalid(
                "description",
                "must be at most 2000 characters",
            ));
        }
        validate::text("message.zh", &self.message.zh, 1, 500)?;
        validate::text("message.en", &self.message.en, 1, 500)?;
        let kind = self.kind;
        let allowed: &[&str] = match kind {
            RuleKind::Required => &[],
            RuleKind::Type => &["value_type"],
            RuleKind::Range => &["min", "max", "unit"],
            RuleKind::Regex => &["pattern"],
            RuleKind::Length => &["min_length", "max_length"],
            RuleKind::Options => &["options"],
            RuleKind::Expression => &["expression"],
        };
        let given = [
            ("value_type", self.value_type.is_some()),
            ("min", self.min.is_some()),
            ("max", self.max.is_some()),
            ("unit", self.unit.is_some()),
            ("pattern", self.pattern.is_some()),
            ("min_length", self.min_length.is_some()),
            ("max_length", self.max_length.is_some()),
            ("options", self.options.is_some()),
            ("expression", self.expression.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            return Err(ApiError::invalid(
                field,
                format!("does not apply to a {kind:?} rule"),
            ));
        }
        let check = match kind {
            RuleKind::Required => Check::Required,
            RuleKind::Type => Check::Type {
                value_type: needs("value_type", kind, self.value_type)?,
            },
            RuleKind::Range => range(self.min, self.max, self.unit)?,
            RuleKind::Regex => {
                let pattern = needs("pattern", kind, self.pattern)?;
                if pattern.chars().count() > MAX_PATTERN {
                    return Err(ApiError::invalid(
                        "pattern",
                        format!("at most {MAX_PATTERN} characters"),
                    ));
                }
                if let Err(e) = structure::compile(&pattern) {
                    return Err(ApiError::invalid(
                        "pattern",
                        format!("does not compile: {e}"),
                    ));
                }
                Check::Regex { pattern }
            }
            RuleKind::Length => {
                let (min_length, max_length) = (self.min_length, self.max_length);
                if min_length.is_none() && max_length.is_none() {
                    return Err(ApiError::invalid(
                        "min_length",
                        "give min_length, max_length or both",
                    ));
                }
                if let (Some(lo), Some(hi)) = (min_length, max_length) {
                    if lo > hi {
                        return Err(ApiError::invalid(
                            "min_length",
                            "must not exceed max_length",
                        ));
                    }
                }
                Check::Length {
                    min_length,
                    max_length,
                }
            }
            RuleKind::Options => {
                let options = needs("options", kind, self.options)?;
                if options.is_empty() || options.len() > MAX_OPTIONS {
                    return Err(ApiError::invalid(
                        "options",
                        format!("must list 1 to {MAX_OPTIONS} values"),
                    ));
                }
                if options.iter().any(|o| !o.to_value().well_formed()) {
                    return Err(ApiError::invalid(
                        "options",
                        "a value is malformed (date, time or empty code)",
                    ));
                }
                Check::Options { options }
            }
            RuleKind::Expression => {
                let expression = needs("expression", kind, self.expression)?;
                if let Err(e) = expr::parse(&expression) {
                    return Err(ApiError::invalid("expression", e.to_string()));
                }
                Check::Expression { expression }
            }
        };
        let definition = RuleDefinition {
            name: self.name,
            severity: self.severity.unwrap_or(Severity::Error),
            message: self.message,
            check,
        };
        Ok((self.description, definition))
    }
}

fn range(min: Option<f64>, max: Option<f64>, unit: Option<String>) -> ApiResult<Check> {
    if min.is_none() && max.is_none() {
        return Err(ApiError::invalid("min", "give min, max or both"));
    }
    for (field, v) in [("min", min), ("max", max)] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(ApiError::invalid(field, "must be a finite number"));
        }
    }
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(ApiError::invalid("min", "must not exceed max"));
        }
    }
    if let Some(u) = &unit {
        if !units::is_known(u) {
            return Err(ApiError::invalid(
                "unit",
                units::UnitError::Unknown(u.clone()).to_string(),
            ));
        }
    }
    Ok(Check::Range { min, max, unit })
}

/// A rule id no stored row can hold (PostgreSQL refuses NUL in text): a 404 without asking.
pub fn findable(id: &str) -> ApiResult<()> {
    if id.contains('\0') {
        Err(ApiError::not_found(ValidationRule::KIND, id))
    } else {
        Ok(())
    }
}

/// Whether the caller may see the rule (platform rules are visible to everyone).
pub fn sees(principal: &Principal, rule: &ValidationRule) -> bool {
    rule.tenant_id
        .as_deref()
        .is_none_or(|t| principal.sees_tenant(t))
}

/// Whether the caller may change the rule: 404 when it cannot even see it, 403 for a tenant
/// caller and a platform rule.
pub fn may_change(principal: &Principal, rule: &ValidationRule) -> ApiResult<()> {
    match &rule.tenant_id {
        Some(t) => principal.check_tenant(Some(t), ValidationRule::KIND, &rule.id),
        None => principal.require_platform_admin(),
    }
}

/// Platform rules, oldest first.
pub async fn platform_rules(store: &Store) -> ApiResult<Vec<ValidationRule>> {
    let rows = sqlx::query(
        "SELECT body FROM resources WHERE kind = $1 AND tenant_id IS NULL ORDER BY created_at, id",
    )
    .bind(ValidationRule::KIND)
    .fetch_all(&mut *store.reader().acquire().await?)
    .await?;
    rows.iter()
        .map(|row| {
            let body: String = row.try_get("body")?;
            serde_json::from_str(&body)
                .map_err(|e| ApiError::internal(format!("stored validation rule: {e}")))
        })
        .collect()
}

/// Every rule the caller sees: platform rules plus `tenant`'s (or every tenant's for a
/// platform-wide caller that names none), oldest first.
pub async fn visible(
    store: &Store,
    principal: &Principal,
    tenant: Option<String>,
) -> ApiResult<Vec<ValidationRule>> {
    let mut rules = match principal.tenant_filter(tenant)? {
        Some(t) => {
            if t.contains('\0') {
                return Err(ApiError::not_found("tenant", t));
            }
            let mut rules = platform_rules(store).await?;
            rules.extend(resource::load_for_tenant::<ValidationRule>(store, &t).await?);
            rules
        }
        None => resource::load_all::<ValidationRule>(store).await?,
    };
    rules.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
    Ok(rules)
}
