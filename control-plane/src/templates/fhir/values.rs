//! Typed template values as FHIR `value[x]` / `answer[x]` elements, and the checks of FHIR
//! primitives. Both directions use the same checks (the patterns of the official R4 JSON
//! schema), so nothing exported fails an R4 validator and nothing imported breaks one.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::{json, Map, Number, Value as Json};

use super::reader::Obj;
use super::{unsupported, UCUM};
use crate::error::{ApiError, ApiResult};
use crate::templates::value::{Coding, OptionValue, Quantity, Value};

/// FHIR primitive types that template strings become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prim {
    /// `string` and `markdown`: at least one character, no whitespace but space, tab, CR, LF.
    String,
    /// `code`: no leading, trailing or repeated whitespace.
    Code,
    /// `uri` and `canonical`: no whitespace.
    Uri,
    Date,
    DateTime,
    Time,
}

/// The official R4 JSON schema's patterns of these primitives.
static PATTERNS: LazyLock<Result<[Regex; 6], regex::Error>> = LazyLock::new(|| {
    const YEAR: &str = "([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)";
    const TIME: &str = "([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?";
    Ok([
        Regex::new(r"^[ \r\n\t\S]+$")?,
        Regex::new(r"^[^\s]+(\s[^\s]+)*$")?,
        Regex::new(r"^\S*$")?,
        Regex::new(&format!(
            "^{YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?$"
        ))?,
        Regex::new(&format!(
            "^{YEAR}(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T{TIME}(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$"
        ))?,
        Regex::new(&format!("^{TIME}$"))?,
    ])
});

/// Checks `text` as a FHIR primitive at `path` (FHIR has no empty strings).
pub fn check(prim: Prim, text: &str, path: &str) -> ApiResult<()> {
    let patterns = PATTERNS.as_ref().map_err(ApiError::internal)?;
    let (i, what) = match prim {
        Prim::String => (
            0,
            "a FHIR string (not empty; no whitespace but space, tab, CR and LF)",
        ),
        Prim::Code => (
            1,
            "a FHIR code (no leading, trailing or repeated whitespace)",
        ),
        Prim::Uri => (2, "a FHIR uri (not empty, no whitespace)"),
        Prim::Date => (3, "a FHIR date"),
        Prim::DateTime => (4, "a FHIR dateTime"),
        Prim::Time => (5, "a FHIR time"),
    };
    if text.is_empty() || !patterns[i].is_match(text) {
        return Err(unsupported(path, format!("must be {what}")));
    }
    Ok(())
}

/// A FHIR `integer` (32 bits) from a template number.
pub fn integer(v: i64, path: &str) -> ApiResult<Json> {
    i32::try_from(v)
        .map(|v| json!(v))
        .map_err(|_| unsupported(path, "outside the 32-bit range of a FHIR integer"))
}

/// The `value[x]` kinds, by their FHIR type suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::Boolean,
        Kind::Decimal,
        Kind::Integer,
        Kind::Date,
        Kind::DateTime,
        Kind::Time,
        Kind::String,
        Kind::Uri,
        Kind::Coding,
        Kind::Quantity,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Kind::Boolean => "Boolean",
            Kind::Decimal => "Decimal",
            Kind::Integer => "Integer",
            Kind::Date => "Date",
            Kind::DateTime => "DateTime",
            Kind::Time => "Time",
            Kind::String => "String",
            Kind::Uri => "Uri",
            Kind::Coding => "Coding",
            Kind::Quantity => "Quantity",
        }
    }

    fn of(value: &Value) -> Kind {
        match value {
            Value::Boolean(_) => Kind::Boolean,
            Value::Decimal(_) => Kind::Decimal,
            Value::Integer(_) => Kind::Integer,
            Value::Date(_) => Kind::Date,
            Value::DateTime(_) => Kind::DateTime,
            Value::Time(_) => Kind::Time,
            Value::String(_) => Kind::String,
            Value::Uri(_) => Kind::Uri,
            Value::Coding(_) => Kind::Coding,
            Value::Quantity(_) => Kind::Quantity,
        }
    }
}

