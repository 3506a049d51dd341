//! Medical record templates (API §4): versioned forms that mirror the FHIR R4 Questionnaire.
//!
//! [`model`] is the item tree, [`value`] its typed values and [`structure`] the save-time
//! invariants (que-*) that every draft must keep before it can be published. [`Template`]
//! holds the one editable draft; [`versions`] the frozen, append-only published content.

mod enable;
pub mod model;
pub mod record;
mod resource;
mod routes;
pub mod structure;
pub mod value;
pub mod versions;

pub use resource::{Template, TemplateCreate, TemplateStatus, TemplateUpdate};
pub use routes::routes;

#[cfg(test)]
mod structure_tests;
