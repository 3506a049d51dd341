//! Retiring template versions (billing-medical.md §6.4), on SQLite and PostgreSQL:
//! V3 records stay checkable against their version after it is superseded and retired, while
//! new records need an active version;
//! V4 draft -> active -> retired only; retired -> active only forced, with a reason, audited.

mod common;
mod template_common;

use common::{audit_details, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};
use template_common::{audit, create, new_draft, publish, two_sections};

both_backends!(
    v3_records_keep_their_version_after_retirement,
    v4_status_transitions,
);

fn sbp(value: i64) -> Value {
    json!({ "status": "completed", "items": [{ "link_id": "sbp", "answers": [{ "integer": value }] }] })
}

async fn validate(stack: &Stack, tid: &str, query: &str, record: Value) -> (u16, Value) {
    let r = stack
        .as_role(Role::TenantViewer, Some(&tenant_of(stack, tid).await))
        .post(&format!("/api/templates/{tid}/validate{query}"), record)
        .await;
    (r.status, r.json)
}

async fn tenant_of(stack: &Stack, tid: &str) -> String {
    let r = stack
        .admin()
        .get(&format!("/api/templates/{tid}"))
        .await
        .expect(200);
    r.json["tenant_id"].as_str().expect("tenant").to_owned()
}

async fn v3_records_keep_their_version_after_retirement(stack: Stack) {
    let t = tenant(&stack, "life-v3", None).await;
    let tid = create(&stack, Some(&t), "Pinned", two_sections()).await;
    let admin = stack.as_role(Role::TenantAdmin, Some(&t));
    publish(&admin, &tid).await;
    // A record captured on v1: 240 is within v1's bound.
    let (status, r) = validate(&stack, &tid, "", sbp(240)).await;
    assert_eq!(
        (status, r["valid"].clone(), r["version"].clone()),
        (200, json!(true), json!(1))
    );

    // v2 tightens the bound; v1 is retired.
    new_draft(&admin, &tid).await;
    let mut vitals = two_sections()["items"][0].clone();
    vitals["items"][0]["limits"]["max_value"] = json!({ "integer": 200 });
    admin
        .put(
            &format!("/api/templates/{tid}/sections/vitals"),
            json!({ "section": vitals }),
        )
        .await
        .expect(200);
    publish(&admin, &tid).await;
    admin
        .put(
            &format!("/api/templates/{tid}/versions/1/status"),
            json!({ "status": "retired" }),
        )
        .await
        .expect(200);

    // The v1 record still validates (and displays) against v1.
    let (status, r) = validate(&stack, &tid, "?version=1&existing=true", sbp(240)).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        (r["valid"].clone(), r["version"].clone()),
        (json!(true), json!(1))
    );
    let shown = admin
        .get(&format!("/api/templates/{tid}/versions/1"))
        .await
        .expect(200);
    assert_eq!(shown.json["status"], "retired");
    // New records cannot use the retired v1; they go to v2, where 240 is out of range.
    let (status, r) = validate(&stack, &tid, "?version=1", sbp(240)).await;
    assert_eq!(
        (status, r["error"]["code"].clone()),
        (409, json!("version_retired"))
    );
    let (status, r) = validate(&stack, &tid, "", sbp(240)).await;
    assert_eq!(
        (status, r["version"].clone(), r["valid"].clone()),
        (200, json!(2), json!(false))
    );
    let (status, _) = validate(&stack, &tid, "?version=2", sbp(120)).await;
    assert_eq!(status, 200);

    // All versions retired: new records are refused; existing ones still check.
    admin
        .put(
            &format!("/api/templates/{tid}/versions/2/status"),
            json!({ "status": "retired" }),
        )
        .await
        .expect(200);
    let got = admin
        .get(&format!("/api/templates/{tid}"))
        .await
        .expect(200);
    assert_eq!(got.json["status"], "retired");
    let (status, r) = validate(&stack, &tid, "", sbp(120)).await;
    assert_eq!(
        (status, r["error"]["code"].clone()),
        (409, json!("no_active_version"))
    );
    let (status, r) = validate(&stack, &tid, "?version=2", sbp(120)).await;
    assert_eq!(
        (status, r["error"]["code"].clone()),
        (409, json!("version_retired"))
    );
    for v in [1, 2] {
        let (status, r) = validate(
            &stack,
            &tid,
            &format!("?version={v}&existing=true"),
            sbp(150),
        )
        .await;
        assert_eq!(
            (status, r["valid"].clone()),
            (200, json!(true)),
            "v{v}: {r}"
        );
    }
    // An existing record names its version; unknown versions are 404.
    let (status, r) = validate(&stack, &tid, "?existing=true", sbp(150)).await;
    assert_eq!(
        (status, r["error"]["details"]["field"].clone()),
        (422, json!("version"))
    );
    let (status, _) = validate(&stack, &tid, "?version=7&existing=true", sbp(150)).await;
    assert_eq!(status, 404);
    let (status, _) = validate(&stack, &tid, "?existing=maybe", sbp(150)).await;
    assert_eq!(status, 400);
    // A new version makes new records possible again.
    new_draft(&admin, &tid).await;
    publish(&admin, &tid).await;
    let (status, r) = validate(&stack, &tid, "", sbp(150)).await;
    assert_eq!((status, r["version"].clone()), (200, json!(3)));
}

