//! R4 `Questionnaire` -> template content, the inverse of [`super::export`].
//!
//! Accepted: `resourceType`, `id` (ignored: the server assigns ids), `url`, `identifier`
//! (`system`, `value`), `version` and `status` (checked, then replaced by this server's
//! lifecycle: an import is a draft), `title` (the template name; `name` stands in when there
//! is no title), `description`, and in items exactly what the exporter writes. Anything else
//! (`code`, `definition`, `answerReference`, unknown extensions, `modifierExtension`,
//! primitive extensions `_x`, ...) is a 422 naming its path. Structure rules (que-*) are
//! checked afterwards by the template itself.

use std::collections::{BTreeSet, HashMap};

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value as Json};

use super::reader::Obj;
use super::values::{self, read_coding, read_integer, Prim};
use super::{ext, unsupported, FhirIdentifier, FhirIdentity, UCUM};
use crate::error::{ApiError, ApiResult};
use crate::templates::model::{Content, Item, ItemType, Limits};
use crate::templates::value::{OptionValue, Value};

/// Longest template name and description (as [`crate::templates::Template`] allows).
const MAX_NAME: usize = 200;
const MAX_DESCRIPTION: usize = 2000;

/// What a Questionnaire becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub name: String,
    pub description: Option<String>,
    pub identity: FhirIdentity,
    pub content: Content,
}

