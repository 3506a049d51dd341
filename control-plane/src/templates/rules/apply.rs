//! Running the rules attached to one item over one record. Each rule reports at most once
//! per item (its first failing answer), with its own id, severity and message. Answers that
//! failed a built-in check of the item are not passed here: one problem, one issue.

use std::borrow::Cow;

use super::compiled::{CompiledCheck, CompiledRule, Node};
use super::eval::Truth;
use super::messages as msg;
use super::units;
use crate::templates::enable::equal;
use crate::templates::record::{Issues, Severity};
use crate::templates::value::Value;

/// The answer as text, for length and pattern checks (strings, URIs and numbers).
pub fn text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) | Value::Uri(s) => Some(Cow::Borrowed(s)),
        Value::Integer(v) => Some(Cow::Owned(v.to_string())),
        Value::Decimal(v) => Some(Cow::Owned(v.to_string())),
        _ => None,
    }
}

/// Runs `node`'s rules. `missing`: a completed record left the (enabled) item unanswered;
/// `passed`: its answers that passed the built-in checks; `values`: every item's answers,
/// empty for disabled items (for expressions).
pub fn attached(
    node: &Node,
    missing: bool,
    passed: &[&Value],
    values: &[&[Value]],
    issues: &mut Issues,
) {
    for rule in &node.rules {
        let id = node.link_id.as_str();
        let fail = |issues: &mut Issues| {
            issues.push(id, &rule.id, rule.severity, rule.message.clone());
        };
        match &rule.check {
            CompiledCheck::Required => {
                if missing {
                    fail(issues);
                }
            }
            CompiledCheck::Expression(program) => {
                if program.eval(values) == Truth::False {
                    fail(issues);
                }
            }
            CompiledCheck::Broken(reason) => {
                issues.push(id, &rule.id, Severity::Error, msg::broken(reason));
            }
            CompiledCheck::Range {
                min,
                max,
                unit,
                from_item,
            } => {
                for value in passed {
                    match magnitude(node, value, unit.as_deref(), *from_item) {
                        Ok(Some(v)) => {
                            if min.is_some_and(|m| v < m) || max.is_some_and(|m| v > m) {
                                fail(issues);
                                break;
                            }
                        }
                        Ok(None) => {}
                        Err(message) => {
                            issues.push(id, "unit", Severity::Error, message);
                            break;
                        }
                    }
                }
            }
            check => {
                if passed.iter().any(|v| !per_answer(rule, check, v)) {
                    fail(issues);
                }
            }
        }
    }
}

/// The number an answer holds, in the range's unit; `None` for non-numbers.
fn magnitude(
    node: &Node,
    value: &Value,
    unit: Option<&str>,
    from_item: units::Conversion,
) -> Result<Option<f64>, super::Message> {
    Ok(Some(match value {
        Value::Integer(v) => from_item.apply(*v as f64),
        Value::Decimal(v) => from_item.apply(*v),
        Value::Quantity(q) => match (q.unit.as_deref().or(node.unit.as_deref()), unit) {
            (Some(from), Some(into)) => {
                units::convert(q.value, from, into).map_err(|e| msg::unit(&e))?
            }
            (None, Some(_)) => return Err(msg::no_unit()),
            (_, None) => q.value,
        },
        _ => return Ok(None),
    }))
}

/// Whether one answer passes a per-answer rule.
fn per_answer(_rule: &CompiledRule, check: &CompiledCheck, value: &Value) -> bool {
    match check {
        CompiledCheck::Type(kind) => kind.holds(value),
        CompiledCheck::Regex(re) => text(value).is_none_or(|t| re.is_match(&t)),
        CompiledCheck::Length { min, max } => text(value).is_none_or(|t| {
            let len = t.chars().count();
            min.is_none_or(|m| len >= m as usize) && max.is_none_or(|m| len <= m as usize)
        }),
        CompiledCheck::Options(options) => options.iter().any(|o| equal(o, value)),
        _ => true,
    }
}
