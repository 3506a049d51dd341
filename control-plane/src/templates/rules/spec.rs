//! What a validation rule says, independent of where it is stored: the definition that the
//! rules resource holds and that publishing copies into a version's content, so a published
//! version keeps validating with the definitions it was published with.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::templates::record::Severity;
use crate::templates::value::{OptionValue, Value};

/// A message in both languages the product speaks; the validate endpoint answers in the one
/// `Accept-Language` asks for and carries both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub zh: String,
    pub en: String,
}

impl Message {
    pub fn new(zh: impl Into<String>, en: impl Into<String>) -> Self {
        Self {
            zh: zh.into(),
            en: en.into(),
        }
    }
}

/// The kinds of a value (the tags of [`Value`]), for `type` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    Boolean,
    Decimal,
    Integer,
    Date,
    DateTime,
    Time,
    String,
    Uri,
    Coding,
    Quantity,
}

impl ValueKind {
    /// Whether `value` is of this kind.
    pub fn holds(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (ValueKind::Boolean, Value::Boolean(_))
                | (ValueKind::Decimal, Value::Decimal(_))
                | (ValueKind::Integer, Value::Integer(_))
                | (ValueKind::Date, Value::Date(_))
                | (ValueKind::DateTime, Value::DateTime(_))
                | (ValueKind::Time, Value::Time(_))
                | (ValueKind::String, Value::String(_))
                | (ValueKind::Uri, Value::Uri(_))
                | (ValueKind::Coding, Value::Coding(_))
                | (ValueKind::Quantity, Value::Quantity(_))
        )
    }

    /// A sample value of this kind (to ask [`Value::fits`] whether an item type takes it).
    pub fn sample(self) -> Value {
        match self {
            ValueKind::Boolean => Value::Boolean(false),
            ValueKind::Decimal => Value::Decimal(0.0),
            ValueKind::Integer => Value::Integer(0),
            ValueKind::Date => Value::Date(String::new()),
            ValueKind::DateTime => Value::DateTime(String::new()),
            ValueKind::Time => Value::Time(String::new()),
            ValueKind::String => Value::String(String::new()),
            ValueKind::Uri => Value::Uri(String::new()),
            ValueKind::Coding => Value::Coding(crate::templates::value::Coding {
                system: None,
                code: String::new(),
                display: None,
            }),
            ValueKind::Quantity => Value::Quantity(crate::templates::value::Quantity {
                value: 0.0,
                unit: None,
            }),
        }
    }
}

/// What a rule checks, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Check {
    /// The item must be answered in a `completed` record (when enabled).
    Required,
    /// Every answer must be of this kind.
    Type { value_type: ValueKind },
    /// Numbers (integer, decimal, quantity) within inclusive bounds. With a unit, answers
    /// are converted into it first (UCUM, see `units`).
    Range {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unit: Option<String>,
    },
    /// The whole answer text matches the pattern (the `regex` crate: linear time).
    Regex { pattern: String },
    /// The answer text has this many characters (inclusive).
    Length {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_length: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_length: Option<u32>,
    },
    /// Every answer is one of these values.
    Options { options: Vec<OptionValue> },
    /// A cross-field condition over linkIds that must hold, e.g. `diastolic < systolic`
    /// (see `expr` for the language). Unanswered or disabled items make a comparison
    /// unknown, and an unknown result passes: `required` rules cover missing answers.
    Expression { expression: String },
}

impl Check {
    /// The `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Check::Required => "required",
            Check::Type { .. } => "type",
            Check::Range { .. } => "range",
            Check::Regex { .. } => "regex",
            Check::Length { .. } => "length",
            Check::Options { .. } => "options",
            Check::Expression { .. } => "expression",
        }
    }
}

/// A rule as frozen into a published version: everything validation needs, nothing about
/// ownership or timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RuleDefinition {
    pub name: String,
    pub severity: Severity,
    /// Shown when the rule fails.
    pub message: Message,
    #[serde(flatten)]
    pub check: Check,
}
