//! The validation engine with attached rules: T3 (one failing case per rule, built-in and
//! attached, errors and warnings apart), T4 (enableWhen semantics with rules) and T5 (UCUM
//! unit conversion before min/max), on SQLite and PostgreSQL.

mod common;

use common::{id, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    t3_every_rule_fails_on_its_own,
    t4_enable_when_with_rules,
    t5_quantities_convert_before_bounds,
);

struct Form {
    stack: Stack,
    tenant: String,
    template: String,
}

impl Form {
    async fn rule(stack: &Stack, tenant: &str, body: Value) -> String {
        let mut body = body;
        if body.get("message").is_none() {
            body["message"] = json!({ "zh": "规则未通过", "en": "rule failed" });
        }
        id(&stack
            .as_role(Role::TenantAdmin, Some(tenant))
            .post("/api/validation-rules", body)
            .await
            .expect(201)
            .json)
    }

    async fn publish(stack: Stack, tenant: String, content: Value) -> Form {
        let admin = stack.as_role(Role::TenantAdmin, Some(&tenant));
        let r = admin
            .post(
                "/api/templates",
                json!({ "name": "Form", "content": content }),
            )
            .await
            .expect(201);
        let template = id(&r.json);
        let r = admin
            .post(&format!("/api/templates/{template}/publish"), Value::Null)
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        Form {
            stack,
            tenant,
            template,
        }
    }

    /// Validates `items` (a completed record unless `status` says otherwise).
    async fn check(&self, status: &str, items: Value) -> Value {
        self.stack
            .as_role(Role::TenantViewer, Some(&self.tenant))
            .post(
                &format!("/api/templates/{}/validate", self.template),
                json!({ "status": status, "items": items }),
            )
            .await
            .expect(200)
            .json
    }
}

/// (linkId, rule) of a list of issues.
fn pairs(issues: &Value) -> Vec<(String, String)> {
    issues
        .as_array()
        .expect("issues")
        .iter()
        .map(|i| {
            (
                i["link_id"].as_str().expect("link_id").to_owned(),
                i["rule"].as_str().expect("rule").to_owned(),
            )
        })
        .collect()
}

/// A name, the answers replacing the base record's, the expected errors and warnings.
type Case = (
    &'static str,
    Vec<Value>,
    Vec<(String, String)>,
    Vec<(String, String)>,
);

fn p(link_id: &str, rule: &str) -> (String, String) {
    (link_id.to_owned(), rule.to_owned())
}

fn answer(link_id: &str, values: Value) -> Value {
    json!({ "link_id": link_id, "answers": values })
}

fn coding(code: &str) -> Value {
    json!({ "coding": { "system": "http://hl7.org/fhir/administrative-gender", "code": code } })
}

