//! enableWhen evaluation over one record, with the R4 semantics: a disabled item disables its
//! descendants, and a condition on a disabled item sees that item as unvalued. Operators are
//! R4's definitions: `=`, `>`, `<`, `>=`, `<=` hold when at least one answer matches, `!=`
//! when no answer equals the value, `exists` compares "has an answer" with the boolean.

use std::cmp::Ordering;
use std::collections::HashMap;

use super::model::{Content, EnableBehavior, EnableWhen, Item, Operator};
use super::value::Value;

/// Every item of a template by linkId, with its parent's linkId.
pub struct Index<'a> {
    pub items: HashMap<&'a str, (&'a Item, Option<&'a str>)>,
}

impl<'a> Index<'a> {
    pub fn new(content: &'a Content) -> Self {
        fn go<'a>(
            items: &'a [Item],
            parent: Option<&'a str>,
            out: &mut HashMap<&'a str, (&'a Item, Option<&'a str>)>,
        ) {
            for item in items {
                out.insert(&item.link_id, (item, parent));
                go(&item.items, Some(&item.link_id), out);
            }
        }
        let mut items = HashMap::new();
        go(&content.items, None, &mut items);
        Self { items }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Visiting,
    Enabled,
    Disabled,
}

/// Which items are enabled for one set of answers.
pub struct Enablement<'a, 'r> {
    index: &'a Index<'a>,
    answers: &'r HashMap<&'r str, &'r [Value]>,
    memo: HashMap<&'a str, State>,
}

impl<'a, 'r> Enablement<'a, 'r> {
    pub fn new(index: &'a Index<'a>, answers: &'r HashMap<&'r str, &'r [Value]>) -> Self {
        Self {
            index,
            answers,
            memo: HashMap::new(),
        }
    }

    /// Whether `link_id` is enabled. Publishing refuses dependency cycles; should stored
    /// content hold one anyway, it counts as disabled rather than recursing for ever.
    pub fn enabled(&mut self, link_id: &str) -> bool {
        let Some(&(item, parent)) = self.index.items.get(link_id) else {
            return false;
        };
        let key: &'a str = &item.link_id;
        match self.memo.get(key) {
            Some(State::Enabled) => return true,
            Some(State::Disabled | State::Visiting) => return false,
            None => {}
        }
        self.memo.insert(key, State::Visiting);
        let on = parent.is_none_or(|p| self.enabled(p)) && self.conditions_hold(item);
        self.memo
            .insert(key, if on { State::Enabled } else { State::Disabled });
        on
    }

    fn conditions_hold(&mut self, item: &'a Item) -> bool {
        if item.enable_when.is_empty() {
            return true;
        }
        let mut results = item.enable_when.iter().map(|c| self.holds(c));
        match item.enable_behavior.unwrap_or(EnableBehavior::All) {
            EnableBehavior::All => results.all(|r| r),
            EnableBehavior::Any => results.any(|r| r),
        }
    }

    fn holds(&mut self, cond: &EnableWhen) -> bool {
        // The answers of a disabled item do not count: it behaves as unvalued.
        let answers: &[Value] = if self.enabled(&cond.question) {
            self.answers
                .get(cond.question.as_str())
                .copied()
                .unwrap_or(&[])
        } else {
            &[]
        };
        match cond.operator {
            Operator::Exists => {
                matches!(cond.answer, Value::Boolean(b) if b != answers.is_empty())
            }
            Operator::Ne => !answers.iter().any(|a| equal(a, &cond.answer)),
            Operator::Eq => answers.iter().any(|a| equal(a, &cond.answer)),
            op => answers.iter().any(|a| {
                a.compare(&cond.answer).is_some_and(|o| match op {
                    Operator::Gt => o == Ordering::Greater,
                    Operator::Lt => o == Ordering::Less,
                    Operator::Ge => o != Ordering::Less,
                    _ => o != Ordering::Greater,
                })
            }),
        }
    }
}

/// Answer equality; codings match on system and code (the display is only a label).
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Coding(x), Value::Coding(y)) => x.system == y.system && x.code == y.code,
        _ => a.compare(b) == Some(Ordering::Equal) || a == b,
    }
}
