//! The exporter's guard against model growth: the template model is shared with other
//! features (sections, validation rules) and may gain fields this mapping does not know.
//! Before exporting, the serialized content is checked against the fields mapped here; an
//! unknown one is a 422 naming it, so an export never silently drops part of a template.

use serde_json::Value as Json;

use super::unsupported;
use crate::error::{ApiError, ApiResult};
use crate::templates::model::Content;

const CONTENT: &[&str] = &["items"];
const ITEM: &[&str] = &[
    "link_id",
    "type",
    "text",
    "prefix",
    "required",
    "repeats",
    "read_only",
    "max_length",
    "answer_options",
    "answer_value_set",
    "initial",
    "enable_when",
    "enable_behavior",
    "limits",
    "items",
];
const OPTION: &[&str] = &["value", "initial_selected"];
const ENABLE_WHEN: &[&str] = &["question", "operator", "answer"];
const LIMITS: &[&str] = &[
    "min_value",
    "max_value",
    "min_length",
    "regex",
    "unit",
    "max_decimal_places",
];

/// 422 when `content` holds a field that has no FHIR mapping yet.
pub fn check(content: &Content) -> ApiResult<()> {
    let json = serde_json::to_value(content).map_err(ApiError::internal)?;
    known(&json, CONTENT, "content")?;
    items(&json["items"], "content.items")
}

fn items(list: &Json, path: &str) -> ApiResult<()> {
    for (i, item) in list.as_array().into_iter().flatten().enumerate() {
        let path = format!("{path}[{i}]");
        known(item, ITEM, &path)?;
        each(
            &item["answer_options"],
            OPTION,
            &format!("{path}.answer_options"),
        )?;
        each(
            &item["enable_when"],
            ENABLE_WHEN,
            &format!("{path}.enable_when"),
        )?;
        if item["limits"].is_object() {
            known(&item["limits"], LIMITS, &format!("{path}.limits"))?;
        }
        items(&item["items"], &format!("{path}.items"))?;
    }
    Ok(())
}

fn each(list: &Json, fields: &[&str], path: &str) -> ApiResult<()> {
    for (i, entry) in list.as_array().into_iter().flatten().enumerate() {
        known(entry, fields, &format!("{path}[{i}]"))?;
    }
    Ok(())
}

fn known(json: &Json, fields: &[&str], path: &str) -> ApiResult<()> {
    for key in json.as_object().into_iter().flat_map(|m| m.keys()) {
        if !fields.contains(&key.as_str()) {
            return Err(unsupported(
                &format!("{path}.{key}"),
                "this template field has no FHIR Questionnaire mapping yet; export refused \
                 rather than dropping it",
            ));
        }
    }
    Ok(())
}
