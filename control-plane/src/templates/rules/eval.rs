//! Cross-field expressions bound to one version: linkIds resolved to item indices, operand
//! types checked against the items (so `sex < 5` is refused at publish, not at 3 a.m.), unit
//! conversions between items computed once, then evaluated per record in three-valued logic.
//!
//! Semantics: an item operand is its answers (a disabled item has none). A comparison is
//! unknown when a side has no answer; otherwise it is false if any pair of answers compares
//! false, true if all compare true, and unknown when some pair does not compare (a malformed
//! answer, which its `type` issue reports). `and`, `or` and `not` follow Kleene logic, and
//! only a definite `false` fails the rule. Numbers with units compare in the left item's unit
//! (answers in another unit are converted, constants are in the item's unit).

use std::cmp::Ordering;

use chrono::{DateTime, FixedOffset};

use super::compiled::CompiledVersion;
use super::expr::{self, CmpOp, Expr, Operand};
use super::units::Conversion;
use crate::templates::model::ItemType;
use crate::templates::value::Value;

/// What an operand holds, for type checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Text,
    Bool,
    DateTime,
    /// Choice answers may be codes, strings, integers, dates or times.
    Any,
}

/// One side of a bound comparison.
#[derive(Debug)]
pub enum Side {
    Item {
        index: usize,
        /// The item's own unit, that quantity answers are converted into first.
        unit: Option<String>,
        /// Then into the other side's unit (item against item).
        to: Conversion,
    },
    Number(f64),
    Text(String),
    Bool(bool),
    DateTime(DateTime<FixedOffset>),
}

/// A compiled expression.
#[derive(Debug)]
pub enum Program {
    Compare { left: Side, op: CmpOp, right: Side },
    Not(Box<Program>),
    And(Box<Program>, Box<Program>),
    Or(Box<Program>, Box<Program>),
}

/// Three-valued truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    True,
    False,
    Unknown,
}

/// Parses and binds an expression to a version; the error says what is wrong.
pub fn compile(version: &CompiledVersion, text: &str) -> Result<Program, String> {
    let parsed = expr::parse(text).map_err(|e| format!("expression {e}"))?;
    bind(version, &parsed)
}

fn bind(version: &CompiledVersion, e: &Expr) -> Result<Program, String> {
    Ok(match e {
        Expr::Not(inner) => Program::Not(Box::new(bind(version, inner)?)),
        Expr::And(a, b) => Program::And(Box::new(bind(version, a)?), Box::new(bind(version, b)?)),
        Expr::Or(a, b) => Program::Or(Box::new(bind(version, a)?), Box::new(bind(version, b)?)),
        Expr::Compare { left, op, right } => {
            let (l, lk, lunit) = side(version, left)?;
            let (r, rk, runit) = side(version, right)?;
            let compatible = match (lk, rk) {
                (Kind::Any, _) | (_, Kind::Any) => true,
                (a, b) => a == b,
            };
            let (l, mut r) = match (l, r, lk, rk) {
                // A date-time compared with text: the text must be a date-time.
                (Side::Text(t), r, Kind::Text, Kind::DateTime) => (parse_dt(&t)?, r),
                (l, Side::Text(t), Kind::DateTime, Kind::Text) => (l, parse_dt(&t)?),
                (_, _, _, _) if !compatible => {
                    return Err(format!(
                        "cannot compare {} with {}",
                        name(left),
                        name(right)
                    ))
                }
                (l, r, _, _) => (l, r),
            };
            if op.is_ordered() && (lk == Kind::Bool || rk == Kind::Bool) {
                return Err("booleans only compare with == and !=".into());
            }
            if let (Some(lu), Some(ru), Side::Item { to, .. }) = (&lunit, &runit, &mut r) {
                *to = Conversion::between(ru, lu).map_err(|e| e.to_string())?;
            }
            Program::Compare {
                left: l,
                op: *op,
                right: r,
            }
        }
    })
}

fn name(o: &Operand) -> String {
    match o {
        Operand::Item(id) => format!("item {id:?}"),
        Operand::Number(n) => format!("number {n}"),
        Operand::Text(t) => format!("text {t:?}"),
        Operand::Bool(b) => format!("{b}"),
    }
}

fn parse_dt(text: &str) -> Result<Side, String> {
    DateTime::parse_from_rfc3339(text)
        .map(Side::DateTime)
        .map_err(|_| format!("{text:?} is not an RFC 3339 date-time"))
}

