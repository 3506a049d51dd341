//! Medical record templates (API §4): versioned forms that mirror the FHIR R4 Questionnaire.
//!
//! [`model`] is the item tree, [`value`] its typed values and [`structure`] the save-time
//! invariants (que-*) that every draft must keep before it can be published.

pub mod model;
pub mod structure;
pub mod value;

#[cfg(test)]
mod structure_tests;
