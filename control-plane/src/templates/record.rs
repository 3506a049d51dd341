//! Record data checked against one published version (API §4.4): every issue is reported,
//! not only the first, so a form can mark all offending fields at once. A record is checked
//! against the version it names, so records pinned to an old version keep their meaning.
//!
//! Order of checks per item: structure (known linkId, answerable, listed once), enableWhen
//! (a disabled item must not be answered and is not required), required (only in a
//! `completed` record), repeats, then per answer the built-in checks of the item (type,
//! unit, options, min/max after unit conversion, decimal places, length, regex) and, for an
//! answer that passed them, the attached rules (see [`super::rules`]). Built-in checks are
//! errors; an attached rule has its own severity. `valid` means no error.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::enable;
use super::model::{Content, ItemType};
use super::rules::apply;
use super::rules::compiled::{CompiledVersion, Node};
use super::rules::messages as msg;
use super::rules::{Language, Message};
use super::value::Value;
use super::versions::TemplateVersion;

/// Most answered items one record may carry.
pub const MAX_RECORD_ITEMS: usize = 5000;

/// `in-progress` records may leave required items out; `completed` ones may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RecordStatus {
    InProgress,
    Completed,
}

/// Answers to one item.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnsweredItem {
    pub link_id: String,
    pub answers: Vec<Value>,
}

/// Body of `POST /api/templates/{id}/validate` (like a FHIR QuestionnaireResponse, flat by
/// linkId).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordData {
    pub status: RecordStatus,
    pub items: Vec<AnsweredItem>,
}

/// `error` blocks saving the record; `warning` asks for acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with one item.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Issue {
    pub link_id: String,
    /// The id of the attached validation rule that failed, or a built-in check:
    /// `unknown-link-id`, `duplicate`, `structure`, `type`, `required`, `enable-when`,
    /// `repeats`, `options`, `min-value`, `max-value`, `unit`, `max-decimal-places`,
    /// `max-length`, `min-length` or `regex`.
    pub rule: String,
    pub severity: Severity,
    /// In the language `Accept-Language` asked for (`zh` or `en`, default `en`).
    pub message: String,
    /// Both languages.
    pub messages: Message,
}

/// The answer of the validate endpoint.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ValidationReport {
    /// No issue of severity `error` (warnings allowed).
    pub valid: bool,
    /// The version the record was checked against.
    pub version: i64,
    /// The language of the `message` fields.
    pub language: Language,
    /// Issues of severity `error`.
    pub errors: Vec<Issue>,
    /// Issues of severity `warning`.
    pub warnings: Vec<Issue>,
    /// Every issue in check order (errors and warnings together).
    pub issues: Vec<Issue>,
}

impl ValidationReport {
    /// Splits issues by severity.
    pub fn new(version: i64, language: Language, issues: Vec<Issue>) -> Self {
        let (errors, warnings): (Vec<Issue>, Vec<Issue>) = issues
            .iter()
            .cloned()
            .partition(|i| i.severity == Severity::Error);
        Self {
            valid: errors.is_empty(),
            version,
            language,
            errors,
            warnings,
            issues,
        }
    }
}

/// Checks a record against a published version, compiling it at most once per process.
pub fn report(version: &TemplateVersion, record: &RecordData, lang: Language) -> ValidationReport {
    let compiled = super::rules::cache::compiled(version);
    ValidationReport::new(version.version, lang, check(&compiled, record, lang))
}

/// Checks a record against content (compiles it first: for one-off checks and tests; use
/// [`check`] with a [`CompiledVersion`] for many records).
pub fn validate(content: &Content, record: &RecordData) -> Vec<Issue> {
    check(&CompiledVersion::new(content), record, Language::En)
}

/// Collects issues in one language.
pub struct Issues {
    lang: Language,
    pub list: Vec<Issue>,
}

impl Issues {
    pub fn push(&mut self, link_id: &str, rule: &str, severity: Severity, messages: Message) {
        self.list.push(Issue {
            link_id: link_id.to_owned(),
            rule: rule.to_owned(),
            severity,
            message: self.lang.pick(&messages).to_owned(),
            messages,
        });
    }

    fn error(&mut self, link_id: &str, rule: &str, messages: Message) {
        self.push(link_id, rule, Severity::Error, messages);
    }
}