async fn t3_every_rule_fails_on_its_own(stack: Stack) {
    let t = tenant(&stack, "t3-rules", None).await;
    let abnormal = Form::rule(
        &stack,
        &t,
        json!({ "name": "SBP abnormal", "kind": "range",
        "min": 90, "max": 140, "unit": "mm[Hg]", "severity": "warning" }),
    )
    .await;
    let below_sbp = Form::rule(
        &stack,
        &t,
        json!({ "name": "DBP < SBP", "kind": "expression",
        "expression": "dbp < sbp" }),
    )
    .await;
    let mrn = Form::rule(
        &stack,
        &t,
        json!({ "name": "MRN", "kind": "regex",
        "pattern": "[A-Z]{2}[0-9]{6}" }),
    )
    .await;
    let short = Form::rule(
        &stack,
        &t,
        json!({ "name": "Short", "kind": "length",
        "max_length": 10, "severity": "warning" }),
    )
    .await;
    let smoking = Form::rule(
        &stack,
        &t,
        json!({ "name": "Smoking", "kind": "options",
        "options": [{ "string": "never" }, { "string": "former" }, { "string": "current" }] }),
    )
    .await;
    let text_only = Form::rule(
        &stack,
        &t,
        json!({ "name": "Free text", "kind": "type",
        "value_type": "string" }),
    )
    .await;
    let consent = Form::rule(&stack, &t, json!({ "name": "Consent", "kind": "required" })).await;
    let content = json!({ "items": [
        { "link_id": "sbp", "type": "integer", "required": true, "rules": [abnormal],
          "limits": { "min_value": { "integer": 10 }, "max_value": { "integer": 250 }, "unit": "mm[Hg]" } },
        { "link_id": "dbp", "type": "integer", "rules": [below_sbp],
          "limits": { "min_value": { "integer": 30 }, "max_value": { "integer": 200 }, "unit": "mm[Hg]" } },
        { "link_id": "note", "type": "string", "max_length": 5, "limits": { "regex": "[a-z]+" } },
        { "link_id": "sex", "type": "choice", "answer_options": [{ "value": coding("female") }, { "value": coding("male") }] },
        { "link_id": "pregnant", "type": "boolean",
          "enable_when": [{ "question": "sex", "operator": "=", "answer": coding("female") }] },
        { "link_id": "complaint", "type": "string" },
        { "link_id": "mrn", "type": "string", "rules": [mrn] },
        { "link_id": "summary", "type": "text", "rules": [short] },
        { "link_id": "smoking", "type": "string", "rules": [smoking] },
        { "link_id": "allergy", "type": "open-choice", "rules": [text_only] },
        { "link_id": "consent", "type": "boolean", "rules": [consent] }
    ]});
    let form = Form::publish(stack, t, content).await;
    let base = || {
        vec![
            answer("sbp", json!([{ "integer": 120 }])),
            answer("dbp", json!([{ "integer": 80 }])),
            answer("consent", json!([{ "boolean": true }])),
        ]
    };
    let mut valid = base();
    valid.extend([
        answer("note", json!([{ "string": "ok" }])),
        answer("sex", json!([coding("female")])),
        answer("pregnant", json!([{ "boolean": false }])),
        answer("complaint", json!([{ "string": "headache" }])),
        answer("mrn", json!([{ "string": "AB123456" }])),
        answer("summary", json!([{ "string": "stable" }])),
        answer("smoking", json!([{ "string": "never" }])),
        answer("allergy", json!([{ "string": "latex" }])),
    ]);
    let r = form.check("completed", json!(valid)).await;
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["issues"], json!([]));
    assert_eq!(
        (r["errors"].clone(), r["warnings"].clone()),
        (json!([]), json!([]))
    );

    // Each case: answers replacing the base's, and the expected errors and warnings.
    let cases: Vec<Case> = vec![
        (
            "required only when completed",
            vec![answer("sbp", json!([]))],
            vec![p("sbp", "required")],
            vec![],
        ),
        (
            "wrong type",
            vec![answer("sbp", json!([{ "string": "abc" }]))],
            vec![p("sbp", "type")],
            vec![],
        ),
        (
            "implausible",
            vec![answer("sbp", json!([{ "integer": 300 }]))],
            vec![p("sbp", "max-value")],
            vec![],
        ),
        (
            "abnormal",
            vec![answer("sbp", json!([{ "integer": 180 }]))],
            vec![],
            vec![p("sbp", &abnormal)],
        ),
        (
            "built-in regex",
            vec![answer("note", json!([{ "string": "ABC" }]))],
            vec![p("note", "regex")],
            vec![],
        ),
        (
            "too long",
            vec![answer("note", json!([{ "string": "abcdefgh" }]))],
            vec![p("note", "max-length")],
            vec![],
        ),
        (
            "not an option",
            vec![answer("sex", json!([coding("other")]))],
            vec![p("sex", "options")],
            vec![],
        ),
        (
            "disabled",
            vec![
                answer("sex", json!([coding("male")])),
                answer("pregnant", json!([{ "boolean": true }])),
            ],
            vec![p("pregnant", "enable-when")],
            vec![],
        ),
        (
            "DBP above SBP",
            vec![answer("dbp", json!([{ "integer": 130 }]))],
            vec![p("dbp", &below_sbp)],
            vec![],
        ),
        (
            "DBP equal to SBP",
            vec![answer("dbp", json!([{ "integer": 120 }]))],
            vec![p("dbp", &below_sbp)],
            vec![],
        ),
        (
            "not repeating",
            vec![answer(
                "complaint",
                json!([{ "string": "a" }, { "string": "b" }]),
            )],
            vec![p("complaint", "repeats")],
            vec![],
        ),
        (
            "unknown linkId",
            vec![answer("nope", json!([{ "string": "a" }]))],
            vec![p("nope", "unknown-link-id")],
            vec![],
        ),
        (
            "rule regex",
            vec![answer("mrn", json!([{ "string": "12345678" }]))],
            vec![p("mrn", &mrn)],
            vec![],
        ),
        (
            "rule length",
            vec![answer("summary", json!([{ "string": "a long summary" }]))],
            vec![],
            vec![p("summary", &short)],
        ),
        (
            "rule options",
            vec![answer("smoking", json!([{ "string": "sometimes" }]))],
            vec![p("smoking", &smoking)],
            vec![],
        ),
        (
            "rule type",
            vec![answer(
                "allergy",
                json!([{ "coding": { "code": "penicillin" } }]),
            )],
            vec![p("allergy", &text_only)],
            vec![],
        ),
        (
            "rule required",
            vec![answer("consent", json!([]))],
            vec![p("consent", &consent)],
            vec![],
        ),
    ];
    for (name, replace, errors, warnings) in cases {
        let mut items: Vec<Value> = base()
            .into_iter()
            .filter(|a| !replace.iter().any(|r| r["link_id"] == a["link_id"]))
            .collect();
        items.extend(replace.into_iter().filter(|r| r["answers"] != json!([])));
        let r = form.check("completed", json!(items)).await;
        assert_eq!(pairs(&r["errors"]), errors, "{name}: {r}");
        assert_eq!(pairs(&r["warnings"]), warnings, "{name}: {r}");
        assert_eq!(r["valid"], errors.is_empty(), "{name}: {r}");
        for issue in r["issues"].as_array().expect("issues") {
            assert!(
                issue["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{name}: {r}"
            );
        }
    }
    // In progress, required items and required rules may wait.
    let r = form.check("in-progress", json!([])).await;
    assert_eq!(r["valid"], true, "{r}");
}