/// `Questionnaire.item.initial.value[x]`.
pub const INITIAL: &[Kind] = &Kind::ALL;
/// `enableWhen.answer[x]` (no uri in R4: answers on url items travel as `answerString`).
pub const ANSWER: &[Kind] = &[
    Kind::Boolean,
    Kind::Decimal,
    Kind::Integer,
    Kind::Date,
    Kind::DateTime,
    Kind::Time,
    Kind::String,
    Kind::Coding,
    Kind::Quantity,
];
/// The minValue and maxValue extensions.
pub const BOUND: &[Kind] = &[
    Kind::Decimal,
    Kind::Integer,
    Kind::Date,
    Kind::DateTime,
    Kind::Time,
];
/// The SDC minQuantity and maxQuantity extensions.
pub const QUANTITY: &[Kind] = &[Kind::Quantity];
/// `answerOption.value[x]`.
pub const OPTION: &[Kind] = &[
    Kind::Integer,
    Kind::Date,
    Kind::Time,
    Kind::String,
    Kind::Coding,
];

/// Writes `value` as `{prefix}{Type}` into `out`; 422 when R4 has no such element here.
pub fn put(
    out: &mut Map<String, Json>,
    prefix: &str,
    value: &Value,
    allowed: &[Kind],
    path: &str,
) -> ApiResult<()> {
    let kind = Kind::of(value);
    let key = format!("{prefix}{}", kind.suffix());
    let path = format!("{path}.{key}");
    if !allowed.contains(&kind) {
        return Err(unsupported(
            &path,
            format!("FHIR R4 has no {key} here ({} value)", value.kind()),
        ));
    }
    let json = match value {
        Value::Boolean(b) => json!(b),
        Value::Decimal(d) => decimal(*d, &path)?,
        Value::Integer(i) => integer(*i, &path)?,
        Value::Date(s) => text(Prim::Date, s, &path)?,
        Value::DateTime(s) => text(Prim::DateTime, s, &path)?,
        Value::Time(s) => text(Prim::Time, s, &path)?,
        Value::String(s) => text(Prim::String, s, &path)?,
        Value::Uri(s) => text(Prim::Uri, s, &path)?,
        Value::Coding(c) => coding(c, &path)?,
        Value::Quantity(q) => quantity(q, &path)?,
    };
    out.insert(key, json);
    Ok(())
}

/// An option value as `valueX`.
pub fn put_option(out: &mut Map<String, Json>, value: &OptionValue, path: &str) -> ApiResult<()> {
    put(out, "value", &value.to_value(), OPTION, path)
}

fn text(prim: Prim, s: &str, path: &str) -> ApiResult<Json> {
    check(prim, s, path)?;
    Ok(json!(s))
}

fn decimal(d: f64, path: &str) -> ApiResult<Json> {
    Number::from_f64(d)
        .map(Json::Number)
        .ok_or_else(|| unsupported(path, "a FHIR decimal must be finite"))
}

fn coding(c: &Coding, path: &str) -> ApiResult<Json> {
    let mut out = Map::new();
    if let Some(system) = &c.system {
        out.insert(
            "system".into(),
            text(Prim::Uri, system, &format!("{path}.system"))?,
        );
    }
    out.insert(
        "code".into(),
        text(Prim::Code, &c.code, &format!("{path}.code"))?,
    );
    if let Some(display) = &c.display {
        out.insert(
            "display".into(),
            text(Prim::String, display, &format!("{path}.display"))?,
        );
    }
    Ok(Json::Object(out))
}

/// A quantity with a UCUM unit: `{value, unit, system, code}` with `unit` = `code`.
fn quantity(q: &Quantity, path: &str) -> ApiResult<Json> {
    let mut out = Map::new();
    out.insert("value".into(), decimal(q.value, &format!("{path}.value"))?);
    if let Some(unit) = &q.unit {
        check(Prim::Code, unit, &format!("{path}.code"))?;
        out.insert("unit".into(), json!(unit));
        out.insert("system".into(), json!(UCUM));
        out.insert("code".into(), json!(unit));
    }
    Ok(Json::Object(out))
}

