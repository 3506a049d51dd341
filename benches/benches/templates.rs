//! Criterion benchmark of the template validation engine (API §4.4): a realistic 51-item
//! clinical intake form (vitals with UCUM units, choices, enableWhen, a cross-field rule,
//! regexes, attached range rules with unit conversion) checked against a realistic completed
//! record. The version is compiled once, as the server does (cached per version); each
//! iteration validates one record. Budget: 10k records/s per core or better.
//!
//! `cargo bench -p medgate-benches --bench templates -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use medgate_control_plane::templates::model::Content;
use medgate_control_plane::templates::record::{self, RecordData};
use medgate_control_plane::templates::rules::{CompiledVersion, Language};
use medgate_control_plane::templates::structure;
use serde_json::{json, Value};

fn q(value: f64, unit: &str) -> Value {
    json!({ "quantity": { "value": value, "unit": unit } })
}

fn coding(system: &str, code: &str) -> Value {
    json!({ "coding": { "system": system, "code": code } })
}

fn int_item(link_id: &str, min: i64, max: i64, unit: &str) -> Value {
    json!({ "link_id": link_id, "type": "integer", "required": true,
            "limits": { "min_value": { "integer": min }, "max_value": { "integer": max }, "unit": unit } })
}

fn text(link_id: &str, ty: &str, max_length: u32) -> Value {
    json!({ "link_id": link_id, "type": ty, "max_length": max_length })
}

fn choice(link_id: &str, codes: &[&str]) -> Value {
    let options: Vec<Value> = codes
        .iter()
        .map(|c| json!({ "value": coding("http://snomed.info/sct", c) }))
        .collect();
    json!({ "link_id": link_id, "type": "choice", "answer_options": options })
}

fn rule(name: &str, severity: &str, check: Value) -> Value {
    let mut r = json!({ "name": name, "severity": severity,
                        "message": { "zh": format!("{name}未通过"), "en": format!("{name} failed") } });
    for (k, v) in check.as_object().into_iter().flatten() {
        r[k] = v.clone();
    }
    r
}

