//! A published version prepared for validating many records: items flattened in document
//! order with indices instead of linkIds, enableWhen targets resolved, regexes, option sets,
//! unit conversions and expressions compiled once. Built once per version (see `cache`),
//! never per record.

use std::collections::HashMap;

use regex::Regex;

use super::eval::{self, Program};
use super::spec::{Check, Message, RuleDefinition, ValueKind};
use super::units::{self, Conversion};
use crate::templates::model::{Content, EnableBehavior, Item, ItemType, Operator};
use crate::templates::record::Severity;
use crate::templates::structure::{self, Violation};
use crate::templates::value::Value;

/// One enableWhen condition with its question resolved.
#[derive(Debug)]
pub struct Cond {
    /// Index of the question; `None` (unknown linkId) never holds.
    pub question: Option<usize>,
    pub op: Operator,
    pub answer: Value,
}

/// An attached rule, ready to run.
#[derive(Debug)]
pub struct CompiledRule {
    pub id: String,
    pub severity: Severity,
    pub message: Message,
    pub check: CompiledCheck,
}

/// What an attached rule checks, in runnable form.
#[derive(Debug)]
pub enum CompiledCheck {
    Required,
    Type(ValueKind),
    Range {
        min: Option<f64>,
        max: Option<f64>,
        /// The unit the bounds are in.
        unit: Option<String>,
        /// From the item's unit to the bounds' unit, for integer and decimal answers.
        from_item: Conversion,
    },
    Regex(Regex),
    Length {
        min: Option<u32>,
        max: Option<u32>,
    },
    Options(Vec<Value>),
    Expression(Program),
    /// A rule that cannot run here (definition missing, or it no longer fits the item):
    /// it fails closed with this reason rather than letting records through unchecked.
    Broken(String),
}

/// One item, flattened.
#[derive(Debug)]
pub struct Node {
    pub link_id: String,
    pub ty: ItemType,
    pub parent: Option<usize>,
    /// One past the last descendant: descendants are `index + 1 .. end`.
    pub end: usize,
    pub required: bool,
    pub repeats: bool,
    pub conds: Vec<Cond>,
    pub any: bool,
    pub options: Vec<Value>,
    pub min: Option<Value>,
    pub max: Option<Value>,
    /// The item's UCUM unit (`limits.unit`).
    pub unit: Option<String>,
    pub max_decimal_places: Option<u32>,
    pub max_length: Option<u32>,
    pub min_length: Option<u32>,
    /// `Some(None)`: the pattern no longer compiles, so every answer fails (closed).
    pub regex: Option<Option<Regex>>,
    pub rules: Vec<CompiledRule>,
}

impl Node {
    /// Whether built-in checks need the answer as text.
    pub fn needs_text(&self) -> bool {
        self.max_length.is_some() || self.min_length.is_some() || self.regex.is_some()
    }
}

/// A version ready to validate records.
#[derive(Debug)]
pub struct CompiledVersion {
    pub nodes: Vec<Node>,
    pub by_id: HashMap<String, usize>,
}

impl CompiledVersion {
    /// Compiles published content. Never fails: what cannot compile fails closed when a
    /// record is checked (publish refuses such content in the first place).
    pub fn new(content: &Content) -> Self {
        let mut version = Self::skeleton(content);
        for (index, item) in content.walk().into_iter().map(|(i, _)| i).enumerate() {
            let rules = item
                .rules
                .iter()
                .map(|id| {
                    let (severity, message, check) = match content.rules.get(id) {
                        Some(def) => (
                            def.severity,
                            def.message.clone(),
                            compile_rule(&version, index, def)
                                .unwrap_or_else(CompiledCheck::Broken),
                        ),
                        None => (
                            Severity::Error,
                            Message::new("规则定义缺失", "the rule's definition is missing"),
                            CompiledCheck::Broken(format!("rule {id} has no definition")),
                        ),
                    };
                    CompiledRule {
                        id: id.clone(),
                        severity,
                        message,
                        check,
                    }
                })
                .collect();
            version.nodes[index].rules = rules;
        }
        version
    }

    /// Checks that every attached rule has a definition and fits its item (publish time):
    /// the first problem, in document order, as a 422-ready violation.
    pub fn check_rules(content: &Content) -> Result<(), Violation> {
        let version = Self::skeleton(content);
        for (index, item) in content.walk().into_iter().map(|(i, _)| i).enumerate() {
            for id in &item.rules {
                let fail = |message: String| Violation {
                    rule: "rules",
                    link_id: item.link_id.clone(),
                    message,
                };
                let def = content
                    .rules
                    .get(id)
                    .ok_or_else(|| fail(format!("unknown validation rule {id:?}")))?;
                compile_rule(&version, index, def)
                    .map_err(|e| fail(format!("rule {id:?} ({}): {e}", def.name)))?;
            }
        }
        Ok(())
    }