/// Reads a Questionnaire; 422 naming the path of the first thing that cannot be kept.
pub fn questionnaire(json: &Json) -> ApiResult<Imported> {
    let root = "Questionnaire";
    let mut q = Obj::new(json, root)?;
    match q.take("resourceType").and_then(Json::as_str) {
        Some("Questionnaire") => {}
        _ => {
            return Err(unsupported(
                "Questionnaire.resourceType",
                "must be \"Questionnaire\"",
            ))
        }
    }
    // The sender's server id: a create assigns a new one.
    q.take("id");
    let url = q.text("url", Prim::Uri)?;
    let mut identifier = Vec::new();
    for (path, entry) in q.list("identifier")? {
        let mut obj = Obj::new(entry, &path)?;
        let system = obj.text("system", Prim::Uri)?;
        let value = obj.text("value", Prim::String)?;
        obj.finish()?;
        if system.is_none() && value.is_none() {
            return Err(unsupported(
                &path,
                "an identifier needs a system or a value",
            ));
        }
        identifier.push(FhirIdentifier { system, value });
    }
    q.text("version", Prim::String)?;
    match q.text("status", Prim::Code)?.as_deref() {
        Some("draft" | "active" | "retired" | "unknown") => {}
        Some(_) => {
            return Err(unsupported(
                "Questionnaire.status",
                "must be draft, active, retired or unknown",
            ))
        }
        None => return Err(unsupported("Questionnaire.status", "is required")),
    }
    let title = q.text("title", Prim::String)?;
    let name =
        match (title, q.text("name", Prim::String)?) {
            (Some(title), None) => title,
            (None, Some(name)) => name,
            (Some(_), Some(_)) => return Err(unsupported(
                "Questionnaire.name",
                "a template keeps one name: send title only (name is used when there is no title)",
            )),
            (None, None) => {
                return Err(unsupported(
                    "Questionnaire.title",
                    "is required: it becomes the template name",
                ))
            }
        };
    if name.chars().count() > MAX_NAME {
        return Err(unsupported(
            "Questionnaire.title",
            format!("at most {MAX_NAME} characters"),
        ));
    }
    let description = q.text("description", Prim::String)?;
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(unsupported(
            "Questionnaire.description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    let mut items = Vec::new();
    for (path, entry) in q.list("item")? {
        items.push(item(entry, &path)?);
    }
    q.finish()?;
    uri_answers(&mut items);
    // Other content (rules) has no FHIR form yet; the guard refuses it on export.
    let content = Content {
        items,
        ..Content::default()
    };
    Ok(Imported {
        name,
        description,
        identity: FhirIdentity { url, identifier },
        content,
    })
}

/// A model enum from its FHIR code (`"open-choice"`, `">="`, `"any"`).
fn code<T: DeserializeOwned>(obj: &mut Obj<'_>, key: &str, what: &str) -> ApiResult<Option<T>> {
    let path = obj.child(key);
    obj.text(key, Prim::Code)?
        .map(|c| {
            serde_json::from_value(json!(c))
                .map_err(|_| unsupported(&path, format!("{c:?} is not {what}")))
        })
        .transpose()
}

fn to_json<T: serde::Serialize>(value: &T) -> ApiResult<Json> {
    serde_json::to_value(value).map_err(ApiError::internal)
}

/// A count that a template keeps as `u32`.
fn count(json: &Json, path: &str) -> ApiResult<u32> {
    u32::try_from(read_integer(json, path)?).map_err(|_| unsupported(path, "must not be negative"))
}

fn item(json: &Json, path: &str) -> ApiResult<Item> {
    let mut obj = Obj::new(json, path)?;
    let mut out = Map::new();
    let link_id = obj
        .text("linkId", Prim::String)?
        .ok_or_else(|| unsupported(path, "linkId is required"))?;
    out.insert("link_id".into(), json!(link_id));
    let ty: ItemType = code(&mut obj, "type", "an R4 item type")?
        .ok_or_else(|| unsupported(path, "type is required"))?;
    out.insert("type".into(), to_json(&ty)?);
    for (fhir, model) in [("text", "text"), ("prefix", "prefix")] {
        if let Some(v) = obj.text(fhir, Prim::String)? {
            out.insert(model.into(), json!(v));
        }
    }
    for (fhir, model) in [
        ("required", "required"),
        ("repeats", "repeats"),
        ("readOnly", "read_only"),
    ] {
        if obj.flag(fhir)? {
            out.insert(model.into(), json!(true));
        }
    }
    if let Some(v) = obj.take("maxLength") {
        out.insert(
            "max_length".into(),
            json!(count(v, &format!("{path}.maxLength"))?),
        );
    }
    if let Some(v) = obj.text("answerValueSet", Prim::Uri)? {
        out.insert("answer_value_set".into(), json!(v));
    }
    let mut options = Vec::new();
    for (p, entry) in obj.list("answerOption")? {
        let mut o = Obj::new(entry, &p)?;
        let value = values::take(&mut o, "value", values::OPTION)?
            .ok_or_else(|| unsupported(&p, "an answerOption needs a value[x]"))?;
        let value = match value {
            Value::Integer(v) => OptionValue::Integer(v),
            Value::Date(v) => OptionValue::Date(v),
            Value::Time(v) => OptionValue::Time(v),
            Value::String(v) => OptionValue::String(v),
            Value::Coding(v) => OptionValue::Coding(v),
            _ => return Err(ApiError::internal("option kinds out of sync")),
        };
        let mut option = json!({ "value": to_json(&value)? });
        if o.flag("initialSelected")? {
            option["initial_selected"] = json!(true);
        }
        o.finish()?;
        options.push(option);
    }
    let mut initial = Vec::new();
    for (p, entry) in obj.list("initial")? {
        let mut o = Obj::new(entry, &p)?;
        let value = values::take(&mut o, "value", values::INITIAL)?
            .ok_or_else(|| unsupported(&p, "an initial needs a value[x]"))?;
        o.finish()?;
        initial.push(to_json(&value)?);
    }
    let mut enable_when = Vec::new();
    for (p, entry) in obj.list("enableWhen")? {
        let mut o = Obj::new(entry, &p)?;
        let question = o
            .text("question", Prim::String)?
            .ok_or_else(|| unsupported(&p, "question is required"))?;
        let operator: crate::templates::model::Operator =
            code(&mut o, "operator", "an enableWhen operator")?
                .ok_or_else(|| unsupported(&p, "operator is required"))?;
        let answer = values::take(&mut o, "answer", values::ANSWER)?
            .ok_or_else(|| unsupported(&p, "an enableWhen needs an answer[x]"))?;
        o.finish()?;
        enable_when.push(
            json!({ "question": question, "operator": to_json(&operator)?,
                                 "answer": to_json(&answer)? }),
        );
    }
    for (key, list) in [
        ("answer_options", options),
        ("initial", initial),
        ("enable_when", enable_when),
    ] {
        if !list.is_empty() {
            out.insert(key.into(), Json::Array(list));
        }
    }
    let behavior: Option<crate::templates::model::EnableBehavior> =
        code(&mut obj, "enableBehavior", "all or any")?;
    if let Some(b) = behavior {
        out.insert("enable_behavior".into(), to_json(&b)?);
    }
    let extensions = obj.list("extension")?;
    if !extensions.is_empty() {
        out.insert("limits".into(), to_json(&limits(extensions)?)?);
    }
    let mut children = Vec::new();
    for (p, entry) in obj.list("item")? {
        children.push(to_json(&item(entry, &p)?)?);
    }
    if !children.is_empty() {
        out.insert("items".into(), Json::Array(children));
    }
    obj.finish()?;
    serde_json::from_value(Json::Object(out)).map_err(|e| unsupported(path, e.to_string()))
}

/// The limits extensions of one item.
fn limits(extensions: Vec<(String, &Json)>) -> ApiResult<Limits> {
    let mut limits = Limits::default();
    let mut seen = BTreeSet::new();
    for (p, entry) in extensions {
        let mut o = Obj::new(entry, &p)?;
        let url = o
            .text("url", Prim::Uri)?
            .ok_or_else(|| unsupported(&p, "an extension needs a url"))?;
        // minValue and minQuantity say the same thing, as do the two maxima.
        let slot = match url.as_str() {
            ext::MIN_QUANTITY => ext::MIN_VALUE,
            ext::MAX_QUANTITY => ext::MAX_VALUE,
            other => other,
        };
        if !seen.insert(slot.to_owned()) {
            return Err(unsupported(&p, format!("a second {url} extension")));
        }
        let mut value = |kinds| {
            values::take(&mut o, "value", kinds)?
                .ok_or_else(|| unsupported(&p, format!("the {url} extension needs a value[x]")))
        };
        match url.as_str() {
            ext::MIN_VALUE => limits.min_value = Some(value(values::BOUND)?),
            ext::MAX_VALUE => limits.max_value = Some(value(values::BOUND)?),
            ext::MIN_QUANTITY => limits.min_value = Some(value(values::QUANTITY)?),
            ext::MAX_QUANTITY => limits.max_value = Some(value(values::QUANTITY)?),
            ext::MIN_LENGTH | ext::MAX_DECIMAL_PLACES => {
                let json = o
                    .take("valueInteger")
                    .ok_or_else(|| unsupported(&p, format!("{url} needs valueInteger")))?;
                let n = count(json, &format!("{p}.valueInteger"))?;
                if url == ext::MIN_LENGTH {
                    limits.min_length = Some(n);
                } else {
                    limits.max_decimal_places = Some(n);
                }
            }
            ext::REGEX => {
                limits.regex = Some(
                    o.text("valueString", Prim::String)?
                        .ok_or_else(|| unsupported(&p, "regex needs valueString"))?,
                );
            }
            ext::UNIT => {
                let path = format!("{p}.valueCoding");
                let json = o
                    .take("valueCoding")
                    .ok_or_else(|| unsupported(&p, "questionnaire-unit needs valueCoding"))?;
                let coding = read_coding(json, &path)?;
                if coding.system.as_deref() != Some(UCUM) || coding.display.is_some() {
                    return Err(unsupported(
                        &path,
                        format!("a unit is a UCUM code: system {UCUM}, code, and no display"),
                    ));
                }
                limits.unit = Some(coding.code);
            }
            _ => {
                return Err(unsupported(
                    &format!("{p}.url"),
                    format!("extension {url} is not supported"),
                ))
            }
        }
        o.finish()?;
    }
    Ok(limits)
}

/// R4 has no `answerUri`: an enableWhen on a url item carries its answer as a string, which
/// the template holds as a uri again.
fn uri_answers(items: &mut [Item]) {
    fn types(items: &[Item], out: &mut HashMap<String, ItemType>) {
        for item in items {
            out.insert(item.link_id.clone(), item.item_type);
            types(&item.items, out);
        }
    }
    fn fix(items: &mut [Item], types: &HashMap<String, ItemType>) {
        for item in items.iter_mut() {
            for cond in &mut item.enable_when {
                if let Value::String(s) = &cond.answer {
                    if types.get(&cond.question) == Some(&ItemType::Url) {
                        cond.answer = Value::Uri(s.clone());
                    }
                }
            }
            fix(&mut item.items, types);
        }
    }
    let mut map = HashMap::new();
    types(items, &mut map);
    fix(items, &map);
}
