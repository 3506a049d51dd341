//! The form element library (`GET /api/form-elements`, API §4.3): presets a form designer drags
//! into a template. Each is a ready item (or group subtree) of the template model: the basic
//! item types, one per FHIR R4 type, and clinical presets (vital signs with UCUM units and the
//! plausibility bounds of billing-medical.md §3, pain scale, allergy list, coded diagnosis).
//!
//! The library is static data compiled into the binary (`form_elements.json`), parsed once.
//! Every preset passes the structure rules on its own (a unit test checks it). Its linkIds are
//! unique within the preset only: a designer adding a preset twice, or two presets that share
//! an item (the height/weight singles and the height-weight-BMI group), renames the linkIds,
//! or saving the draft answers 422 `que-2`.

use std::sync::OnceLock;

use axum::Json;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::{Item, ItemType};
use super::value::Coding;
use crate::api::extract::ApiQuery;
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, Endpoint};
use crate::auth::Access;
use crate::error::{ApiError, ApiResult};

/// The library's source, checked by the unit tests below.
const SOURCE: &str = include_str!("form_elements.json");

/// Which palette a preset belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ElementCategory {
    /// One plain item per FHIR item type.
    Basic,
    /// Clinical presets with units and bounds.
    Clinical,
}

/// One preset of the library.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormElement {
    /// Stable id, e.g. `blood-pressure` (for basic elements, the item type).
    pub id: String,
    pub category: ElementCategory,
    pub name: String,
    /// The name in Chinese.
    pub name_zh: String,
    pub description: String,
    /// The concept the preset captures (LOINC), for designers and exports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Coding>,
    /// The ready item (or group with its items) to add to a draft.
    pub item: Item,
}

/// Query of `GET /api/form-elements`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FormElementQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// Only this palette.
    pub category: Option<ElementCategory>,
    /// Only presets whose top item has this type (`group`, `integer`, ...).
    #[serde(rename = "type")]
    pub item_type: Option<ItemType>,
}

/// The whole library, in palette order.
pub fn library() -> ApiResult<&'static [FormElement]> {
    static LIBRARY: OnceLock<Result<Vec<FormElement>, String>> = OnceLock::new();
    LIBRARY
        .get_or_init(|| serde_json::from_str(SOURCE).map_err(|e| e.to_string()))
        .as_deref()
        .map_err(|e| ApiError::internal(format!("form element library: {e}")))
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/form-elements",
            "templates.form_elements",
            "List the form element library: basic item types and clinical presets, each a \
             ready item subtree with units and bounds",
        )
        .access(Access::Read)
        .resource("form_element")
        .query::<FormElementQuery>()
        .response::<Page<FormElement>>(),
        list,
    )
}

async fn list(ApiQuery(q): ApiQuery<FormElementQuery>) -> ApiResult<Json<Page<FormElement>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let matching: Vec<&FormElement> = library()?
        .iter()
        .filter(|e| q.category.is_none_or(|c| c == e.category))
        .filter(|e| q.item_type.is_none_or(|t| t == e.item.item_type))
        .collect();
    let skip = (page as usize - 1).saturating_mul(size as usize);
    Ok(Json(Page {
        total: matching.len() as u64,
        items: matching
            .into_iter()
            .skip(skip)
            .take(size as usize)
            .cloned()
            .collect(),
        page,
        page_size: size,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::templates::model::Content;
    use crate::templates::structure;
    use crate::templates::value::Value;

    fn find(id: &str) -> &'static FormElement {
        library()
            .expect("library parses")
            .iter()
            .find(|e| e.id == id)
            .unwrap_or_else(|| panic!("preset {id} missing"))
    }

    fn item<'a>(root: &'a Item, link_id: &str) -> &'a Item {
        fn go<'a>(i: &'a Item, link_id: &str) -> Option<&'a Item> {
            if i.link_id == link_id {
                return Some(i);
            }
            i.items.iter().find_map(|c| go(c, link_id))
        }
        go(root, link_id).unwrap_or_else(|| panic!("item {link_id} missing"))
    }

    #[test]
    fn every_preset_is_a_valid_template_on_its_own() {
        let all = library().expect("library parses");
        let mut ids = HashSet::new();
        for e in all {
            assert!(ids.insert(e.id.as_str()), "duplicate preset id {}", e.id);
            let content = Content {
                items: vec![e.item.clone()],
                ..Content::default()
            };
            if let Err(v) = structure::check(&content) {
                panic!("preset {} breaks {}: {}", e.id, v.rule, v.message);
            }
            assert!(!e.name.is_empty() && !e.name_zh.is_empty(), "{}", e.id);
        }
    }

    #[test]
    fn every_item_type_has_a_basic_element() {
        let types: HashSet<String> = library()
            .expect("library parses")
            .iter()
            .filter(|e| e.category == ElementCategory::Basic)
            .map(|e| format!("{:?}", e.item.item_type))
            .collect();
        assert_eq!(types.len(), 16, "{types:?}");
    }

    #[test]
    fn clinical_presets_carry_units_and_bounds() {
        let expect = [
            ("blood-pressure", "systolic", "mm[Hg]", 10.0, 250.0),
            ("blood-pressure", "diastolic", "mm[Hg]", 30.0, 200.0),
            ("heart-rate", "heart-rate", "/min", 10.0, 500.0),
            ("body-temperature", "body-temperature", "Cel", 34.0, 45.0),
            ("spo2", "spo2", "%", 0.0, 100.0),
            ("body-height", "body-height", "cm", 20.0, 250.0),
            ("body-weight", "body-weight", "kg", 2.0, 500.0),
            ("bmi", "bmi", "kg/m2", 16.0, 100.0),
            ("pain-scale", "pain-score", "", 0.0, 10.0),
        ];
        let number = |v: &Option<Value>| match v {
            Some(Value::Integer(n)) => *n as f64,
            Some(Value::Decimal(n)) => *n,
            Some(Value::Quantity(q)) => q.value,
            other => panic!("bound {other:?}"),
        };
        for (preset, link_id, unit, min, max) in expect {
            let e = find(preset);
            assert_eq!(e.category, ElementCategory::Clinical);
            let limits = item(&e.item, link_id).limits.clone().expect("limits");
            assert_eq!(limits.unit.as_deref().unwrap_or(""), unit, "{link_id}");
            assert_eq!(number(&limits.min_value), min, "{link_id}");
            assert_eq!(number(&limits.max_value), max, "{link_id}");
        }
        assert!(find("bmi").item.read_only, "BMI is calculated");
        let allergies = &find("allergy-list").item;
        assert!(allergies.repeats && allergies.item_type == ItemType::Group);
        let severity = item(allergies, "allergy-severity");
        assert_eq!(severity.answer_options.len(), 3);
        let diagnosis = item(&find("diagnosis").item, "diagnosis-code");
        assert_eq!(diagnosis.item_type, ItemType::Choice);
        assert!(diagnosis.answer_value_set.is_some());
        let hwb = &find("height-weight-bmi").item;
        assert_eq!(hwb.items.len(), 3);
    }
}
