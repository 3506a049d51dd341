//! T1: each broken invariant is refused with its rule key and the offending linkId.

use serde_json::json;

use super::model::Content;
use super::structure::check;

fn content(items: serde_json::Value) -> Content {
    serde_json::from_value(json!({ "items": items })).expect("content parses")
}

fn rule_of(items: serde_json::Value) -> (&'static str, String) {
    let v = check(&content(items)).expect_err("template must be refused");
    (v.rule, v.link_id)
}

fn vitals() -> serde_json::Value {
    json!([{
        "link_id": "vitals", "type": "group", "text": "Vital signs",
        "items": [
            {"link_id": "sbp", "type": "integer", "required": true,
             "limits": {"min_value": {"integer": 10}, "max_value": {"integer": 250}, "unit": "mm[Hg]"}},
            {"link_id": "dbp", "type": "integer",
             "limits": {"min_value": {"integer": 30}, "max_value": {"integer": 200}, "unit": "mm[Hg]"}},
            {"link_id": "sex", "type": "choice", "answer_options": [
                {"value": {"coding": {"system": "http://hl7.org/fhir/administrative-gender", "code": "female"}}},
                {"value": {"coding": {"system": "http://hl7.org/fhir/administrative-gender", "code": "male"}}}]},
            {"link_id": "pregnant", "type": "boolean",
             "enable_when": [{"question": "sex", "operator": "=", "answer": {"coding": {"system": "http://hl7.org/fhir/administrative-gender", "code": "female"}}}]},
            {"link_id": "note", "type": "string", "max_length": 200,
             "limits": {"min_length": 2, "regex": "[A-Za-z ]+"}},
            {"link_id": "hint", "type": "display", "text": "Measure seated"}
        ]
    }])
}

#[test]
fn a_well_formed_template_passes() {
    check(&content(vitals())).expect("valid");
}

#[test]
fn every_r4_item_type_parses_and_unknown_ones_do_not() {
    for ty in [
        "group",
        "display",
        "boolean",
        "decimal",
        "integer",
        "date",
        "dateTime",
        "time",
        "string",
        "text",
        "url",
        "choice",
        "open-choice",
        "attachment",
        "reference",
        "quantity",
    ] {
        let parsed: Result<Content, _> =
            serde_json::from_value(json!({"items": [{"link_id": "a", "type": ty}]}));
        assert!(parsed.is_ok(), "{ty} parses");
    }
    let bad: Result<Content, _> =
        serde_json::from_value(json!({"items": [{"link_id": "a", "type": "number"}]}));
    assert!(bad.is_err());
    let unknown_field: Result<Content, _> =
        serde_json::from_value(json!({"items": [{"link_id": "a", "type": "string", "foo": 1}]}));
    assert!(unknown_field.is_err());
}

#[test]
fn duplicate_link_ids_break_que_2_even_across_levels() {
    let items = json!([
        {"link_id": "g", "type": "group", "items": [{"link_id": "x", "type": "string"}]},
        {"link_id": "x", "type": "integer"}
    ]);
    assert_eq!(rule_of(items), ("que-2", "x".into()));
}

#[test]
fn an_empty_group_or_a_display_with_children_breaks_que_1() {
    assert_eq!(
        rule_of(json!([{"link_id": "g", "type": "group"}])),
        ("que-1", "g".into())
    );
    let items =
        json!([{"link_id": "d", "type": "display", "items": [{"link_id": "x", "type": "string"}]}]);
    assert_eq!(rule_of(items), ("que-1", "d".into()));
}

#[test]
fn options_and_value_set_together_break_que_4() {
    let items = json!([{"link_id": "c", "type": "choice", "answer_value_set": "http://loinc.org/vs/LL1",
        "answer_options": [{"value": {"string": "a"}}]}]);
    assert_eq!(rule_of(items), ("que-4", "c".into()));
}

#[test]
fn options_on_a_boolean_or_of_the_wrong_type_break_que_5() {
    let items = json!([{"link_id": "b", "type": "boolean", "answer_options": [{"value": {"string": "a"}}]}]);
    assert_eq!(rule_of(items), ("que-5", "b".into()));
    let items = json!([{"link_id": "i", "type": "integer", "answer_options": [{"value": {"string": "a"}}]}]);
    assert_eq!(rule_of(items), ("que-5", "i".into()));
}

#[test]
fn a_required_or_repeating_display_breaks_que_6() {
    assert_eq!(
        rule_of(json!([{"link_id": "d", "type": "display", "required": true}])),
        ("que-6", "d".into())
    );
    assert_eq!(
        rule_of(json!([{"link_id": "d", "type": "display", "repeats": true}])),
        ("que-6", "d".into())
    );
}

#[test]
fn exists_with_a_non_boolean_answer_breaks_que_7() {
    let items = json!([{"link_id": "a", "type": "string"},
        {"link_id": "b", "type": "string", "enable_when": [{"question": "a", "operator": "exists", "answer": {"string": "x"}}]}]);
    assert_eq!(rule_of(items), ("que-7", "b".into()));
}

#[test]
fn initial_values_on_a_group_break_que_8_and_read_only_display_que_9() {
    let items = json!([{"link_id": "g", "type": "group", "initial": [{"string": "x"}],
        "items": [{"link_id": "x", "type": "string"}]}]);
    assert_eq!(rule_of(items), ("que-8", "g".into()));
    assert_eq!(
        rule_of(json!([{"link_id": "d", "type": "display", "read_only": true}])),
        ("que-9", "d".into())
    );
}