    fn skeleton(content: &Content) -> Self {
        let walked = content.walk();
        let mut by_id = HashMap::with_capacity(walked.len());
        for (index, (item, _)) in walked.iter().enumerate() {
            by_id.entry(item.link_id.clone()).or_insert(index);
        }
        let mut nodes: Vec<Node> = Vec::with_capacity(walked.len());
        let mut path: Vec<(usize, usize)> = Vec::new(); // (index, depth) of open ancestors
        for (index, (item, depth)) in walked.iter().enumerate() {
            while path.last().is_some_and(|&(_, d)| d >= *depth) {
                if let Some((done, _)) = path.pop() {
                    nodes[done].end = index;
                }
            }
            nodes.push(node(item, path.last().map(|&(i, _)| i), &by_id));
            path.push((index, *depth));
        }
        for (done, _) in path {
            nodes[done].end = walked.len();
        }
        Self { nodes, by_id }
    }
}

fn node(item: &Item, parent: Option<usize>, by_id: &HashMap<String, usize>) -> Node {
    let limits = item.limits.clone().unwrap_or_default();
    Node {
        link_id: item.link_id.clone(),
        ty: item.item_type,
        parent,
        end: 0,
        required: item.required,
        repeats: item.repeats,
        conds: item
            .enable_when
            .iter()
            .map(|c| Cond {
                question: by_id.get(&c.question).copied(),
                op: c.operator,
                answer: c.answer.clone(),
            })
            .collect(),
        any: item.enable_behavior == Some(EnableBehavior::Any),
        options: item
            .answer_options
            .iter()
            .map(|o| o.value.to_value())
            .collect(),
        min: limits.min_value,
        max: limits.max_value,
        unit: limits.unit,
        max_decimal_places: limits.max_decimal_places,
        max_length: item.max_length,
        min_length: limits.min_length,
        regex: limits.regex.map(|p| structure::compile(&p).ok()),
        rules: Vec::new(),
    }
}

fn texty(ty: ItemType) -> bool {
    matches!(
        ty,
        ItemType::String | ItemType::Text | ItemType::Url | ItemType::OpenChoice
    )
}

/// Compiles one rule for the item at `index`; the error says why it does not fit.
pub fn compile_rule(
    version: &CompiledVersion,
    index: usize,
    def: &RuleDefinition,
) -> Result<CompiledCheck, String> {
    use ItemType as T;
    let node = &version.nodes[index];
    let ty = node.ty;
    let question = ty.is_question();
    Ok(match &def.check {
        Check::Required if question || ty == T::Group => CompiledCheck::Required,
        Check::Type { value_type } if question => {
            if !value_type.sample().fits(ty) {
                return Err(format!("a {ty:?} item never takes {value_type:?} answers"));
            }
            CompiledCheck::Type(*value_type)
        }
        Check::Range { min, max, unit } if matches!(ty, T::Integer | T::Decimal | T::Quantity) => {
            let from_item = match (unit, &node.unit, ty) {
                (Some(u), Some(item_unit), _) => {
                    Conversion::between(item_unit, u).map_err(|e| e.to_string())?
                }
                (Some(u), None, T::Integer | T::Decimal) => {
                    return Err(format!(
                        "the range is in {u:?} but the item declares no unit (limits.unit)"
                    ))
                }
                _ => Conversion::IDENTITY,
            };
            if let Some(u) = unit {
                if !units::is_known(u) {
                    return Err(units::UnitError::Unknown(u.clone()).to_string());
                }
            }
            CompiledCheck::Range {
                min: *min,
                max: *max,
                unit: unit.clone(),
                from_item,
            }
        }
        Check::Regex { pattern } if texty(ty) => {
            CompiledCheck::Regex(structure::compile(pattern).map_err(|e| e.to_string())?)
        }
        Check::Length {
            min_length,
            max_length,
        } if texty(ty) => CompiledCheck::Length {
            min: *min_length,
            max: *max_length,
        },
        Check::Options { options }
            if matches!(
                ty,
                T::Choice | T::OpenChoice | T::Integer | T::Date | T::Time | T::String
            ) =>
        {
            let values: Vec<Value> = options.iter().map(|o| o.to_value()).collect();
            let choice = matches!(ty, T::Choice | T::OpenChoice);
            if let Some(bad) = values.iter().find(|v| !choice && !v.fits(ty)) {
                return Err(format!(
                    "a {} option does not fit a {ty:?} item",
                    bad.kind()
                ));
            }
            CompiledCheck::Options(values)
        }
        Check::Expression { expression } => {
            CompiledCheck::Expression(eval::compile(version, expression)?)
        }
        other => {
            return Err(format!(
                "a {} rule does not apply to a {ty:?} item",
                other.kind()
            ))
        }
    })
}
