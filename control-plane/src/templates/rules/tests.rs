//! Unit tests of binding rules to a version (publish-time checks) and of evaluating them.

use serde_json::json;

use super::compiled::CompiledVersion;
use crate::templates::model::Content;
use crate::templates::record::{self, RecordData};

fn content(items: serde_json::Value, rules: serde_json::Value) -> Content {
    serde_json::from_value(json!({ "items": items, "rules": rules })).expect("content")
}

fn def(check: serde_json::Value) -> serde_json::Value {
    let mut d = json!({ "name": "r", "severity": "error", "message": { "zh": "错", "en": "bad" } });
    for (k, v) in check.as_object().expect("object") {
        d[k] = v.clone();
    }
    d
}

fn items() -> serde_json::Value {
    json!([
        { "link_id": "sbp", "type": "integer", "limits": { "unit": "mm[Hg]" } },
        { "link_id": "dbp", "type": "integer", "limits": { "unit": "mm[Hg]" } },
        { "link_id": "count", "type": "integer" },
        { "link_id": "name", "type": "string" },
        { "link_id": "flag", "type": "boolean" },
        { "link_id": "w_kg", "type": "quantity", "limits": { "unit": "kg" } },
        { "link_id": "w_lb", "type": "quantity", "limits": { "unit": "[lb_av]" } },
        { "link_id": "h_cm", "type": "quantity", "limits": { "unit": "cm" } },
        { "link_id": "when", "type": "dateTime" },
        { "link_id": "sec", "type": "group", "items": [{ "link_id": "inner", "type": "string" }] }
    ])
}

/// The publish-time verdict of attaching `check` to `link_id`.
fn attach(link_id: &str, check: serde_json::Value) -> Result<(), String> {
    let mut list = items();
    for item in list.as_array_mut().expect("items") {
        if item["link_id"] == link_id {
            item["rules"] = json!(["r1"]);
        }
    }
    let c = content(list, json!({ "r1": def(check) }));
    CompiledVersion::check_rules(&c).map_err(|v| v.message)
}

#[test]
fn rules_must_fit_their_items() {
    let ok = [
        (
            "sbp",
            json!({ "kind": "range", "max": 18.7, "unit": "kPa" }),
        ),
        (
            "w_kg",
            json!({ "kind": "range", "max": 300, "unit": "[lb_av]" }),
        ),
        (
            "sbp",
            json!({ "kind": "expression", "expression": "dbp < sbp" }),
        ),
        (
            "w_kg",
            json!({ "kind": "expression", "expression": "w_kg <= w_lb" }),
        ),
        (
            "when",
            json!({ "kind": "expression", "expression": "when < '2030-01-01T00:00:00Z'" }),
        ),
        (
            "flag",
            json!({ "kind": "expression", "expression": "flag == true or name != 'x'" }),
        ),
        ("sec", json!({ "kind": "required" })),
        (
            "name",
            json!({ "kind": "options", "options": [{ "string": "a" }] }),
        ),
        ("name", json!({ "kind": "type", "value_type": "string" })),
    ];
    for (link_id, check) in ok {
        assert_eq!(attach(link_id, check.clone()), Ok(()), "{link_id} {check}");
    }
    let bad = [
        (
            "count",
            json!({ "kind": "range", "max": 5, "unit": "kPa" }),
            "declares no unit",
        ),
        (
            "sbp",
            json!({ "kind": "range", "max": 5, "unit": "kg" }),
            "does not convert",
        ),
        (
            "sbp",
            json!({ "kind": "regex", "pattern": "x" }),
            "does not apply",
        ),
        (
            "name",
            json!({ "kind": "range", "max": 5 }),
            "does not apply",
        ),
        (
            "name",
            json!({ "kind": "type", "value_type": "integer" }),
            "never takes",
        ),
        (
            "count",
            json!({ "kind": "options", "options": [{ "string": "a" }] }),
            "does not fit",
        ),
        (
            "sbp",
            json!({ "kind": "expression", "expression": "dbp < ghost" }),
            "unknown linkId",
        ),
        (
            "sbp",
            json!({ "kind": "expression", "expression": "name < 5" }),
            "cannot compare",
        ),
        (
            "sbp",
            json!({ "kind": "expression", "expression": "flag < true" }),
            "booleans",
        ),
        (
            "sbp",
            json!({ "kind": "expression", "expression": "w_kg < h_cm" }),
            "does not convert",
        ),
        (
            "sbp",
            json!({ "kind": "expression", "expression": "sec == 'x'" }),
            "no comparable",
        ),
        (
            "sbp",
            json!({ "kind": "expression", "expression": "when < 'soon'" }),
            "RFC 3339",
        ),
    ];
    for (link_id, check, why) in bad {
        let err = attach(link_id, check.clone()).expect_err(&check.to_string());
        assert!(err.contains(why), "{check}: {err}");
    }
    let mut list = items();
    list[0]["rules"] = json!(["missing"]);
    let err = CompiledVersion::check_rules(&content(list, json!({}))).expect_err("missing");
    assert!(
        err.message.contains("unknown validation rule"),
        "{}",
        err.message
    );
}

