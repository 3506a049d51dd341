//! WHERE clauses assembled from optional list filters, with `$n` placeholders (portable
//! across SQLite and PostgreSQL through sqlx `Any`). Values are always bound, never spliced.

use sqlx::any::AnyArguments;
use sqlx::query::{Query, QueryScalar};
use sqlx::Any;

/// One bound value.
#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    Int(i64),
}

/// Conditions joined with AND; no condition matches every row.
#[derive(Debug, Default)]
pub struct Where {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Where {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a condition; each `?` in `template` takes the next of `values`.
    pub fn push(&mut self, template: &str, values: Vec<Bind>) -> &mut Self {
        let mut clause = String::with_capacity(template.len() + 4);
        let mut values = values.into_iter();
        for c in template.chars() {
            match (c, c == '?') {
                (_, true) => {
                    if let Some(v) = values.next() {
                        self.binds.push(v);
                    }
                    clause.push_str(&format!("${}", self.binds.len()));
                }
                (c, false) => clause.push(c),
            }
        }
        self.clauses.push(clause);
        self
    }

    /// `column = value` when the value is present.
    pub fn eq_text(&mut self, column: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.push(&format!("{column} = ?"), vec![Bind::Text(v.to_owned())]);
        }
        self
    }

    /// `column = value` when the value is present.
    pub fn eq_int(&mut self, column: &str, value: Option<i64>) -> &mut Self {
        if let Some(v) = value {
            self.push(&format!("{column} = ?"), vec![Bind::Int(v)]);
        }
        self
    }

    /// The clause text, for `... WHERE {sql}`.
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            "1 = 1".to_owned()
        } else {
            self.clauses.join(" AND ")
        }
    }

    /// Binds the values to a query built on [`Where::sql`].
    pub fn bind<'q>(
        &self,
        mut query: Query<'q, Any, AnyArguments<'q>>,
    ) -> Query<'q, Any, AnyArguments<'q>> {
        for b in &self.binds {
            query = match b {
                Bind::Text(t) => query.bind(t.clone()),
                Bind::Int(i) => query.bind(*i),
            };
        }
        query
    }

    /// Binds the values to a scalar query (counts).
    pub fn bind_scalar<'q, O>(
        &self,
        mut query: QueryScalar<'q, Any, O, AnyArguments<'q>>,
    ) -> QueryScalar<'q, Any, O, AnyArguments<'q>> {
        for b in &self.binds {
            query = match b {
                Bind::Text(t) => query.bind(t.clone()),
                Bind::Int(i) => query.bind(*i),
            };
        }
        query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_across_conditions() {
        let mut w = Where::new();
        assert_eq!(w.sql(), "1 = 1");
        w.eq_text("tenant_id", Some("t"))
            .eq_text("route", None)
            .push(
                "(a = ? OR b = ?)",
                vec![Bind::Text("x".into()), Bind::Text("x".into())],
            )
            .eq_int("status", Some(200));
        assert_eq!(
            w.sql(),
            "tenant_id = $1 AND (a = $2 OR b = $3) AND status = $4"
        );
    }
}
