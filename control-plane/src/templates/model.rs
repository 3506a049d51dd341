//! The template content: an item tree that mirrors the FHIR R4 Questionnaire, so a template
//! exports to and imports from a Questionnaire without losing meaning. Sections are `group`
//! items and order is array order. Defaults are left out of the JSON so the canonical form
//! (and its hash) does not depend on how a client spelled "false".

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::rules::RuleDefinition;
use super::value::{OptionValue, Value};

/// The 16 item types of R4 (`item-type` value set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ItemType {
    Group,
    Display,
    Boolean,
    Decimal,
    Integer,
    Date,
    #[serde(rename = "dateTime")]
    DateTime,
    Time,
    String,
    Text,
    Url,
    Choice,
    OpenChoice,
    Attachment,
    Reference,
    Quantity,
}

impl ItemType {
    /// Items that hold answers (not `group` or `display`).
    pub fn is_question(self) -> bool {
        !matches!(self, ItemType::Group | ItemType::Display)
    }
}

/// How an enableWhen condition compares the referenced answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Operator {
    #[serde(rename = "exists")]
    Exists,
    #[serde(rename = "=")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<=")]
    Le,
}

/// Whether all or any of several enableWhen conditions must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EnableBehavior {
    All,
    Any,
}

/// One condition on another item's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableWhen {
    /// linkId of the item whose answer is tested.
    pub question: String,
    pub operator: Operator,
    /// Compared with the answer; a boolean for `exists`.
    pub answer: Value,
}

/// One permitted answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerOption {
    pub value: OptionValue,
    #[serde(default, skip_serializing_if = "is_false")]
    pub initial_selected: bool,
}

/// Bounds on an answer (the FHIR minValue, maxValue, minLength, regex, questionnaire-unit and
/// maxDecimalPlaces extensions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Inclusive lower bound, of the item's own value type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<Value>,
    /// Inclusive upper bound, of the item's own value type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    /// Whole-answer pattern (anchored when checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// UCUM code answers are expected in, e.g. `mm[Hg]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_decimal_places: Option<u32>,
}

/// One item of the tree (FHIR `Questionnaire.item`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// Unique in the whole template; answers refer to it.
    pub link_id: String,
    #[serde(rename = "type")]
    pub item_type: ItemType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub repeats: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub answer_options: Vec<AnswerOption>,
    /// Canonical URL of a value set the answer must come from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_value_set: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initial: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enable_when: Vec<EnableWhen>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_behavior: Option<EnableBehavior>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// Children: a group's questions, or questions nested under a question.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Item>,
    /// Ids of the validation rules (`/api/validation-rules`) attached to this item. Their
    /// definitions are copied into [`Content::rules`] when the version is published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
}

/// The content of one template version: what publish freezes and hashes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Content {
    #[serde(default)]
    pub items: Vec<Item>,
    /// The definitions of the rules the items attach, by rule id, as they were when the
    /// version was published (filled by publish; in a draft it is only what the last
    /// publish froze and is replaced at the next one). Later edits of a rule never change
    /// a published version.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, RuleDefinition>,
}

impl Content {
    /// Every item in document order (depth first), with its depth.
    pub fn walk(&self) -> Vec<(&Item, usize)> {
        fn go<'a>(items: &'a [Item], depth: usize, out: &mut Vec<(&'a Item, usize)>) {
            for item in items {
                out.push((item, depth));
                go(&item.items, depth + 1, out);
            }
        }
        let mut out = Vec::new();
        go(&self.items, 0, &mut out);
        out
    }
}

fn is_false(v: &bool) -> bool {
    !*v
}
