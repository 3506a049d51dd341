//! The form element library (API §4.3, `GET /api/form-elements`): every preset is accepted as a
//! template draft and publishes, the clinical presets are present with UCUM units and bounds,
//! every role reads it, filters and bad queries, on SQLite and PostgreSQL.

mod common;

use common::tenant;
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    every_preset_makes_a_valid_template,
    clinical_presets_have_units_and_bounds,
    the_library_is_read_by_every_role_and_filtered,
);

async fn library(stack: &Stack) -> Vec<Value> {
    let r = stack
        .admin()
        .get("/api/form-elements?page_size=500")
        .await
        .expect(200);
    assert_eq!(
        r.json["total"].as_u64(),
        Some(r.json["items"].as_array().expect("items").len() as u64)
    );
    r.json["items"].as_array().expect("items").clone()
}

fn find<'a>(item: &'a Value, link_id: &str) -> Option<&'a Value> {
    if item["link_id"] == link_id {
        return Some(item);
    }
    item["items"]
        .as_array()?
        .iter()
        .find_map(|c| find(c, link_id))
}

async fn every_preset_makes_a_valid_template(stack: Stack) {
    let t = tenant(&stack, "fe-valid", None).await;
    let admin = stack.as_role(Role::TenantAdmin, Some(&t));
    let elements = library(&stack).await;
    assert!(elements.len() >= 16 + 9, "{}", elements.len());
    for e in &elements {
        // Dropped into a draft as they come, each one saves and publishes.
        let r = admin
            .post(
                "/api/templates",
                json!({ "name": e["name"], "content": { "items": [e["item"]] } }),
            )
            .await;
        assert_eq!(r.status, 201, "{}: {}", e["id"], r.text);
        assert_eq!(
            r.json["draft"]["items"][0], e["item"],
            "{} unchanged",
            e["id"]
        );
        let tid = r.json["id"].as_str().expect("id");
        admin
            .post(&format!("/api/templates/{tid}/publish"), Value::Null)
            .await
            .expect(201);
    }
    // All clinical presets together make one valid form (their linkIds do not clash, except
    // the height/weight singles that the combined group repeats).
    let clinical: Vec<Value> = elements
        .iter()
        .filter(|e| e["category"] == "clinical")
        .filter(|e| e["id"] != "body-height" && e["id"] != "body-weight" && e["id"] != "bmi")
        .map(|e| e["item"].clone())
        .collect();
    admin
        .post(
            "/api/templates",
            json!({ "name": "Everything", "content": { "items": clinical } }),
        )
        .await
        .expect(201);
}