/// The 51-item form (45 questions in 6 sections) with its frozen rule definitions, as
/// publish leaves it.
fn form() -> Content {
    let female = coding("http://hl7.org/fhir/administrative-gender", "female");
    let male = coding("http://hl7.org/fhir/administrative-gender", "male");
    let on = |q: &str, a: Value| json!([{ "question": q, "operator": "=", "answer": a }]);
    let mut sbp = int_item("sbp", 10, 250, "mm[Hg]");
    sbp["rules"] = json!(["r-sbp-abnormal"]);
    let mut dbp = int_item("dbp", 30, 200, "mm[Hg]");
    dbp["rules"] = json!(["r-dbp-below-sbp", "r-dbp-abnormal"]);
    let content = json!({
        "items": [
            { "link_id": "demographics", "type": "group", "items": [
                { "link_id": "name", "type": "string", "required": true, "max_length": 100 },
                { "link_id": "mrn", "type": "string", "required": true, "rules": ["r-mrn"] },
                { "link_id": "dob", "type": "date", "required": true,
                  "limits": { "min_value": { "date": "1900-01-01" }, "max_value": { "date": "2100-01-01" } } },
                { "link_id": "sex", "type": "choice", "required": true,
                  "answer_options": [{ "value": female.clone() }, { "value": male }] },
                { "link_id": "phone", "type": "string", "limits": { "regex": "\\+?[0-9][0-9 -]{6,18}" } },
                { "link_id": "email", "type": "string", "limits": { "regex": "[^@\\s]+@[^@\\s]+\\.[a-z]{2,}" } }
            ]},
            { "link_id": "vitals", "type": "group", "items": [
                sbp, dbp,
                int_item("hr", 10, 500, "/min"),
                int_item("rr", 0, 100, "/min"),
                { "link_id": "temp", "type": "quantity", "required": true, "rules": ["r-fever"],
                  "limits": { "min_value": q(34.0, "Cel"), "max_value": q(45.0, "Cel"), "unit": "Cel" } },
                { "link_id": "spo2", "type": "decimal", "limits": { "min_value": { "decimal": 50.0 },
                  "max_value": { "decimal": 100.0 }, "unit": "%", "max_decimal_places": 1 } },
                { "link_id": "weight", "type": "quantity", "rules": ["r-weight"],
                  "limits": { "min_value": q(2.0, "kg"), "max_value": q(500.0, "kg"), "unit": "kg" } },
                { "link_id": "height", "type": "quantity",
                  "limits": { "min_value": q(20.0, "cm"), "max_value": q(250.0, "cm"), "unit": "cm" } },
                { "link_id": "bmi", "type": "decimal", "limits": { "min_value": { "decimal": 10.0 },
                  "max_value": { "decimal": 100.0 }, "unit": "kg/m2" } }
            ]},
            { "link_id": "pregnancy", "type": "group", "enable_when": on("sex", female), "items": [
                { "link_id": "pregnant", "type": "boolean" },
                { "link_id": "lmp", "type": "date", "enable_when": on("pregnant", json!({ "boolean": true })) },
                { "link_id": "gravida", "type": "integer", "limits": { "min_value": { "integer": 0 }, "max_value": { "integer": 30 } } }
            ]},
            { "link_id": "history", "type": "group", "items": [
                text("complaint", "text", 500),
                text("hpi", "text", 4000),
                choice("smoking", &["266919005", "8517006", "77176002"]),
                choice("alcohol", &["105542008", "219006", "7200002"]),
                { "link_id": "allergies", "type": "open-choice", "repeats": true,
                  "answer_options": [{ "value": { "string": "penicillin" } }, { "value": { "string": "latex" } }] },
                { "link_id": "medications", "type": "string", "repeats": true, "max_length": 200 },
                text("pmh", "text", 4000),
                text("surgeries", "text", 2000),
                text("family", "text", 2000)
            ]},
            { "link_id": "exam", "type": "group", "items": [
                choice("general", &["17621005", "271593001", "386661006"]),
                text("heent", "string", 500),
                text("cardio", "string", 500),
                text("resp", "string", 500),
                text("abdo", "string", 500),
                text("neuro", "string", 500),
                text("skin", "string", 500),
                int_item("pain", 0, 10, "{score}"),
                int_item("gcs", 3, 15, "{score}")
            ]},
            { "link_id": "assessment", "type": "group", "items": [
                choice("diagnosis", &["38341003", "44054006", "195967001", "233604007"]),
                { "link_id": "icd", "type": "string", "limits": { "regex": "[A-TV-Z][0-9][0-9AB](\\.[0-9A-KXZ]{1,4})?" } },
                text("plan", "text", 4000),
                { "link_id": "followup", "type": "date" },
                { "link_id": "referral", "type": "boolean" },
                { "link_id": "referral_to", "type": "string", "enable_when": on("referral", json!({ "boolean": true })) },
                text("notes", "text", 4000),
                text("clinician", "string", 100),
                { "link_id": "signed_at", "type": "dateTime", "required": true }
            ]}
        ],
        "rules": {
            "r-sbp-abnormal": rule("收缩压", "warning", json!({ "kind": "range", "min": 90, "max": 140, "unit": "mm[Hg]" })),
            "r-dbp-abnormal": rule("舒张压", "warning", json!({ "kind": "range", "min": 60, "max": 90, "unit": "mm[Hg]" })),
            "r-dbp-below-sbp": rule("舒张压低于收缩压", "error", json!({ "kind": "expression", "expression": "dbp < sbp and (dbp >= 30 or not sbp > 250)" })),
            "r-fever": rule("发热", "warning", json!({ "kind": "range", "max": 37.5, "unit": "Cel" })),
            "r-weight": rule("体重", "warning", json!({ "kind": "range", "min": 30, "max": 150, "unit": "kg" })),
            "r-mrn": rule("病历号", "error", json!({ "kind": "regex", "pattern": "[A-Z]{2}[0-9]{8}" }))
        }
    });
    serde_json::from_value(content).expect("form content")
}

