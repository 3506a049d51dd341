//! Reusable validation rules (API §4.4) and what evaluating them needs.
//!
//! A rule ([`spec::RuleDefinition`]) is one of: required, type, range (unit-aware), regex,
//! length, option set, or a cross-field [`expr`]ession; each has a severity (`error` blocks a
//! record, `warning` asks for acknowledgement) and a message in Chinese and English.
//!
//! Rules are resources of their own (`/api/validation-rules`): platform rules (no tenant)
//! that every tenant may read and attach, and tenant rules that only their tenant sees.
//! An item attaches rules by id (`Item::rules`). Publishing copies the definitions of the
//! attached rules into the version's content (`Content::rules`), so the frozen version, its
//! content hash included, keeps validating exactly as published however the rules change
//! later (snapshot rather than versioned rules: a version is then self-contained, which also
//! serves FHIR export and records pinned to old versions).

pub mod apply;
pub mod cache;
pub mod compiled;
pub mod eval;
pub mod expr;
pub mod freeze;
pub mod language;
pub mod messages;
pub mod resource;
mod routes;
pub mod spec;
pub mod units;

pub use compiled::CompiledVersion;
pub use freeze::freeze;
pub use language::Language;
pub use resource::{RuleInput, ValidationRule};
pub use routes::routes;
pub use spec::{Check, Message, RuleDefinition, ValueKind};

#[cfg(test)]
mod tests;
