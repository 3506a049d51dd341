//! Unit checks of the mapping's edges; the full round trip is tests/template_fhir.rs.

use serde_json::json;

use super::export::{questionnaire, Meta};
use super::import;
use crate::error::ApiError;
use crate::templates::model::Content;

fn meta() -> Meta<'static> {
    Meta {
        template_id: "tpl_1",
        title: "T",
        description: None,
        status: "draft",
        version: None,
        identity: None,
    }
}

fn path_of(err: ApiError) -> String {
    match err {
        ApiError::Unprocessable { details, .. } => details["path"].as_str().unwrap_or("").into(),
        other => panic!("not a 422: {other:?}"),
    }
}

#[test]
fn a_model_field_without_mapping_is_refused_not_dropped() {
    let content: Content = serde_json::from_value(json!({ "items": [
        { "link_id": "a", "type": "integer", "rules": ["rule_1"] }] }))
    .expect("content");
    let err = questionnaire(&meta(), &content).expect_err("refused");
    assert_eq!(path_of(err), "content.items[0].rules");
}

#[test]
fn integers_beyond_32_bits_and_empty_strings_are_refused() {
    let content: Content = serde_json::from_value(json!({ "items": [
        { "link_id": "a", "type": "integer", "initial": [{ "integer": 4_000_000_000i64 }] }] }))
    .expect("content");
    let err = questionnaire(&meta(), &content).expect_err("refused");
    assert_eq!(
        path_of(err),
        "Questionnaire.item[0].initial[0].valueInteger"
    );
    let content: Content = serde_json::from_value(json!({ "items": [
        { "link_id": "a", "type": "string", "prefix": "" }] }))
    .expect("content");
    let err = questionnaire(&meta(), &content).expect_err("refused");
    assert_eq!(path_of(err), "Questionnaire.item[0].prefix");
}

#[test]
fn a_uri_answer_travels_as_a_string_and_comes_back_a_uri() {
    let content: Content = serde_json::from_value(json!({ "items": [
        { "link_id": "u", "type": "url" },
        { "link_id": "b", "type": "boolean", "enable_when": [
            { "question": "u", "operator": "=", "answer": { "uri": "https://x.example" } }] }] }))
    .expect("content");
    let doc = questionnaire(&meta(), &content).expect("export");
    assert_eq!(
        doc["item"][1]["enableWhen"][0]["answerString"],
        "https://x.example"
    );
    let back = import::questionnaire(&doc).expect("import");
    assert_eq!(back.content, content);
    assert_eq!(
        back.identity.url.as_deref(),
        Some("urn:medgate:template:tpl_1")
    );
}

#[test]
fn duplicate_or_conflicting_extensions_are_refused() {
    let doc = json!({ "resourceType": "Questionnaire", "status": "draft", "title": "T",
        "item": [{ "linkId": "q", "type": "quantity", "extension": [
            { "url": "http://hl7.org/fhir/StructureDefinition/minValue", "valueDecimal": 1.0 },
            { "url": "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-minQuantity",
              "valueQuantity": { "value": 1.0, "system": "http://unitsofmeasure.org", "code": "kg" } }] }] });
    let err = import::questionnaire(&doc).expect_err("refused");
    assert_eq!(path_of(err), "Questionnaire.item[0].extension[1]");
}