fn record() -> RecordData {
    let s = |v: &str| json!({ "string": v });
    let a = |id: &str, v: Value| json!({ "link_id": id, "answers": [v] });
    let snomed = |c: &str| coding("http://snomed.info/sct", c);
    let long = "Patient reports intermittent frontal headache for three days, worse in the morning, \
                relieved partially by paracetamol; no fever, no neck stiffness, no visual disturbance.";
    let items = json!([
        a("name", s("张伟")),
        a("mrn", s("ZH20260001")),
        a("dob", json!({ "date": "1978-04-12" })),
        a(
            "sex",
            coding("http://hl7.org/fhir/administrative-gender", "female")
        ),
        a("phone", s("+86 138 0013 8000")),
        a("email", s("zhang.wei@example.cn")),
        a("sbp", json!({ "integer": 128 })),
        a("dbp", json!({ "integer": 82 })),
        a("hr", json!({ "integer": 76 })),
        a("rr", json!({ "integer": 16 })),
        a("temp", q(98.9, "[degF]")),
        a("spo2", json!({ "decimal": 98.5 })),
        a("weight", q(150.0, "[lb_av]")),
        a("height", q(1650.0, "mm")),
        a("bmi", json!({ "decimal": 25.0 })),
        a("pregnant", json!({ "boolean": true })),
        a("lmp", json!({ "date": "2026-10-02" })),
        a("gravida", json!({ "integer": 2 })),
        a("complaint", s("Headache for three days")),
        a("hpi", s(long)),
        a("smoking", snomed("8517006")),
        a("alcohol", snomed("219006")),
        json!({ "link_id": "allergies", "answers": [s("penicillin"), s("shellfish")] }),
        json!({ "link_id": "medications", "answers": [s("paracetamol 500 mg prn"), s("folic acid 0.4 mg qd")] }),
        a("pmh", s("Migraine since 2010; appendectomy 1998.")),
        a("surgeries", s("Appendectomy 1998")),
        a("family", s("Mother: hypertension")),
        a("general", snomed("17621005")),
        a("heent", s("normal")),
        a("cardio", s("S1 S2 normal, no murmur")),
        a("resp", s("clear bilaterally")),
        a("abdo", s("soft, non-tender")),
        a("neuro", s("no focal deficit")),
        a("skin", s("no rash")),
        a("pain", json!({ "integer": 4 })),
        a("gcs", json!({ "integer": 15 })),
        a("diagnosis", snomed("38341003")),
        a("icd", s("G43.909")),
        a("plan", s(long)),
        a("followup", json!({ "date": "2026-12-14" })),
        a("referral", json!({ "boolean": true })),
        a("referral_to", s("Neurology")),
        a("notes", s("Discussed red flags.")),
        a("clinician", s("Dr. Li")),
        a(
            "signed_at",
            json!({ "date_time": "2026-11-30T09:15:00+08:00" })
        )
    ]);
    serde_json::from_value(json!({ "status": "completed", "items": items })).expect("record")
}

fn templates(c: &mut Criterion) {
    let content = form();
    structure::check(&content).expect("a valid template");
    CompiledVersion::check_rules(&content).expect("rules fit their items");
    let questions = content
        .walk()
        .iter()
        .filter(|(i, _)| i.item_type.is_question())
        .count();
    assert_eq!((content.walk().len(), questions), (51, 45));
    let compiled = CompiledVersion::new(&content);
    let valid = record();
    let issues = record::check(&compiled, &valid, Language::En);
    assert!(
        issues.is_empty(),
        "the benchmark record is valid: {issues:?}"
    );
    // The same record with an implausible, an abnormal and a cross-field value, in Chinese.
    let mut flawed = valid.clone();
    for answered in &mut flawed.items {
        match answered.link_id.as_str() {
            "sbp" => {
                answered.answers =
                    vec![serde_json::from_value(json!({ "integer": 180 })).expect("v")]
            }
            "dbp" => {
                answered.answers =
                    vec![serde_json::from_value(json!({ "integer": 190 })).expect("v")]
            }
            "mrn" => {
                answered.answers =
                    vec![serde_json::from_value(json!({ "string": "12" })).expect("v")]
            }
            _ => {}
        }
    }
    let flawed_issues = record::check(&compiled, &flawed, Language::Zh);
    assert_eq!(flawed_issues.len(), 4, "{flawed_issues:?}");

    let mut group = c.benchmark_group("template_validate_51_items");
    group.throughput(Throughput::Elements(1));
    group.bench_function("valid_record", |b| {
        b.iter(|| record::check(&compiled, &valid, Language::En))
    });
    group.bench_function("record_with_4_issues_zh", |b| {
        b.iter(|| record::check(&compiled, &flawed, Language::Zh))
    });
    group.bench_function("compile_version_once", |b| {
        b.iter(|| CompiledVersion::new(&content))
    });
    group.finish();
}

criterion_group!(benches, templates);
criterion_main!(benches);