async fn t4_enable_when_with_rules(stack: Stack) {
    let t = tenant(&stack, "t4-rules", None).await;
    let need = Form::rule(&stack, &t, json!({ "name": "Need", "kind": "required" })).await;
    let later = Form::rule(
        &stack,
        &t,
        json!({ "name": "Delivery after LMP", "kind": "expression",
        "expression": "due > lmp" }),
    )
    .await;
    let on = |q: &str, op: &str, a: Value| json!({ "question": q, "operator": op, "answer": a });
    let content = json!({ "items": [
        { "link_id": "sex", "type": "string" },
        { "link_id": "symptoms", "type": "string", "repeats": true },
        { "link_id": "preg", "type": "group", "enable_when": [on("sex", "=", json!({ "string": "F" }))],
          "items": [
            { "link_id": "lmp", "type": "date", "required": true },
            { "link_id": "weeks", "type": "group", "enable_when": [on("lmp", "exists", json!({ "boolean": true }))],
              "items": [{ "link_id": "ga", "type": "integer", "rules": [need] }] }
          ] },
        { "link_id": "due", "type": "date", "rules": [later] },
        { "link_id": "fever_or_cough", "type": "boolean", "enable_behavior": "any",
          "enable_when": [on("symptoms", "=", json!({ "string": "fever" })), on("symptoms", "=", json!({ "string": "cough" }))] },
        { "link_id": "fever_and_cough", "type": "boolean", "enable_behavior": "all",
          "enable_when": [on("symptoms", "=", json!({ "string": "fever" })), on("symptoms", "=", json!({ "string": "cough" }))] },
        { "link_id": "no_symptoms", "type": "boolean",
          "enable_when": [on("symptoms", "exists", json!({ "boolean": false }))] }
    ]});
    let form = Form::publish(stack, t, content).await;
    let s = |v: &str| json!({ "string": v });

    // Female with an LMP: the nested group is enabled, its required rule applies, and the
    // cross-field rule compares the dates.
    let r = form
        .check(
            "completed",
            json!([
                answer("sex", json!([s("F")])),
                answer("lmp", json!([{ "date": "2026-01-10" }])),
                answer("due", json!([{ "date": "2025-12-01" }]))
            ]),
        )
        .await;
    assert_eq!(
        pairs(&r["errors"]),
        [p("ga", &need), p("due", &later)],
        "{r}"
    );

    // Male: the group and its descendants are disabled, so nothing there is required, their
    // answers are refused, and the rule on `due` sees `lmp` as unvalued (unknown: passes).
    let r = form
        .check(
            "completed",
            json!([
                answer("sex", json!([s("M")])),
                answer("lmp", json!([{ "date": "2026-01-10" }])),
                answer("ga", json!([{ "integer": 12 }])),
                answer("due", json!([{ "date": "2025-12-01" }]))
            ]),
        )
        .await;
    assert_eq!(
        pairs(&r["errors"]),
        [p("lmp", "enable-when"), p("ga", "enable-when")],
        "{r}"
    );

    // exists false; any vs all over a multi-answer question (any matching answer counts).
    let r = form
        .check(
            "in-progress",
            json!([answer("no_symptoms", json!([{ "boolean": true }]))]),
        )
        .await;
    assert_eq!(r["valid"], true, "{r}");
    let symptoms = |list: Value| {
        json!([
            answer("symptoms", list),
            answer("fever_or_cough", json!([{ "boolean": true }])),
            answer("fever_and_cough", json!([{ "boolean": true }])),
            answer("no_symptoms", json!([{ "boolean": true }]))
        ])
    };
    let r = form
        .check("in-progress", symptoms(json!([s("cough")])))
        .await;
    assert_eq!(
        pairs(&r["errors"]),
        [
            p("fever_and_cough", "enable-when"),
            p("no_symptoms", "enable-when")
        ],
        "{r}"
    );
    let r = form
        .check("in-progress", symptoms(json!([s("fever"), s("cough")])))
        .await;
    assert_eq!(
        pairs(&r["errors"]),
        [p("no_symptoms", "enable-when")],
        "{r}"
    );
    let r = form
        .check("in-progress", symptoms(json!([s("rash")])))
        .await;
    assert_eq!(
        pairs(&r["errors"]),
        [
            p("fever_or_cough", "enable-when"),
            p("fever_and_cough", "enable-when"),
            p("no_symptoms", "enable-when")
        ],
        "{r}"
    );
}

