//! Save-time checks of a template's item tree: the FHIR Questionnaire invariants (que-*)
//! plus what makes a template unusable in practice (an enableWhen on an unknown item, a
//! bound of the wrong type, a regex that does not compile). A draft that breaks one is
//! refused with 422 naming the rule and the linkId, so a form designer can find it.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::json;

use super::model::{Content, Item, ItemType, Operator};
use super::value::{OptionValue, Value};
use crate::error::ApiError;

/// Deepest nesting of items a template may have (sections within sections are rare; the
/// bound keeps recursive evaluation cheap).
pub const MAX_DEPTH: usize = 10;
/// Most items a template may have.
pub const MAX_ITEMS: usize = 2000;
/// Longest linkId.
pub const MAX_LINK_ID: usize = 255;
/// Compiled size bound of a `limits.regex`, so a pattern cannot make validation costly.
pub const REGEX_SIZE_LIMIT: usize = 1 << 16;

/// A broken template rule: the rule key (`que-2`, `enable-when`, ...), the item and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub link_id: String,
    pub message: String,
}

impl From<Violation> for ApiError {
    fn from(v: Violation) -> Self {
        ApiError::Unprocessable {
            code: "invalid_template",
            message: format!("{} at item {:?}: {}", v.rule, v.link_id, v.message),
            details: json!({ "rule": v.rule, "link_id": v.link_id, "message": v.message }),
        }
    }
}

fn fail(rule: &'static str, item: &Item, message: impl Into<String>) -> Result<(), Violation> {
    Err(Violation {
        rule,
        link_id: item.link_id.clone(),
        message: message.into(),
    })
}

/// Checks a whole template; the first broken rule, in document order, is returned.
pub fn check(content: &Content) -> Result<(), Violation> {
    let all = content.walk();
    if all.len() > MAX_ITEMS {
        return Err(Violation {
            rule: "size",
            link_id: String::new(),
            message: format!("a template has at most {MAX_ITEMS} items"),
        });
    }
    let mut types: HashMap<&str, ItemType> = HashMap::new();
    for (item, depth) in &all {
        check_link_id(item)?;
        if *depth >= MAX_DEPTH {
            fail("size", item, format!("items nest at most {MAX_DEPTH} deep"))?;
        }
        if types.insert(&item.link_id, item.item_type).is_some() {
            fail("que-2", item, "linkId is used by more than one item")?;
        }
    }
    for (item, _) in &all {
        check_item(item, &types)?;
    }
    check_cycles(content)
}

/// An item depends on the questions its enableWhen names and on its parent (whose state it
/// inherits). A cycle there would make an item enabled only if it already were, so it is
/// refused at save time.
fn check_cycles(content: &Content) -> Result<(), Violation> {
    fn edges<'a>(
        items: &'a [Item],
        parent: Option<&'a str>,
        out: &mut HashMap<&'a str, Vec<&'a str>>,
    ) {
        for item in items {
            let mut deps: Vec<&str> = item
                .enable_when
                .iter()
                .map(|c| c.question.as_str())
                .collect();
            deps.extend(parent);
            out.insert(&item.link_id, deps);
            edges(&item.items, Some(&item.link_id), out);
        }
    }
    let mut deps = HashMap::new();
    edges(&content.items, None, &mut deps);
    // 1 = on the current path, 2 = done. Iterative, so a long chain cannot overflow the stack.
    let mut color: HashMap<&str, u8> = HashMap::new();
    for (item, _) in content.walk() {
        let start = item.link_id.as_str();
        if color.contains_key(start) {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        color.insert(start, 1);
        while let Some((node, next)) = stack.pop() {
            let out = deps.get(node).map(Vec::as_slice).unwrap_or(&[]);
            let Some(&dep) = out.get(next) else {
                color.insert(node, 2);
                continue;
            };
            stack.push((node, next + 1));
            match color.get(dep) {
                Some(1) => {
                    return Err(Violation {
                        rule: "enable-when",
                        link_id: node.to_owned(),
                        message: format!("enable_when dependencies form a cycle through {dep:?}"),
                    })
                }
                Some(_) => {}
                None => {
                    color.insert(dep, 1);
                    stack.push((dep, 0));
                }
            }
        }
    }
    Ok(())
}

