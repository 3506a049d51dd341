//! enableWhen evaluation over one record, with the R4 semantics: a disabled item disables its
//! descendants, and a condition on a disabled item sees that item as unvalued. Operators are
//! R4's definitions: `=`, `>`, `<`, `>=`, `<=` hold when at least one answer matches, `!=`
//! when no answer equals the value, `exists` compares "has an answer" with the boolean.
//! Works on a compiled version (indices, not linkIds), so one record costs one pass.

use std::cmp::Ordering;

use super::model::Operator;
use super::rules::compiled::{Cond, Node};
use super::value::Value;

const UNSEEN: u8 = 0;
const VISITING: u8 = 1;
const ON: u8 = 2;
const OFF: u8 = 3;

/// Whether each item (by index) is enabled for these answers (`answers[i]`: item i's).
pub fn enabled(nodes: &[Node], answers: &[&[Value]]) -> Vec<bool> {
    let mut state = vec![UNSEEN; nodes.len()];
    for i in 0..nodes.len() {
        visit(nodes, answers, &mut state, i);
    }
    state.into_iter().map(|s| s == ON).collect()
}

/// Publishing refuses dependency cycles; should stored content hold one anyway, an item on
/// it counts as disabled rather than recursing for ever.
fn visit(nodes: &[Node], answers: &[&[Value]], state: &mut [u8], i: usize) -> bool {
    match state[i] {
        ON => return true,
        OFF | VISITING => return false,
        _ => {}
    }
    state[i] = VISITING;
    let node = &nodes[i];
    let on = node.parent.is_none_or(|p| visit(nodes, answers, state, p))
        && conditions_hold(nodes, answers, state, node);
    state[i] = if on { ON } else { OFF };
    on
}

fn conditions_hold(nodes: &[Node], answers: &[&[Value]], state: &mut [u8], node: &Node) -> bool {
    if node.conds.is_empty() {
        return true;
    }
    let mut results = node.conds.iter().map(|c| holds(nodes, answers, state, c));
    if node.any {
        results.any(|r| r)
    } else {
        results.all(|r| r)
    }
}

fn holds(nodes: &[Node], answers: &[&[Value]], state: &mut [u8], cond: &Cond) -> bool {
    // The answers of a disabled item do not count: it behaves as unvalued.
    let given: &[Value] = match cond.question {
        Some(q) if visit(nodes, answers, state, q) => answers[q],
        _ => &[],
    };
    match cond.op {
        Operator::Exists => matches!(cond.answer, Value::Boolean(b) if b != given.is_empty()),
        Operator::Ne => !given.iter().any(|a| equal(a, &cond.answer)),
        Operator::Eq => given.iter().any(|a| equal(a, &cond.answer)),
        op => given.iter().any(|a| {
            a.compare(&cond.answer).is_some_and(|o| match op {
                Operator::Gt => o == Ordering::Greater,
                Operator::Lt => o == Ordering::Less,
                Operator::Ge => o != Ordering::Less,
                _ => o != Ordering::Greater,
            })
        }),
    }
}

/// Answer equality; codings match on system and code (the display is only a label).
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Coding(x), Value::Coding(y)) => x.system == y.system && x.code == y.code,
        _ => a.compare(b) == Some(Ordering::Equal) || a == b,
    }
}
