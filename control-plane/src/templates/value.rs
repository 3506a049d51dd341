//! Typed values of a template: what `initial`, `answerOption`, `enableWhen.answer` and the
//! limits hold. Tagged by type (`{"integer": 5}`) like FHIR's `value[x]`, so a value never
//! changes meaning with its JSON shape (5 vs 5.0, a date vs a string).

use chrono::{DateTime, NaiveDate, NaiveTime};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::model::ItemType;

/// A coded value (FHIR `Coding`), e.g. a LOINC or SNOMED code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Coding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// An amount with its UCUM unit (FHIR `Quantity`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Quantity {
    pub value: f64,
    /// UCUM code, e.g. `mm[Hg]`, `kg`, `/min`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// One typed value (FHIR `value[x]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Value {
    Boolean(bool),
    Decimal(f64),
    Integer(i64),
    /// `YYYY-MM-DD`.
    Date(String),
    /// RFC 3339 with a time zone.
    DateTime(String),
    /// `HH:MM:SS`.
    Time(String),
    String(String),
    Uri(String),
    Coding(Coding),
    Quantity(Quantity),
}

/// The value of an answer option (FHIR R4 allows these five kinds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OptionValue {
    Integer(i64),
    Date(String),
    Time(String),
    String(String),
    Coding(Coding),
}

impl OptionValue {
    /// The same value as a general [`Value`], for comparisons with answers.
    pub fn to_value(&self) -> Value {
        match self {
            OptionValue::Integer(v) => Value::Integer(*v),
            OptionValue::Date(v) => Value::Date(v.clone()),
            OptionValue::Time(v) => Value::Time(v.clone()),
            OptionValue::String(v) => Value::String(v.clone()),
            OptionValue::Coding(v) => Value::Coding(v.clone()),
        }
    }
}

impl Value {
    /// The value kind's name, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Boolean(_) => "boolean",
            Value::Decimal(_) => "decimal",
            Value::Integer(_) => "integer",
            Value::Date(_) => "date",
            Value::DateTime(_) => "date_time",
            Value::Time(_) => "time",
            Value::String(_) => "string",
            Value::Uri(_) => "uri",
            Value::Coding(_) => "coding",
            Value::Quantity(_) => "quantity",
        }
    }

    /// Whether the text of a date, time or number is what its tag says (a finite number, a
    /// real calendar date); a malformed value must not pass as merely "out of range".
    pub fn well_formed(&self) -> bool {
        match self {
            Value::Decimal(v) => v.is_finite(),
            Value::Quantity(q) => q.value.is_finite(),
            Value::Date(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
            Value::DateTime(s) => DateTime::parse_from_rfc3339(s).is_ok(),
            Value::Time(s) => NaiveTime::parse_from_str(s, "%H:%M:%S").is_ok(),
            Value::Coding(c) => !c.code.is_empty(),
            _ => true,
        }
    }

    /// Whether this value may answer (or be the initial value of) an item of type `ty`.
    pub fn fits(&self, ty: ItemType) -> bool {
        use ItemType as T;
        matches!(
            (ty, self),
            (T::Boolean, Value::Boolean(_))
                | (T::Decimal, Value::Decimal(_))
                | (T::Integer, Value::Integer(_))
                | (T::Date, Value::Date(_))
                | (T::DateTime, Value::DateTime(_))
                | (T::Time, Value::Time(_))
                | (T::String | T::Text, Value::String(_))
                | (T::Url, Value::Uri(_))
                | (T::Quantity, Value::Quantity(_))
                | (
                    T::Choice | T::OpenChoice,
                    Value::Coding(_)
                        | Value::String(_)
                        | Value::Integer(_)
                        | Value::Date(_)
                        | Value::Time(_),
                )
        )
    }

    /// Orders two values of the same kind (numbers, dates, times, strings, quantities in
    /// convertible units); `None` when they do not compare.
    pub fn compare(&self, other: &Value) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Value::Integer(a), Value::Integer(b)) => Some(a.cmp(b)),
            (Value::Decimal(a), Value::Decimal(b)) => a.partial_cmp(b),
            (Value::Integer(a), Value::Decimal(b)) => (*a as f64).partial_cmp(b),
            (Value::Decimal(a), Value::Integer(b)) => a.partial_cmp(&(*b as f64)),
            // ISO 8601 dates and times of one fixed shape order as text.
            (Value::Date(a), Value::Date(b))
            | (Value::Time(a), Value::Time(b))
            | (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
            (Value::DateTime(a), Value::DateTime(b)) => {
                let a = DateTime::parse_from_rfc3339(a).ok()?;
                let b = DateTime::parse_from_rfc3339(b).ok()?;
                Some(a.cmp(&b))
            }
            (Value::Quantity(a), Value::Quantity(b)) if a.unit == b.unit => {
                a.value.partial_cmp(&b.value)
            }
            // Quantities in two known units of one dimension compare after conversion
            // (1500 g < 2 kg); unknown or incompatible units do not compare.
            (Value::Quantity(a), Value::Quantity(b)) => {
                let (Some(from), Some(into)) = (&a.unit, &b.unit) else {
                    return None;
                };
                let a = super::rules::units::convert(a.value, from, into).ok()?;
                a.partial_cmp(&b.value)
            }
            _ => None,
        }
    }
}
