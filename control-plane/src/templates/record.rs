//! Record data checked against one published version (API §4.4): every issue is reported,
//! not only the first, so a form can mark all offending fields at once. A record is checked
//! against the version it names, so records pinned to an old version keep their meaning.

use std::collections::HashMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::enable::{equal, Enablement, Index};
use super::model::{Content, Item, ItemType};
use super::structure;
use super::value::Value;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with one item.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Issue {
    pub link_id: String,
    /// `unknown-link-id`, `duplicate`, `structure`, `type`, `required`, `enable-when`,
    /// `repeats`, `options`, `min-value`, `max-value`, `unit`, `max-decimal-places`,
    /// `max-length`, `min-length` or `regex`.
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
}

/// The answer of the validate endpoint.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ValidationReport {
    /// No issue of severity `error`.
    pub valid: bool,
    /// The version the record was checked against.
    pub version: i64,
    pub issues: Vec<Issue>,
}

/// Checks a record against published content.
pub fn validate(content: &Content, record: &RecordData) -> Vec<Issue> {
    let index = Index::new(content);
    let mut issues = Vec::new();
    let mut error = |link_id: &str, rule: &'static str, message: String| {
        issues.push(Issue {
            link_id: link_id.to_owned(),
            rule,
            severity: Severity::Error,
            message,
        });
    };
    let mut answers: HashMap<&str, &[Value]> = HashMap::new();
    for answered in &record.items {
        let id = answered.link_id.as_str();
        match index.items.get(id) {
            None => error(
                id,
                "unknown-link-id",
                "no item of the template has this linkId".into(),
            ),
            Some((item, _)) if !item.item_type.is_question() => error(
                id,
                "structure",
                "group and display items take no answers".into(),
            ),
            Some(_) if answers.contains_key(id) => {
                error(id, "duplicate", "the item is listed more than once".into())
            }
            Some(_) if !answered.answers.is_empty() => {
                answers.insert(id, &answered.answers);
            }
            Some(_) => {}
        }
    }
    let mut enablement = Enablement::new(&index, &answers);
    for (item, _) in content.walk() {
        let id = item.link_id.as_str();
        let enabled = enablement.enabled(id);
        let given = answers.get(id).copied().unwrap_or(&[]);
        if !enabled {
            if !given.is_empty() {
                error(
                    id,
                    "enable-when",
                    "the item is disabled by its enable_when and must not be answered".into(),
                );
            }
            continue;
        }
        if item.required && record.status == RecordStatus::Completed && !answered(item, &answers) {
            error(
                id,
                "required",
                "a completed record must answer this item".into(),
            );
        }
        if given.len() > 1 && !item.repeats {
            error(
                id,
                "repeats",
                format!("the item does not repeat but has {} answers", given.len()),
            );
        }
        for value in given {
            if let Err((rule, message)) = check_answer(item, value) {
                error(id, rule, message);
            }
        }
    }
    issues
}

/// Whether an item, or for a group any of its descendants, has an answer.
fn answered(item: &Item, answers: &HashMap<&str, &[Value]>) -> bool {
    if item.item_type == ItemType::Group {
        return item.items.iter().any(|c| answered(c, answers));
    }
    answers.contains_key(item.link_id.as_str())
}

type Failure = (&'static str, String);

fn check_answer(item: &Item, value: &Value) -> Result<(), Failure> {
    let ty = item.item_type;
    if !value.fits(ty) || !value.well_formed() {
        return Err((
            "type",
            format!("a {} answer does not fit a {ty:?} item", value.kind()),
        ));
    }
    let free_text = ty == ItemType::OpenChoice && matches!(value, Value::String(_));
    if !item.answer_options.is_empty() && !free_text {
        let listed = item
            .answer_options
            .iter()
            .any(|o| equal(&o.value.to_value(), value));
        if !listed {
            return Err((
                "options",
                "the answer is not one of the item's options".into(),
            ));
        }
    }
    if let Some(limits) = &item.limits {
        if let Some(min) = &limits.min_value {
            bound(value, min, "min-value", std::cmp::Ordering::Less)?;
        }
        if let Some(max) = &limits.max_value {
            bound(value, max, "max-value", std::cmp::Ordering::Greater)?;
        }
        if let (Some(places), Value::Decimal(v)) = (limits.max_decimal_places, value) {
            let written = v.to_string();
            let decimals = written.split_once('.').map_or(0, |(_, d)| d.len());
            if decimals > places as usize {
                return Err((
                    "max-decimal-places",
                    format!("at most {places} decimal places"),
                ));
            }
        }
    }
    let text = match value {
        Value::String(s) | Value::Uri(s) => Some(s.clone()),
        Value::Integer(v) => Some(v.to_string()),
        Value::Decimal(v) => Some(v.to_string()),
        _ => None,
    };
    let Some(text) = text else { return Ok(()) };
    let len = text.chars().count();
    if let Some(max) = item.max_length {
        if len > max as usize {
            return Err(("max-length", format!("at most {max} characters")));
        }
    }
    let Some(limits) = &item.limits else {
        return Ok(());
    };
    if let Some(min) = limits.min_length {
        if len < min as usize {
            return Err(("min-length", format!("at least {min} characters")));
        }
    }
    if let Some(pattern) = &limits.regex {
        // Patterns were compiled when the version was published; one that no longer
        // compiles (a newer regex crate) fails closed.
        if !structure::compile(pattern).is_ok_and(|re| re.is_match(&text)) {
            return Err((
                "regex",
                "the answer does not match the item's pattern".into(),
            ));
        }
    }
    Ok(())
}

fn bound(
    value: &Value,
    limit: &Value,
    rule: &'static str,
    bad: std::cmp::Ordering,
) -> Result<(), Failure> {
    match value.compare(limit) {
        Some(o) if o == bad => Err((
            rule,
            format!(
                "the answer is {} the bound",
                if rule == "min-value" {
                    "below"
                } else {
                    "above"
                }
            ),
        )),
        Some(_) => Ok(()),
        // Quantities in another unit: conversion is not implemented yet, so refuse rather
        // than compare numbers of different units.
        None => Err((
            "unit",
            "the answer cannot be compared with the bound; use the item's unit".to_owned(),
        )),
    }
}