fn run(c: &Content, answers: serde_json::Value) -> Vec<(String, String)> {
    let record: RecordData =
        serde_json::from_value(json!({ "status": "completed", "items": answers })).expect("record");
    record::validate(c, &record)
        .into_iter()
        .map(|i| (i.link_id, i.rule))
        .collect()
}

#[test]
fn expressions_use_three_valued_logic_and_units() {
    let mut list = items();
    list[1]["rules"] = json!(["lt"]);
    list[5]["rules"] = json!(["kg"]);
    list[5]["repeats"] = json!(true);
    let c = content(
        list,
        json!({
            "lt": def(json!({ "kind": "expression", "expression": "dbp < sbp" })),
            "kg": def(json!({ "kind": "expression", "expression": "w_kg >= w_lb" })),
        }),
    );
    let a = |id: &str, v: serde_json::Value| json!({ "link_id": id, "answers": v });
    let q = |v: f64, u: &str| json!({ "quantity": { "value": v, "unit": u } });
    // A missing side is unknown: the rule passes (required rules cover absence).
    assert!(run(&c, json!([a("dbp", json!([{ "integer": 80 }]))])).is_empty());
    assert_eq!(
        run(
            &c,
            json!([
                a("dbp", json!([{ "integer": 90 }])),
                a("sbp", json!([{ "integer": 90 }]))
            ])
        ),
        [("dbp".to_owned(), "lt".to_owned())]
    );
    // 1 kg >= 2 lb (0.907 kg) holds; 0.5 kg does not; every answer of a repeating item counts.
    assert!(run(
        &c,
        json!([
            a("w_kg", json!([q(1.0, "kg")])),
            a("w_lb", json!([q(2.0, "[lb_av]")]))
        ])
    )
    .is_empty());
    assert!(run(
        &c,
        json!([
            a("w_kg", json!([q(1000.0, "g")])),
            a("w_lb", json!([q(2.0, "[lb_av]")]))
        ])
    )
    .is_empty());
    assert_eq!(
        run(
            &c,
            json!([
                a("w_kg", json!([q(1.0, "kg"), q(0.5, "kg")])),
                a("w_lb", json!([q(2.0, "[lb_av]")]))
            ])
        ),
        [("w_kg".to_owned(), "kg".to_owned())]
    );
}

#[test]
fn groups_know_their_descendants() {
    let c = content(
        json!([
            { "link_id": "a", "type": "group", "required": true, "items": [
                { "link_id": "b", "type": "group", "items": [{ "link_id": "c", "type": "string" }] },
                { "link_id": "d", "type": "string" }
            ]},
            { "link_id": "e", "type": "string" }
        ]),
        json!({}),
    );
    let v = CompiledVersion::new(&c);
    let ends: Vec<usize> = v.nodes.iter().map(|n| n.end).collect();
    assert_eq!(ends, [4, 3, 3, 4, 5]);
    assert_eq!(v.nodes[2].parent, Some(1));
    let a = |id: &str| json!([{ "link_id": id, "answers": [{ "string": "x" }] }]);
    assert!(run(&c, a("c")).is_empty());
    assert_eq!(run(&c, a("e")), [("a".to_owned(), "required".to_owned())]);
}