async fn t5_quantities_convert_before_bounds(stack: Stack) {
    let t = tenant(&stack, "t5-units", None).await;
    let fever = Form::rule(
        &stack,
        &t,
        json!({ "name": "Fever", "kind": "range", "max": 37.5,
        "unit": "Cel", "severity": "warning" }),
    )
    .await;
    let hypertensive = Form::rule(
        &stack,
        &t,
        json!({ "name": "Hypertension (kPa)", "kind": "range",
        "max": 18.7, "unit": "kPa", "severity": "warning" }),
    )
    .await;
    let q = |v: f64, unit: &str| json!({ "quantity": { "value": v, "unit": unit } });
    let content = json!({ "items": [
        { "link_id": "weight", "type": "quantity",
          "limits": { "min_value": q(2.0, "kg"), "max_value": q(500.0, "kg"), "unit": "kg" } },
        { "link_id": "height", "type": "quantity",
          "limits": { "min_value": q(20.0, "cm"), "max_value": q(250.0, "cm"), "unit": "cm" } },
        { "link_id": "temp", "type": "quantity", "rules": [fever],
          "limits": { "min_value": q(34.0, "Cel"), "max_value": q(45.0, "Cel"), "unit": "Cel" } },
        { "link_id": "sbp", "type": "integer", "rules": [hypertensive], "limits": { "unit": "mm[Hg]" } }
    ]});
    let form = Form::publish(stack, t, content).await;
    let one = |link_id: &str, value: Value| json!([answer(link_id, json!([value]))]);
    for (link_id, value, errors, warnings) in [
        ("weight", q(180.0, "[lb_av]"), vec![], vec![]),
        ("weight", q(70_000.0, "g"), vec![], vec![]),
        ("weight", q(70.0, "kg"), vec![], vec![]),
        (
            "weight",
            json!({ "quantity": { "value": 70.0 } }),
            vec![],
            vec![],
        ),
        (
            "weight",
            q(600_000.0, "g"),
            vec![p("weight", "max-value")],
            vec![],
        ),
        (
            "weight",
            q(1500.0, "g"),
            vec![p("weight", "min-value")],
            vec![],
        ),
        (
            "weight",
            q(1200.0, "[lb_av]"),
            vec![p("weight", "max-value")],
            vec![],
        ),
        (
            "weight",
            q(11.0, "stone"),
            vec![p("weight", "unit")],
            vec![],
        ),
        ("weight", q(70.0, "mm"), vec![p("weight", "unit")], vec![]),
        ("height", q(2500.0, "mm"), vec![], vec![]),
        (
            "height",
            q(2501.0, "mm"),
            vec![p("height", "max-value")],
            vec![],
        ),
        ("height", q(1.72, "m"), vec![], vec![]),
        ("temp", q(98.6, "[degF]"), vec![], vec![]),
        ("temp", q(100.4, "[degF]"), vec![], vec![p("temp", &fever)]),
        (
            "temp",
            q(115.0, "[degF]"),
            vec![p("temp", "max-value")],
            vec![],
        ),
        ("temp", q(37.0, "cel"), vec![p("temp", "unit")], vec![]),
        ("sbp", json!({ "integer": 130 }), vec![], vec![]),
        (
            "sbp",
            json!({ "integer": 150 }),
            vec![],
            vec![p("sbp", &hypertensive)],
        ),
    ] {
        let r = form.check("completed", one(link_id, value.clone())).await;
        assert_eq!(pairs(&r["errors"]), errors, "{link_id} {value}: {r}");
        assert_eq!(pairs(&r["warnings"]), warnings, "{link_id} {value}: {r}");
    }
    let r = form
        .check("completed", one("weight", q(11.0, "stone")))
        .await;
    assert!(
        r["errors"][0]["messages"]["en"]
            .as_str()
            .is_some_and(|m| m.contains("stone")),
        "the unit issue names the unit: {r}"
    );
}