fn side(version: &CompiledVersion, o: &Operand) -> Result<(Side, Kind, Option<String>), String> {
    use ItemType as T;
    Ok(match o {
        Operand::Number(n) => (Side::Number(*n), Kind::Number, None),
        Operand::Text(t) => (Side::Text(t.clone()), Kind::Text, None),
        Operand::Bool(b) => (Side::Bool(*b), Kind::Bool, None),
        Operand::Item(id) => {
            let index = *version
                .by_id
                .get(id)
                .ok_or_else(|| format!("the expression names unknown linkId {id:?}"))?;
            let node = &version.nodes[index];
            let kind = match node.ty {
                T::Integer | T::Decimal | T::Quantity => Kind::Number,
                T::Boolean => Kind::Bool,
                T::Date | T::Time | T::String | T::Text | T::Url => Kind::Text,
                T::DateTime => Kind::DateTime,
                T::Choice | T::OpenChoice => Kind::Any,
                other => return Err(format!("item {id:?} ({other:?}) has no comparable answer")),
            };
            let unit = node.unit.clone();
            let side = Side::Item {
                index,
                unit: unit.clone(),
                to: Conversion::IDENTITY,
            };
            (side, kind, unit)
        }
    })
}

/// A comparable view of one value.
enum Scalar<'a> {
    Number(f64),
    Text(&'a str),
    Bool(bool),
    DateTime(DateTime<FixedOffset>),
}

fn scalar<'a>(v: &'a Value, unit: Option<&str>, to: Conversion) -> Option<Scalar<'a>> {
    Some(match v {
        Value::Integer(n) => Scalar::Number(to.apply(*n as f64)),
        Value::Decimal(n) => Scalar::Number(to.apply(*n)),
        Value::Quantity(q) => {
            let own = match (q.unit.as_deref(), unit) {
                (Some(from), Some(into)) => super::units::convert(q.value, from, into).ok()?,
                _ => q.value,
            };
            Scalar::Number(to.apply(own))
        }
        Value::Boolean(b) => Scalar::Bool(*b),
        Value::DateTime(t) => Scalar::DateTime(DateTime::parse_from_rfc3339(t).ok()?),
        Value::Date(t) | Value::Time(t) | Value::String(t) | Value::Uri(t) => Scalar::Text(t),
        Value::Coding(c) => Scalar::Text(&c.code),
    })
}

fn compare(a: &Scalar<'_>, b: &Scalar<'_>) -> Option<Ordering> {
    match (a, b) {
        (Scalar::Number(x), Scalar::Number(y)) => x.partial_cmp(y),
        (Scalar::Text(x), Scalar::Text(y)) => Some(x.cmp(y)),
        (Scalar::Bool(x), Scalar::Bool(y)) => Some(x.cmp(y)),
        (Scalar::DateTime(x), Scalar::DateTime(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn holds(op: CmpOp, o: Ordering) -> bool {
    match op {
        CmpOp::Lt => o == Ordering::Less,
        CmpOp::Le => o != Ordering::Greater,
        CmpOp::Gt => o == Ordering::Greater,
        CmpOp::Ge => o != Ordering::Less,
        CmpOp::Eq => o == Ordering::Equal,
        CmpOp::Ne => o != Ordering::Equal,
    }
}

impl Program {
    /// Evaluates against one record: `answers[i]` are item i's answers (empty when
    /// unanswered or disabled).
    pub fn eval(&self, answers: &[&[Value]]) -> Truth {
        match self {
            Program::Not(p) => match p.eval(answers) {
                Truth::True => Truth::False,
                Truth::False => Truth::True,
                Truth::Unknown => Truth::Unknown,
            },
            Program::And(a, b) => match (a.eval(answers), b.eval(answers)) {
                (Truth::False, _) | (_, Truth::False) => Truth::False,
                (Truth::True, Truth::True) => Truth::True,
                _ => Truth::Unknown,
            },
            Program::Or(a, b) => match (a.eval(answers), b.eval(answers)) {
                (Truth::True, _) | (_, Truth::True) => Truth::True,
                (Truth::False, Truth::False) => Truth::False,
                _ => Truth::Unknown,
            },
            Program::Compare { left, op, right } => compare_sides(left, *op, right, answers),
        }
    }
}

fn values<'a>(side: &'a Side, answers: &[&'a [Value]]) -> Vec<Option<Scalar<'a>>> {
    match side {
        Side::Item { index, unit, to } => answers
            .get(*index)
            .copied()
            .unwrap_or(&[])
            .iter()
            .map(|v| scalar(v, unit.as_deref(), *to))
            .collect(),
        Side::Number(n) => vec![Some(Scalar::Number(*n))],
        Side::Text(t) => vec![Some(Scalar::Text(t))],
        Side::Bool(b) => vec![Some(Scalar::Bool(*b))],
        Side::DateTime(t) => vec![Some(Scalar::DateTime(*t))],
    }
}

fn compare_sides(left: &Side, op: CmpOp, right: &Side, answers: &[&[Value]]) -> Truth {
    let l = values(left, answers);
    let r = values(right, answers);
    if l.is_empty() || r.is_empty() {
        return Truth::Unknown;
    }
    let mut result = Truth::True;
    for a in &l {
        for b in &r {
            match (a, b) {
                (Some(a), Some(b)) => match compare(a, b) {
                    Some(o) if holds(op, o) => {}
                    Some(_) => return Truth::False,
                    None => result = Truth::Unknown,
                },
                _ => result = Truth::Unknown,
            }
        }
    }
    result
}
