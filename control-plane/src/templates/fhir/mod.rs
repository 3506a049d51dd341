//! FHIR R4 Questionnaire export and import of templates.
//!
//! Contract:
//! - [`export::questionnaire`] maps one template content (a draft or a published version) to
//!   an R4 `Questionnaire` that the official R4 JSON schema and `fhir.resources.R4B` accept.
//!   Whatever the model holds that R4 cannot say is a 422 naming the path, never dropped; so
//!   is a model field this module does not know yet ([`guard`]).
//! - [`import::questionnaire`] maps a Questionnaire back. Every element it does not map
//!   (`code`, `definition`, unknown extensions, primitive extensions `_x`, ...) is a 422 that
//!   names the FHIR path (`Questionnaire.item[2].code`), never silently dropped. The result
//!   then goes through the template's own save-time rules (que-*).
//! - [`canonical::to_string`] writes the one byte form of an export, so that
//!   export -> import -> export yields the same bytes (T2).
//!
//! What a template keeps of a Questionnaire's identity is [`FhirIdentity`]: the canonical
//! `url` and the `identifier`s of an imported form, so a form keeps its identity across
//! servers. A template created here has none stored and exports
//! `urn:medgate:template:{id}` and the identifier `{system: urn:medgate:template, value: id}`.
//! `status` and `version` are this server's lifecycle: an import is always a draft and gets
//! its numbers when published; `id` (the sender's server id) is ignored, as a FHIR create does.

pub mod canonical;
pub mod export;
mod guard;
pub mod import;
mod reader;
mod routes;
#[cfg(test)]
mod tests;
mod values;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;

pub use routes::routes;

/// Media type of exports.
pub const FHIR_JSON: &str = "application/fhir+json";
/// Prefix of the canonical URL of a template created here (followed by the template id).
pub const URL_PREFIX: &str = "urn:medgate:template:";
/// Identifier system of template ids.
pub const ID_SYSTEM: &str = "urn:medgate:template";
/// UCUM, the one unit system of quantities and `questionnaire-unit`.
pub const UCUM: &str = "http://unitsofmeasure.org";

/// Extension URLs of the limits, in the order an export writes them.
pub mod ext {
    pub const MIN_VALUE: &str = "http://hl7.org/fhir/StructureDefinition/minValue";
    pub const MAX_VALUE: &str = "http://hl7.org/fhir/StructureDefinition/maxValue";
    pub const MIN_QUANTITY: &str =
        "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-minQuantity";
    pub const MAX_QUANTITY: &str =
        "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-maxQuantity";
    pub const MIN_LENGTH: &str = "http://hl7.org/fhir/StructureDefinition/minLength";
    pub const REGEX: &str = "http://hl7.org/fhir/StructureDefinition/regex";
    pub const UNIT: &str = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit";
    pub const MAX_DECIMAL_PLACES: &str = "http://hl7.org/fhir/StructureDefinition/maxDecimalPlaces";
}

/// A FHIR `Identifier`, reduced to what a template keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FhirIdentifier {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The identity of an imported Questionnaire, kept so that its export says the same.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FhirIdentity {
    /// `Questionnaire.url`, when the form had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<FhirIdentifier>,
}

/// The 422 for a construct at `path` that has no mapping, or breaks a FHIR rule.
pub fn unsupported(path: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::Unprocessable {
        code: "fhir_unsupported",
        message: format!("{path}: {message}"),
        details: json!({ "path": path, "message": message }),
    }
}