/// Reads the one `{prefix}{Type}` element of `obj`; `None` when there is none.
pub fn take(obj: &mut Obj<'_>, prefix: &str, allowed: &[Kind]) -> ApiResult<Option<Value>> {
    let present: Vec<String> = obj
        .keys()
        .filter(|k| {
            k.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        })
        .map(str::to_owned)
        .collect();
    let Some(key) = present.first() else {
        return Ok(None);
    };
    if present.len() > 1 {
        return Err(unsupported(
            &obj.path(),
            format!("more than one {prefix}[x]: {}", present.join(", ")),
        ));
    }
    let path = obj.child(key);
    let Some(kind) = allowed
        .iter()
        .copied()
        .find(|k| key.strip_prefix(prefix) == Some(k.suffix()))
    else {
        return Err(unsupported(&path, format!("{key} is not supported here")));
    };
    let Some(json) = obj.take(key) else {
        return Ok(None);
    };
    let value = match kind {
        Kind::Boolean => Value::Boolean(
            json.as_bool()
                .ok_or_else(|| unsupported(&path, "must be a boolean"))?,
        ),
        Kind::Decimal => Value::Decimal(
            json.as_f64()
                .ok_or_else(|| unsupported(&path, "must be a number"))?,
        ),
        Kind::Integer => Value::Integer(read_integer(json, &path)?),
        Kind::Date => Value::Date(read_text(Prim::Date, json, &path)?),
        Kind::DateTime => Value::DateTime(read_text(Prim::DateTime, json, &path)?),
        Kind::Time => Value::Time(read_text(Prim::Time, json, &path)?),
        Kind::String => Value::String(read_text(Prim::String, json, &path)?),
        Kind::Uri => Value::Uri(read_text(Prim::Uri, json, &path)?),
        Kind::Coding => Value::Coding(read_coding(json, &path)?),
        Kind::Quantity => Value::Quantity(read_quantity(json, &path)?),
    };
    Ok(Some(value))
}

/// A FHIR integer (32 bits) at `path`.
pub fn read_integer(json: &Json, path: &str) -> ApiResult<i64> {
    json.as_i64()
        .filter(|v| i32::try_from(*v).is_ok())
        .ok_or_else(|| unsupported(path, "must be a 32-bit integer"))
}

/// A string primitive at `path`.
pub fn read_text(prim: Prim, json: &Json, path: &str) -> ApiResult<String> {
    let s = json
        .as_str()
        .ok_or_else(|| unsupported(path, "must be a string"))?;
    check(prim, s, path)?;
    Ok(s.to_owned())
}

/// A `Coding` with only system, code and display.
pub fn read_coding(json: &Json, path: &str) -> ApiResult<Coding> {
    let mut obj = Obj::new(json, path)?;
    let system = obj.text("system", Prim::Uri)?;
    let code = obj
        .text("code", Prim::Code)?
        .ok_or_else(|| unsupported(path, "a Coding needs a code"))?;
    let display = obj.text("display", Prim::String)?;
    obj.finish()?;
    Ok(Coding {
        system,
        code,
        display,
    })
}

/// A `Quantity` in UCUM: `value`, and `system` + `code` (+ `unit` equal to `code`).
fn read_quantity(json: &Json, path: &str) -> ApiResult<Quantity> {
    let mut obj = Obj::new(json, path)?;
    let value = obj
        .take("value")
        .map(|v| {
            v.as_f64()
                .ok_or_else(|| unsupported(&format!("{path}.value"), "must be a number"))
        })
        .transpose()?
        .ok_or_else(|| unsupported(path, "a quantity needs a value"))?;
    let system = obj.text("system", Prim::Uri)?;
    let code = obj.text("code", Prim::Code)?;
    let unit = obj.text("unit", Prim::String)?;
    obj.finish()?;
    if system.is_some() && system.as_deref() != Some(UCUM) {
        return Err(unsupported(
            &format!("{path}.system"),
            format!("only UCUM ({UCUM}) units are supported"),
        ));
    }
    if unit.is_some() && unit != code {
        return Err(unsupported(
            &format!("{path}.unit"),
            "must equal code (the UCUM code is what a template keeps)",
        ));
    }
    if code.is_some() != system.is_some() {
        return Err(unsupported(path, "code and system (UCUM) go together"));
    }
    Ok(Quantity { value, unit: code })
}