fn check_link_id(item: &Item) -> Result<(), Violation> {
    let id = &item.link_id;
    let ok = !id.is_empty()
        && id.len() <= MAX_LINK_ID
        && id.trim() == id
        && !id.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        fail(
            "link-id",
            item,
            format!("linkId must be 1 to {MAX_LINK_ID} bytes without surrounding whitespace or control characters"),
        )
    }
}

fn check_item(item: &Item, types: &HashMap<&str, ItemType>) -> Result<(), Violation> {
    use ItemType as T;
    let ty = item.item_type;
    if ty == T::Group && item.items.is_empty() {
        fail("que-1", item, "a group must have child items")?;
    }
    if ty == T::Display && !item.items.is_empty() {
        fail("que-1", item, "a display item cannot have child items")?;
    }
    if !item.answer_options.is_empty() && item.answer_value_set.is_some() {
        fail(
            "que-4",
            item,
            "answer_options and answer_value_set are exclusive",
        )?;
    }
    let has_options = !item.answer_options.is_empty() || item.answer_value_set.is_some();
    let option_capable = matches!(
        ty,
        T::Choice | T::OpenChoice | T::Integer | T::Date | T::Time | T::String
    );
    if has_options && !option_capable {
        fail("que-5", item, "only choice, open-choice, integer, date, time and string items may have answer options")?;
    }
    for option in &item.answer_options {
        if !option_fits(ty, &option.value) || !option.value.to_value().well_formed() {
            fail(
                "que-5",
                item,
                "an answer option's value does not match the item type",
            )?;
        }
    }
    if ty == T::Display && (item.required || item.repeats) {
        fail("que-6", item, "a display item cannot be required or repeat")?;
    }
    if !item.initial.is_empty() && !ty.is_question() {
        fail(
            "que-8",
            item,
            "group and display items cannot have initial values",
        )?;
    }
    if ty == T::Display && item.read_only {
        fail("que-9", item, "a display item cannot be read_only")?;
    }
    let simple = matches!(
        ty,
        T::Boolean | T::Decimal | T::Integer | T::String | T::Text | T::Url | T::OpenChoice
    );
    if item.max_length.is_some() && !simple {
        fail("que-10", item, "max_length is only allowed on boolean, decimal, integer, string, text, url and open-choice items")?;
    }
    if !item.answer_options.is_empty() && !item.initial.is_empty() {
        fail(
            "que-11",
            item,
            "with answer_options use initial_selected, not initial",
        )?;
    }
    if item.enable_when.len() > 1 && item.enable_behavior.is_none() {
        fail(
            "que-12",
            item,
            "more than one enable_when needs enable_behavior",
        )?;
    }
    if item.initial.len() > 1 && !item.repeats {
        fail("que-13", item, "several initial values need repeats")?;
    }
    if item.enable_when.is_empty() && item.enable_behavior.is_some() {
        fail("enable-when", item, "enable_behavior without enable_when")?;
    }
    for value in &item.initial {
        if !value.fits(ty) || !value.well_formed() {
            fail(
                "type",
                item,
                format!(
                    "an initial {} value does not fit a {ty:?} item",
                    value.kind()
                ),
            )?;
        }
    }
    super::rules::freeze::check_refs(item)?;
    check_enable_when(item, types)?;
    check_limits(item)
}

fn option_fits(ty: ItemType, value: &OptionValue) -> bool {
    match ty {
        ItemType::Choice | ItemType::OpenChoice => true,
        other => value.to_value().fits(other),
    }
}

