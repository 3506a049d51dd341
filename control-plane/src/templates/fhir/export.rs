//! Template content -> R4 `Questionnaire`.
//!
//! Mapping (model field -> FHIR element):
//! - template name -> `title`, description -> `description`, lifecycle -> `status`
//!   (`draft` for the draft; a published version's own `active` or `retired`) and `version`
//!   (the version number as a string; none for the draft); identity -> `url`, `identifier`
//!   (see [`super::FhirIdentity`]).
//! - item: `link_id` -> `linkId`, `type`, `text`, `prefix`, `required`, `repeats`,
//!   `read_only` -> `readOnly` (the three only when true), `max_length` -> `maxLength`,
//!   `answer_value_set`, `answer_options` -> `answerOption` (`value[x]`, `initialSelected`),
//!   `initial` -> `initial.value[x]`, `enable_when` -> `enableWhen` (`answer[x]`; a uri answer,
//!   which R4 cannot type, is `answerString` on a url item), `enable_behavior`, `items` ->
//!   `item`.
//! - limits -> `extension`, in this order: minValue (sdc-questionnaire-minQuantity for a
//!   quantity), maxValue (sdc-questionnaire-maxQuantity), minLength, regex,
//!   questionnaire-unit (a UCUM Coding), maxDecimalPlaces.
//!
//! Empty lists and false flags are left out, so the output is already in the form
//! [`super::canonical`] writes.

use serde_json::{json, Map, Value as Json};

use super::values::{self, check, integer, Prim};
use super::{ext, guard, FhirIdentity, ID_SYSTEM, UCUM, URL_PREFIX};
use crate::error::{ApiError, ApiResult};
use crate::templates::model::{Content, Item, Limits};
use crate::templates::value::Value;

/// Everything an export says besides the content.
pub struct Meta<'a> {
    pub template_id: &'a str,
    /// The template name; becomes `title`.
    pub title: &'a str,
    pub description: Option<&'a str>,
    /// `draft`, `active` or `retired`.
    pub status: &'a str,
    /// The published version exported; `None` for the draft.
    pub version: Option<i64>,
    /// The identity an imported template kept; `None` for one created here.
    pub identity: Option<&'a FhirIdentity>,
}

/// The Questionnaire of `content`; 422 naming the path of anything R4 cannot carry.
pub fn questionnaire(meta: &Meta<'_>, content: &Content) -> ApiResult<Json> {
    guard::check(content)?;
    let root = "Questionnaire";
    let mut out = Map::new();
    out.insert("resourceType".into(), json!("Questionnaire"));
    match meta.identity {
        Some(identity) => {
            if let Some(url) = &identity.url {
                check(Prim::Uri, url, "Questionnaire.url")?;
                out.insert("url".into(), json!(url));
            }
            let mut ids = Vec::new();
            for (i, id) in identity.identifier.iter().enumerate() {
                let path = format!("Questionnaire.identifier[{i}]");
                let mut one = Map::new();
                if let Some(system) = &id.system {
                    check(Prim::Uri, system, &format!("{path}.system"))?;
                    one.insert("system".into(), json!(system));
                }
                if let Some(value) = &id.value {
                    check(Prim::String, value, &format!("{path}.value"))?;
                    one.insert("value".into(), json!(value));
                }
                if one.is_empty() {
                    return Err(super::unsupported(&path, "an identifier cannot be empty"));
                }
                ids.push(Json::Object(one));
            }
            if !ids.is_empty() {
                out.insert("identifier".into(), Json::Array(ids));
            }
        }
        None => {
            let url = format!("{URL_PREFIX}{}", meta.template_id);
            check(Prim::Uri, &url, "Questionnaire.url")?;
            out.insert("url".into(), json!(url));
            out.insert(
                "identifier".into(),
                json!([{ "system": ID_SYSTEM, "value": meta.template_id }]),
            );
        }
    }
    if let Some(version) = meta.version {
        out.insert("version".into(), json!(version.to_string()));
    }
    if !matches!(meta.status, "draft" | "active" | "retired") {
        return Err(ApiError::internal(format!(
            "template status {:?} has no FHIR PublicationStatus",
            meta.status
        )));
    }
    out.insert("status".into(), json!(meta.status));
    check(Prim::String, meta.title, "Questionnaire.title")?;
    out.insert("title".into(), json!(meta.title));
    if let Some(description) = meta.description {
        check(Prim::String, description, "Questionnaire.description")?;
        out.insert("description".into(), json!(description));
    }
    let items = list(&content.items, &format!("{root}.item"), item)?;
    if !items.is_empty() {
        out.insert("item".into(), Json::Array(items));
    }
    Ok(Json::Object(out))
}

fn list<T>(
    entries: &[T],
    path: &str,
    f: impl Fn(&T, &str) -> ApiResult<Json>,
) -> ApiResult<Vec<Json>> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| f(e, &format!("{path}[{i}]")))
        .collect()
}

fn enum_text<T: serde::Serialize>(value: T) -> ApiResult<Json> {
    serde_json::to_value(value).map_err(ApiError::internal)
}