/// Checks a record against a compiled version.
pub fn check(version: &CompiledVersion, record: &RecordData, lang: Language) -> Vec<Issue> {
    let nodes = &version.nodes;
    let mut issues = Issues {
        lang,
        list: Vec::new(),
    };
    let mut answers: Vec<&[Value]> = vec![&[]; nodes.len()];
    let mut listed = vec![false; nodes.len()];
    for answered in &record.items {
        let id = answered.link_id.as_str();
        match version.by_id.get(id).copied() {
            None => issues.error(id, "unknown-link-id", msg::unknown_link_id()),
            Some(i) if !nodes[i].ty.is_question() => {
                issues.error(id, "structure", msg::no_answers())
            }
            Some(i) if listed[i] => issues.error(id, "duplicate", msg::duplicate()),
            Some(i) => {
                listed[i] = true;
                answers[i] = &answered.answers;
            }
        }
    }
    let enabled = enable::enabled(nodes, &answers);
    // Disabled items count as unvalued for cross-field rules too.
    let mut values = answers.clone();
    for (i, on) in enabled.iter().enumerate() {
        if !on {
            values[i] = &[];
        }
    }
    let completed = record.status == RecordStatus::Completed;
    for (i, node) in nodes.iter().enumerate() {
        let id = node.link_id.as_str();
        let given = answers[i];
        if !enabled[i] {
            if !given.is_empty() {
                issues.error(id, "enable-when", msg::disabled());
            }
            continue;
        }
        let answered = if node.ty == ItemType::Group {
            answers[i + 1..node.end].iter().any(|a| !a.is_empty())
        } else {
            !given.is_empty()
        };
        if node.required && completed && !answered {
            issues.error(id, "required", msg::required());
        }
        if given.len() > 1 && !node.repeats {
            issues.error(id, "repeats", msg::repeats(given.len()));
        }
        let mut passed = Vec::new();
        for value in given {
            match builtin(node, value) {
                Ok(()) => passed.push(value),
                Err((rule, message)) => issues.error(id, rule, message),
            }
        }
        if !node.rules.is_empty() {
            apply::attached(node, completed && !answered, &passed, &values, &mut issues);
        }
    }
    issues.list
}

type Failure = (&'static str, Message);

/// The item's own checks on one answer; the first failure.
fn builtin(node: &Node, value: &Value) -> Result<(), Failure> {
    let ty = node.ty;
    if !value.fits(ty) || !value.well_formed() {
        let item_type = serde_json::to_value(ty)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(("type", msg::wrong_type(value.kind(), &item_type)));
    }
    let free_text = ty == ItemType::OpenChoice && matches!(value, Value::String(_));
    if !node.options.is_empty()
        && !free_text
        && !node.options.iter().any(|o| enable::equal(o, value))
    {
        return Err(("options", msg::not_an_option()));
    }
    if let Value::Quantity(q) = value {
        if let (Some(given), Some(unit)) = (&q.unit, &node.unit) {
            if let Err(e) = super::rules::units::Conversion::between(given, unit) {
                return Err(("unit", msg::unit(&e)));
            }
        }
    }
    let value: &Value = &with_item_unit(node, value);
    if let Some(min) = &node.min {
        bound(value, min, "min-value", std::cmp::Ordering::Less)?;
    }
    if let Some(max) = &node.max {
        bound(value, max, "max-value", std::cmp::Ordering::Greater)?;
    }
    if let (Some(places), Value::Decimal(v)) = (node.max_decimal_places, value) {
        let written = v.to_string();
        let decimals = written.split_once('.').map_or(0, |(_, d)| d.len());
        if decimals > places as usize {
            return Err(("max-decimal-places", msg::decimal_places(places)));
        }
    }
    if !node.needs_text() {
        return Ok(());
    }
    let Some(text) = apply::text(value) else {
        return Ok(());
    };
    let len = text.chars().count();
    if let Some(max) = node.max_length {
        if len > max as usize {
            return Err(("max-length", msg::too_long(max)));
        }
    }
    if let Some(min) = node.min_length {
        if len < min as usize {
            return Err(("min-length", msg::too_short(min)));
        }
    }
    if let Some(re) = &node.regex {
        // A pattern that no longer compiles (a newer regex crate) fails closed.
        if !re.as_ref().is_some_and(|re| re.is_match(&text)) {
            return Err(("regex", msg::pattern()));
        }
    }
    Ok(())
}

/// A quantity answer without a unit is in the item's unit.
fn with_item_unit<'a>(node: &Node, value: &'a Value) -> std::borrow::Cow<'a, Value> {
    match (value, &node.unit) {
        (Value::Quantity(q), Some(unit)) if q.unit.is_none() => {
            let mut q = q.clone();
            q.unit = Some(unit.clone());
            std::borrow::Cow::Owned(Value::Quantity(q))
        }
        _ => std::borrow::Cow::Borrowed(value),
    }
}

fn bound(
    value: &Value,
    limit: &Value,
    rule: &'static str,
    bad: std::cmp::Ordering,
) -> Result<(), Failure> {
    let shown = || match limit {
        Value::Integer(v) => v.to_string(),
        Value::Decimal(v) => v.to_string(),
        Value::Quantity(q) => format!("{} {}", q.value, q.unit.as_deref().unwrap_or("")),
        Value::Date(s) | Value::DateTime(s) | Value::Time(s) => s.clone(),
        other => other.kind().to_owned(),
    };
    match value.compare(limit) {
        Some(o) if o == bad => Err((
            rule,
            if rule == "min-value" {
                msg::below(shown().trim())
            } else {
                msg::above(shown().trim())
            },
        )),
        Some(_) => Ok(()),
        None => match (value, limit) {
            (Value::Quantity(a), Value::Quantity(b)) => {
                let (from, into) = (a.unit.as_deref(), b.unit.as_deref());
                match super::rules::units::Conversion::between(
                    from.unwrap_or_default(),
                    into.unwrap_or_default(),
                ) {
                    Err(e) if from.is_some() && into.is_some() => Err(("unit", msg::unit(&e))),
                    _ => Err(("unit", msg::incomparable())),
                }
            }
            _ => Err(("unit", msg::incomparable())),
        },
    }
}