async fn clinical_presets_have_units_and_bounds(stack: Stack) {
    let elements = library(&stack).await;
    let preset = |id: &str| {
        elements
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("preset {id} missing"))
            .clone()
    };
    let expect = [
        (
            "blood-pressure",
            "systolic",
            "mm[Hg]",
            json!({ "integer": 10 }),
            json!({ "integer": 250 }),
        ),
        (
            "blood-pressure",
            "diastolic",
            "mm[Hg]",
            json!({ "integer": 30 }),
            json!({ "integer": 200 }),
        ),
        (
            "heart-rate",
            "heart-rate",
            "/min",
            json!({ "integer": 10 }),
            json!({ "integer": 500 }),
        ),
        (
            "body-temperature",
            "body-temperature",
            "Cel",
            json!({ "decimal": 34.0 }),
            json!({ "decimal": 45.0 }),
        ),
        (
            "spo2",
            "spo2",
            "%",
            json!({ "integer": 0 }),
            json!({ "integer": 100 }),
        ),
        (
            "body-height",
            "body-height",
            "cm",
            json!({ "quantity": { "value": 20.0, "unit": "cm" } }),
            json!({ "quantity": { "value": 250.0, "unit": "cm" } }),
        ),
        (
            "body-weight",
            "body-weight",
            "kg",
            json!({ "quantity": { "value": 2.0, "unit": "kg" } }),
            json!({ "quantity": { "value": 500.0, "unit": "kg" } }),
        ),
        (
            "bmi",
            "bmi",
            "kg/m2",
            json!({ "decimal": 16.0 }),
            json!({ "decimal": 100.0 }),
        ),
    ];
    for (id, link_id, unit, min, max) in expect {
        let e = preset(id);
        assert_eq!(e["category"], "clinical", "{id}");
        assert!(e["name_zh"].as_str().is_some_and(|s| !s.is_empty()), "{id}");
        let item = find(&e["item"], link_id).unwrap_or_else(|| panic!("{id}/{link_id}"));
        assert_eq!(item["limits"]["unit"], unit, "{id}/{link_id}");
        assert_eq!(item["limits"]["min_value"], min, "{id}/{link_id}");
        assert_eq!(item["limits"]["max_value"], max, "{id}/{link_id}");
    }
    let bp = preset("blood-pressure");
    assert_eq!(bp["item"]["type"], "group");
    assert_eq!(bp["code"]["system"], "http://loinc.org");
    assert_eq!(preset("bmi")["item"]["read_only"], true);
    let hwb = preset("height-weight-bmi");
    for link_id in ["body-height", "body-weight", "bmi"] {
        assert!(find(&hwb["item"], link_id).is_some(), "{link_id}");
    }
    let pain = find(&preset("pain-scale")["item"], "pain-score")
        .cloned()
        .expect("pain");
    assert_eq!(pain["limits"]["min_value"], json!({ "integer": 0 }));
    assert_eq!(pain["limits"]["max_value"], json!({ "integer": 10 }));
    let allergies = preset("allergy-list")["item"].clone();
    assert_eq!(allergies["repeats"], true);
    for link_id in ["allergy-substance", "allergy-reaction", "allergy-severity"] {
        assert!(find(&allergies, link_id).is_some(), "{link_id}");
    }
    let severity = find(&allergies, "allergy-severity").expect("severity");
    assert_eq!(severity["type"], "choice");
    assert_eq!(severity["answer_options"].as_array().map(Vec::len), Some(3));
    let diagnosis = preset("diagnosis")["item"].clone();
    let code = find(&diagnosis, "diagnosis-code").expect("code");
    assert_eq!(code["type"], "choice");
    assert!(code["answer_value_set"]
        .as_str()
        .is_some_and(|s| s.contains("icd-10")));

    // A preset's bounds bite once published: systolic 300 is out of range.
    let t = tenant(&stack, "fe-bounds", None).await;
    let r = stack
        .admin()
        .post(
            "/api/templates",
            json!({ "tenant_id": t, "name": "BP", "content": { "items": [bp["item"]] } }),
        )
        .await
        .expect(201);
    let tid = r.json["id"].as_str().expect("id");
    stack
        .admin()
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(201);
    let r = stack
        .admin()
        .post(
            &format!("/api/templates/{tid}/validate"),
            json!({ "status": "completed", "items": [{ "link_id": "systolic", "answers": [{ "integer": 300 }] }] }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["valid"], false, "{}", r.text);
}

async fn the_library_is_read_by_every_role_and_filtered(stack: Stack) {
    let t = tenant(&stack, "fe-roles", None).await;
    for role in [Role::TenantAdmin, Role::TenantViewer, Role::Auditor] {
        stack
            .as_role(role, Some(&t))
            .get("/api/form-elements")
            .await
            .expect(200);
    }
    stack
        .anonymous()
        .get("/api/form-elements")
        .await
        .expect(401);
    let admin = stack.admin();
    let basic = admin
        .get("/api/form-elements?category=basic&page_size=500")
        .await
        .expect(200);
    let types: std::collections::BTreeSet<String> = basic.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["item"]["type"].as_str().expect("type").to_owned())
        .collect();
    assert_eq!(
        types.len(),
        16,
        "one basic element per item type: {types:?}"
    );
    let groups = admin
        .get("/api/form-elements?category=clinical&type=group")
        .await
        .expect(200);
    let ids: Vec<&str> = groups.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert!(
        ids.contains(&"blood-pressure") && ids.contains(&"allergy-list"),
        "{ids:?}"
    );
    let page = admin
        .get("/api/form-elements?page=2&page_size=5")
        .await
        .expect(200);
    assert_eq!(page.json["items"].as_array().map(Vec::len), Some(5));
    assert_eq!(page.json["page"], 2);
    for bad in ["?category=exotic", "?type=number", "?page=0", "?colour=red"] {
        let r = admin.get(&format!("/api/form-elements{bad}")).await;
        assert!(
            r.status == 400 || r.status == 422,
            "{bad}: {} {}",
            r.status,
            r.text
        );
    }
}