fn check_enable_when(item: &Item, types: &HashMap<&str, ItemType>) -> Result<(), Violation> {
    for cond in &item.enable_when {
        let Some(&target) = types.get(cond.question.as_str()) else {
            return fail(
                "enable-when",
                item,
                format!("enable_when refers to unknown linkId {:?}", cond.question),
            );
        };
        if cond.question == item.link_id {
            fail("enable-when", item, "an item cannot depend on itself")?;
        }
        if !target.is_question() {
            fail(
                "enable-when",
                item,
                format!(
                    "enable_when refers to {:?}, which holds no answers",
                    cond.question
                ),
            )?;
        }
        match cond.operator {
            Operator::Exists => {
                if !matches!(cond.answer, Value::Boolean(_)) {
                    fail("que-7", item, "operator exists needs a boolean answer")?;
                }
            }
            op => {
                if !cond.answer.fits(target) || !cond.answer.well_formed() {
                    fail(
                        "enable-when",
                        item,
                        format!(
                            "a {} answer cannot be compared with {:?}, a {target:?} item",
                            cond.answer.kind(),
                            cond.question
                        ),
                    )?;
                }
                let ordered = !matches!(op, Operator::Eq | Operator::Ne);
                let orderable = matches!(
                    cond.answer,
                    Value::Integer(_)
                        | Value::Decimal(_)
                        | Value::Date(_)
                        | Value::DateTime(_)
                        | Value::Time(_)
                        | Value::String(_)
                        | Value::Quantity(_)
                );
                if ordered && !orderable {
                    fail(
                        "enable-when",
                        item,
                        format!("a {} answer has no order for {op:?}", cond.answer.kind()),
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn check_limits(item: &Item) -> Result<(), Violation> {
    use ItemType as T;
    let Some(limits) = &item.limits else {
        return Ok(());
    };
    let ty = item.item_type;
    for bound in [&limits.min_value, &limits.max_value].into_iter().flatten() {
        let ranged = matches!(
            ty,
            T::Integer | T::Decimal | T::Date | T::DateTime | T::Time | T::Quantity
        );
        if !ranged || !bound.fits(ty) || !bound.well_formed() {
            fail(
                "limits",
                item,
                format!("a {} bound does not fit a {ty:?} item", bound.kind()),
            )?;
        }
    }
    if let (Some(min), Some(max)) = (&limits.min_value, &limits.max_value) {
        if !matches!(min.compare(max), Some(Ordering::Less | Ordering::Equal)) {
            fail(
                "limits",
                item,
                "min_value must not exceed max_value (quantities in one unit)",
            )?;
        }
    }
    let texty = matches!(ty, T::String | T::Text | T::Url | T::OpenChoice);
    if (limits.min_length.is_some() || limits.regex.is_some()) && !texty {
        fail(
            "limits",
            item,
            "min_length and regex apply to string, text, url and open-choice items",
        )?;
    }
    if let (Some(min), Some(max)) = (limits.min_length, item.max_length) {
        if min > max {
            fail("limits", item, "min_length must not exceed max_length")?;
        }
    }
    if let Some(pattern) = &limits.regex {
        if let Err(e) = compile(pattern) {
            fail("limits", item, format!("regex does not compile: {e}"))?;
        }
    }
    if limits.unit.is_some() && !matches!(ty, T::Quantity | T::Decimal | T::Integer) {
        fail(
            "limits",
            item,
            "unit applies to quantity, decimal and integer items",
        )?;
    }
    if let Some(unit) = &limits.unit {
        if unit.is_empty()
            || unit.len() > 64
            || unit.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            fail(
                "limits",
                item,
                "unit must be a UCUM code (1-64 characters, no spaces)",
            )?;
        }
    }
    if limits.max_decimal_places.is_some() && !matches!(ty, T::Decimal | T::Quantity) {
        fail(
            "limits",
            item,
            "max_decimal_places applies to decimal and quantity items",
        )?;
    }
    Ok(())
}

/// Compiles a limits pattern anchored to the whole answer, with a size bound. The `regex`
/// crate matches in linear time, so a stored pattern cannot stall validation.
pub fn compile(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}