async fn v4_status_transitions(stack: Stack) {
    let t = tenant(&stack, "life-v4", None).await;
    let tid = create(&stack, Some(&t), "Statuses", two_sections()).await;
    let admin = stack.as_role(Role::TenantAdmin, Some(&t));
    let status = |v: i64| format!("/api/templates/{tid}/versions/{v}/status");
    // Nothing published yet: no version to move.
    admin
        .put(&status(1), json!({ "status": "retired" }))
        .await
        .expect(404);
    let got = admin
        .get(&format!("/api/templates/{tid}"))
        .await
        .expect(200);
    assert_eq!(got.json["status"], "draft");
    let v1 = publish(&admin, &tid).await;
    assert_eq!(v1["status"], "active");

    let refused = [
        (json!({ "status": "active" }), "active -> active"),
        (json!({ "status": "draft" }), "active -> draft"),
        (
            json!({ "status": "draft", "force": true, "reason": "undo" }),
            "forced -> draft",
        ),
    ];
    for (body, what) in refused {
        let r = admin.put(&status(1), body).await.expect(409);
        assert_eq!(r.error_code(), "invalid_transition", "{what}");
    }
    let r = admin
        .put(
            &status(1),
            json!({ "status": "retired", "reason": "superseded" }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["status"], "retired");
    assert_eq!(r.json["content_sha256"], v1["content_sha256"]);
    let r = admin
        .put(&status(1), json!({ "status": "retired" }))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "invalid_transition");
    // retired -> active is refused unless forced, and forcing needs a reason.
    let r = admin
        .put(&status(1), json!({ "status": "active" }))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "invalid_transition");
    let r = admin
        .put(&status(1), json!({ "status": "active", "force": true }))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "reason");
    let got = admin
        .get(&format!("/api/templates/{tid}/versions/1"))
        .await
        .expect(200);
    assert_eq!(got.json["status"], "retired", "refusals change nothing");
    assert_eq!(
        admin
            .get(&format!("/api/templates/{tid}"))
            .await
            .expect(200)
            .json["status"],
        "retired"
    );
    let r = admin
        .put(
            &status(1),
            json!({ "status": "active", "force": true, "reason": "retired by mistake" }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["status"], "active");
    assert_eq!(
        admin
            .get(&format!("/api/templates/{tid}"))
            .await
            .expect(200)
            .json["status"],
        "active"
    );
    let entries = audit(&stack, "templates.version_status").await;
    let forced = entries
        .iter()
        .find(|e| e["outcome"] == "success" && audit_details(e)["forced"] == true)
        .expect("forced reactivation audited");
    let details = audit_details(forced);
    assert_eq!(details["from"], "retired");
    assert_eq!(details["to"], "active");
    assert_eq!(details["reason"], "retired by mistake");
    assert_eq!(forced["tenant_id"], t.as_str());
    assert!(entries
        .iter()
        .any(|e| e["outcome"] == "failure" && e["status_code"] == 409));

    // Bad input is 4xx; other tenants see nothing; read-only roles cannot.
    for bad in [
        json!({ "status": "archived" }),
        json!({ "status": "retired", "colour": "red" }),
        json!({}),
        json!({ "status": "retired", "reason": "" }),
        json!({ "status": "retired", "reason": "x".repeat(501) }),
    ] {
        let r = admin.put(&status(1), bad.clone()).await;
        assert_eq!(r.status, 422, "{bad}: {}", r.text);
    }
    let r = admin
        .put(
            &format!("/api/templates/{tid}/versions/one/status"),
            json!({ "status": "retired" }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    admin
        .put(&status(9), json!({ "status": "retired" }))
        .await
        .expect(404);
    let other = tenant(&stack, "life-v4-other", None).await;
    stack
        .as_role(Role::TenantAdmin, Some(&other))
        .put(&status(1), json!({ "status": "retired" }))
        .await
        .expect(404);
    stack
        .as_role(Role::TenantViewer, Some(&t))
        .put(&status(1), json!({ "status": "retired" }))
        .await
        .expect(403);
    let got = admin
        .get(&format!("/api/templates/{tid}/versions/1"))
        .await
        .expect(200);
    assert_eq!(got.json["status"], "active");
}