fn item(it: &Item, path: &str) -> ApiResult<Json> {
    let mut out = Map::new();
    let text = |out: &mut Map<String, Json>, key: &str, prim, value: &Option<String>| {
        if let Some(v) = value {
            check(prim, v, &format!("{path}.{key}"))?;
            out.insert(key.to_owned(), json!(v));
        }
        Ok::<(), ApiError>(())
    };
    text(&mut out, "linkId", Prim::String, &Some(it.link_id.clone()))?;
    out.insert("type".into(), enum_text(it.item_type)?);
    text(&mut out, "text", Prim::String, &it.text)?;
    text(&mut out, "prefix", Prim::String, &it.prefix)?;
    for (key, on) in [
        ("required", it.required),
        ("repeats", it.repeats),
        ("readOnly", it.read_only),
    ] {
        if on {
            out.insert(key.into(), json!(true));
        }
    }
    if let Some(max) = it.max_length {
        out.insert(
            "maxLength".into(),
            integer(i64::from(max), &format!("{path}.maxLength"))?,
        );
    }
    text(&mut out, "answerValueSet", Prim::Uri, &it.answer_value_set)?;
    let options = list(
        &it.answer_options,
        &format!("{path}.answerOption"),
        |o, p| {
            let mut one = Map::new();
            values::put_option(&mut one, &o.value, p)?;
            if o.initial_selected {
                one.insert("initialSelected".into(), json!(true));
            }
            Ok(Json::Object(one))
        },
    )?;
    let initial = list(&it.initial, &format!("{path}.initial"), |v, p| {
        let mut one = Map::new();
        values::put(&mut one, "value", v, values::INITIAL, p)?;
        Ok(Json::Object(one))
    })?;
    let enable_when = list(&it.enable_when, &format!("{path}.enableWhen"), |c, p| {
        let mut one = Map::new();
        check(Prim::String, &c.question, &format!("{p}.question"))?;
        one.insert("question".into(), json!(c.question));
        one.insert("operator".into(), enum_text(c.operator)?);
        // R4 has no answerUri: a url item's answer is compared as its text.
        let answer = match &c.answer {
            Value::Uri(u) => Value::String(u.clone()),
            other => other.clone(),
        };
        values::put(&mut one, "answer", &answer, values::ANSWER, p)?;
        Ok(Json::Object(one))
    })?;
    for (key, entries) in [
        ("answerOption", options),
        ("initial", initial),
        ("enableWhen", enable_when),
    ] {
        if !entries.is_empty() {
            out.insert(key.into(), Json::Array(entries));
        }
    }
    if let Some(behavior) = it.enable_behavior {
        out.insert("enableBehavior".into(), enum_text(behavior)?);
    }
    if let Some(limits) = &it.limits {
        let extensions = extensions(limits, &format!("{path}.extension"))?;
        if !extensions.is_empty() {
            out.insert("extension".into(), Json::Array(extensions));
        }
    }
    let children = list(&it.items, &format!("{path}.item"), item)?;
    if !children.is_empty() {
        out.insert("item".into(), Json::Array(children));
    }
    Ok(Json::Object(out))
}

fn extensions(limits: &Limits, path: &str) -> ApiResult<Vec<Json>> {
    let mut out = Vec::new();
    let at = |n: usize| format!("{path}[{n}]");
    for (plain, quantity, bound) in [
        (ext::MIN_VALUE, ext::MIN_QUANTITY, &limits.min_value),
        (ext::MAX_VALUE, ext::MAX_QUANTITY, &limits.max_value),
    ] {
        if let Some(value) = bound {
            let (url, kinds) = match value {
                Value::Quantity(_) => (quantity, values::QUANTITY),
                _ => (plain, values::BOUND),
            };
            let mut one = Map::new();
            one.insert("url".into(), json!(url));
            values::put(&mut one, "value", value, kinds, &at(out.len()))?;
            out.push(Json::Object(one));
        }
    }
    if let Some(min) = limits.min_length {
        let value = integer(i64::from(min), &format!("{}.valueInteger", at(out.len())))?;
        out.push(json!({ "url": ext::MIN_LENGTH, "valueInteger": value }));
    }
    if let Some(regex) = &limits.regex {
        check(
            Prim::String,
            regex,
            &format!("{}.valueString", at(out.len())),
        )?;
        out.push(json!({ "url": ext::REGEX, "valueString": regex }));
    }
    if let Some(unit) = &limits.unit {
        check(
            Prim::Code,
            unit,
            &format!("{}.valueCoding.code", at(out.len())),
        )?;
        out.push(json!({ "url": ext::UNIT, "valueCoding": { "system": UCUM, "code": unit } }));
    }
    if let Some(places) = limits.max_decimal_places {
        let value = integer(
            i64::from(places),
            &format!("{}.valueInteger", at(out.len())),
        )?;
        out.push(json!({ "url": ext::MAX_DECIMAL_PLACES, "valueInteger": value }));
    }
    Ok(out)
}