#[test]
fn max_length_on_a_non_simple_type_breaks_que_10() {
    assert_eq!(
        rule_of(json!([{"link_id": "d", "type": "date", "max_length": 3}])),
        ("que-10", "d".into())
    );
    check(&content(
        json!([{"link_id": "s", "type": "string", "max_length": 3}]),
    ))
    .expect("string may");
}

#[test]
fn initial_beside_options_breaks_que_11_and_several_initials_without_repeats_que_13() {
    let items = json!([{"link_id": "c", "type": "choice", "initial": [{"string": "a"}],
        "answer_options": [{"value": {"string": "a"}}]}]);
    assert_eq!(rule_of(items), ("que-11", "c".into()));
    let items =
        json!([{"link_id": "s", "type": "string", "initial": [{"string": "a"}, {"string": "b"}]}]);
    assert_eq!(rule_of(items), ("que-13", "s".into()));
}

#[test]
fn two_conditions_without_enable_behavior_break_que_12() {
    let items = json!([{"link_id": "a", "type": "boolean"}, {"link_id": "b", "type": "integer"},
        {"link_id": "c", "type": "string", "enable_when": [
            {"question": "a", "operator": "=", "answer": {"boolean": true}},
            {"question": "b", "operator": ">", "answer": {"integer": 3}}]}]);
    assert_eq!(rule_of(items), ("que-12", "c".into()));
}

#[test]
fn enable_when_on_an_unknown_a_display_or_itself_is_refused() {
    let unknown = json!([{"link_id": "b", "type": "string",
        "enable_when": [{"question": "nope", "operator": "exists", "answer": {"boolean": true}}]}]);
    assert_eq!(rule_of(unknown), ("enable-when", "b".into()));
    let display = json!([{"link_id": "d", "type": "display"}, {"link_id": "b", "type": "string",
        "enable_when": [{"question": "d", "operator": "exists", "answer": {"boolean": true}}]}]);
    assert_eq!(rule_of(display), ("enable-when", "b".into()));
    let own = json!([{"link_id": "b", "type": "string",
        "enable_when": [{"question": "b", "operator": "exists", "answer": {"boolean": true}}]}]);
    assert_eq!(rule_of(own), ("enable-when", "b".into()));
    let mistyped = json!([{"link_id": "a", "type": "integer"}, {"link_id": "b", "type": "string",
        "enable_when": [{"question": "a", "operator": "=", "answer": {"string": "3"}}]}]);
    assert_eq!(rule_of(mistyped), ("enable-when", "b".into()));
}

#[test]
fn bounds_of_the_wrong_type_reversed_or_a_bad_regex_are_refused() {
    let wrong =
        json!([{"link_id": "i", "type": "integer", "limits": {"max_value": {"decimal": 2.5}}}]);
    assert_eq!(rule_of(wrong), ("limits", "i".into()));
    let reversed = json!([{"link_id": "i", "type": "integer",
        "limits": {"min_value": {"integer": 5}, "max_value": {"integer": 1}}}]);
    assert_eq!(rule_of(reversed), ("limits", "i".into()));
    let regex = json!([{"link_id": "s", "type": "string", "limits": {"regex": "(["}}]);
    assert_eq!(rule_of(regex), ("limits", "s".into()));
    let bad_date =
        json!([{"link_id": "d", "type": "date", "limits": {"min_value": {"date": "2024-02-30"}}}]);
    assert_eq!(rule_of(bad_date), ("limits", "d".into()));
}

#[test]
fn an_initial_value_must_fit_the_item_type() {
    let items = json!([{"link_id": "i", "type": "integer", "initial": [{"string": "abc"}]}]);
    assert_eq!(rule_of(items), ("type", "i".into()));
}

#[test]
fn the_violation_is_a_422_naming_rule_and_link_id() {
    let v = check(&content(json!([{"link_id": "g", "type": "group"}]))).expect_err("refused");
    let err: crate::error::ApiError = v.into();
    assert_eq!(err.status(), axum::http::StatusCode::UNPROCESSABLE_ENTITY);
    match err {
        crate::error::ApiError::Unprocessable { details, .. } => {
            assert_eq!(details["rule"], "que-1");
            assert_eq!(details["link_id"], "g");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn enable_when_cycles_are_refused() {
    let items = json!([
        {"link_id": "a", "type": "string", "enable_when": [{"question": "b", "operator": "exists", "answer": {"boolean": true}}]},
        {"link_id": "b", "type": "string", "enable_when": [{"question": "a", "operator": "exists", "answer": {"boolean": true}}]}
    ]);
    assert_eq!(rule_of(items).0, "enable-when");
    // A group enabled by its own child's answer is a cycle too.
    let items = json!([{"link_id": "g", "type": "group",
        "enable_when": [{"question": "x", "operator": "exists", "answer": {"boolean": true}}],
        "items": [{"link_id": "x", "type": "string"}]}]);
    assert_eq!(rule_of(items), ("enable-when", "x".into()));
    // A chain is fine.
    check(&content(json!([
        {"link_id": "a", "type": "string"},
        {"link_id": "b", "type": "string", "enable_when": [{"question": "a", "operator": "exists", "answer": {"boolean": true}}]},
        {"link_id": "c", "type": "string", "enable_when": [{"question": "b", "operator": "exists", "answer": {"boolean": true}}]}
    ]))).expect("a chain");
}
