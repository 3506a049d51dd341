//! Medical record templates (API §4): versioned forms that mirror the FHIR R4 Questionnaire.
//!
//! [`model`] is the item tree, [`value`] its typed values and [`structure`] the save-time
//! invariants (que-*) that every draft must keep before it can be published. [`Template`]
//! holds the one editable draft; [`versions`] the frozen, append-only published content.
//! [`elements`] is the form element library; `sections` edits a draft's top-level groups and
//! their order; `copy` serves platform templates and tenant copies of them; `lifecycle` moves
//! published versions between active and retired and picks the version a record uses.

mod copy;
pub mod elements;
mod enable;
pub mod fhir;
mod lifecycle;
pub mod model;
pub mod record;
mod resource;
mod routes;
pub mod rules;
mod sections;
pub mod structure;
pub mod value;
pub mod versions;

pub use resource::{CopiedFrom, Template, TemplateCreate, TemplateStatus, TemplateUpdate};
pub use routes::routes;

#[cfg(test)]
mod structure_tests;
