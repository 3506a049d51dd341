//! Validation rules (API §4.4): CRUD with filters and audit, 4xx for bad rules, tenant
//! isolation, messages in Chinese and English, and published versions that keep validating
//! with the rule definitions they froze, on SQLite and PostgreSQL.

mod common;

use common::{id, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    rules_crud_filters_and_audit,
    bad_rules_are_4xx,
    tenants_see_platform_rules_and_only_their_own,
    published_versions_keep_their_frozen_rules,
    messages_follow_accept_language,
);

fn range_rule(name: &str, min: f64, max: f64, severity: &str) -> Value {
    json!({
        "name": name, "kind": "range", "severity": severity, "min": min, "max": max,
        "unit": "mm[Hg]",
        "message": { "zh": "收缩压异常", "en": "systolic pressure is abnormal" }
    })
}

async fn audited(stack: &Stack, action: &str, resource_id: &str) -> bool {
    let r = stack
        .admin()
        .get("/api/audit-logs?page_size=200")
        .await
        .expect(200);
    r.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|e| e["action"] == action && e["resource_id"] == resource_id)
}

async fn rules_crud_filters_and_audit(stack: Stack) {
    let t = tenant(&stack, "vr-crud", None).await;
    let admin = stack.admin();
    let tadmin = stack.as_role(Role::TenantAdmin, Some(&t));
    let platform = admin
        .post(
            "/api/validation-rules",
            range_rule("SBP plausible", 10.0, 250.0, "error"),
        )
        .await
        .expect(201)
        .json;
    assert_eq!(platform["tenant_id"], Value::Null);
    assert_eq!(platform["kind"], "range");
    assert_eq!(platform["unit"], "mm[Hg]");
    let own = tadmin
        .post(
            "/api/validation-rules",
            json!({ "name": "MRN format", "kind": "regex", "pattern": "[A-Z]{2}\\d{6}",
                    "message": { "zh": "病历号格式错误", "en": "bad record number" } }),
        )
        .await
        .expect(201)
        .json;
    assert_eq!(own["tenant_id"], json!(t));
    assert_eq!(own["severity"], "error", "error is the default severity");
    let (pid, oid) = (id(&platform), id(&own));

    let list = |q: &'static str| {
        let viewer = stack.as_role(Role::TenantViewer, Some(&t));
        async move {
            let r = viewer
                .get(&format!("/api/validation-rules{q}"))
                .await
                .expect(200);
            let ids: Vec<String> = r.json["items"]
                .as_array()
                .expect("items")
                .iter()
                .map(id)
                .collect();
            if !q.contains("page") {
                assert_eq!(r.json["total"], ids.len(), "{q}");
            }
            ids
        }
    };
    assert_eq!(list("").await, [pid.clone(), oid.clone()]);
    assert_eq!(list("?scope=platform").await, [pid.as_str()]);
    assert_eq!(list("?scope=tenant").await, [oid.as_str()]);
    assert_eq!(list("?kind=regex").await, [oid.as_str()]);
    assert_eq!(list("?severity=error&q=sbp").await, [pid.as_str()]);
    assert_eq!(list("?page_size=1&page=2").await, [oid.as_str()]);
    admin
        .get("/api/validation-rules?kind=nope")
        .await
        .expect(400);

    let r = tadmin
        .get(&format!("/api/validation-rules/{oid}"))
        .await
        .expect(200);
    assert_eq!(r.json["pattern"], "[A-Z]{2}\\d{6}");
    let r = tadmin
        .put(
            &format!("/api/validation-rules/{oid}"),
            json!({ "name": "MRN length", "kind": "length", "max_length": 8, "severity": "warning",
                    "message": { "zh": "太长", "en": "too long" } }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["kind"], "length");
    assert_eq!(r.json["max_length"], 8);
    assert_eq!(
        r.json["pattern"],
        Value::Null,
        "PUT replaces the whole rule"
    );
    tadmin
        .put(
            &format!("/api/validation-rules/{oid}"),
            json!({ "tenant_id": "other", "name": "x", "kind": "required",
                    "message": { "zh": "必填", "en": "required" } }),
        )
        .await
        .expect(422);
    tadmin
        .delete(&format!("/api/validation-rules/{oid}"))
        .await
        .expect(204);
    tadmin
        .get(&format!("/api/validation-rules/{oid}"))
        .await
        .expect(404);
    for action in [
        "validation_rules.create",
        "validation_rules.update",
        "validation_rules.delete",
    ] {
        assert!(audited(&stack, action, &oid).await, "{action}");
    }
    assert!(audited(&stack, "validation_rules.create", &pid).await);
}

async fn bad_rules_are_4xx(stack: Stack) {
    let admin = stack.admin();
    let message = json!({ "zh": "错误", "en": "wrong" });
    let with = |extra: Value| {
        let mut body = json!({ "name": "Rule", "message": message });
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        body
    };
    for (body, field) in [
        (
            with(json!({ "kind": "regex", "pattern": "(unclosed" })),
            "pattern",
        ),
        (
            with(json!({ "kind": "regex", "pattern": "a{1000}{1000}" })),
            "pattern",
        ),
        (
            with(json!({ "kind": "expression", "expression": "dbp <" })),
            "expression",
        ),
        (
            with(json!({ "kind": "expression", "expression": "dbp ~ sbp" })),
            "expression",
        ),
        (
            with(json!({ "kind": "expression", "expression": "1 < 2" })),
            "expression",
        ),
        (
            with(json!({ "kind": "range", "min": 140, "max": 90 })),
            "min",
        ),
        (with(json!({ "kind": "range" })), "min"),
        (
            with(json!({ "kind": "range", "max": 9, "unit": "stone" })),
            "unit",
        ),
        (
            with(json!({ "kind": "range", "max": 9, "pattern": "x" })),
            "pattern",
        ),
        (
            with(json!({ "kind": "length", "min_length": 5, "max_length": 2 })),
            "min_length",
        ),
        (with(json!({ "kind": "options", "options": [] })), "options"),
        (
            with(json!({ "kind": "options", "options": [{ "date": "2024-02-30" }] })),
            "options",
        ),
        (with(json!({ "kind": "type" })), "value_type"),
        (with(json!({ "kind": "required", "name": "" })), "name"),
        (
            with(json!({ "kind": "required", "message": { "zh": "", "en": "x" } })),
            "message.zh",
        ),
    ] {
        let r = admin.post("/api/validation-rules", body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(
            r.json["error"]["details"]["field"], field,
            "{body}: {}",
            r.text
        );
    }
    for body in [
        with(json!({ "kind": "required", "colour": "red" })),
        with(json!({ "kind": "sometimes" })),
        with(json!({ "kind": "required", "severity": "fatal" })),
        with(json!({ "kind": "required", "message": { "en": "only english" } })),
    ] {
        let r = admin.post("/api/validation-rules", body.clone()).await;
        assert!(r.status == 400 || r.status == 422, "{body}: {}", r.text);
    }
    admin
        .put(
            "/api/validation-rules/vrule_missing",
            with(json!({ "kind": "required" })),
        )
        .await
        .expect(404);
    admin
        .get("/api/validation-rules/vrule%00x")
        .await
        .expect(404);
}

async fn tenants_see_platform_rules_and_only_their_own(stack: Stack) {
    let a = tenant(&stack, "vr-a", None).await;
    let b = tenant(&stack, "vr-b", None).await;
    let admin = stack.admin();
    let a_admin = stack.as_role(Role::TenantAdmin, Some(&a));
    let b_admin = stack.as_role(Role::TenantAdmin, Some(&b));
    let platform = id(&admin
        .post(
            "/api/validation-rules",
            range_rule("plausible", 10.0, 250.0, "error"),
        )
        .await
        .expect(201)
        .json);
    let a_rule = id(&a_admin
        .post(
            "/api/validation-rules",
            range_rule("abnormal", 90.0, 140.0, "warning"),
        )
        .await
        .expect(201)
        .json);
    let path = format!("/api/validation-rules/{a_rule}");
    b_admin.get(&path).await.expect(404);
    b_admin
        .put(&path, range_rule("mine now", 1.0, 2.0, "error"))
        .await
        .expect(404);
    b_admin.delete(&path).await.expect(404);
    b_admin
        .get(&format!("/api/validation-rules?tenant_id={a}"))
        .await
        .expect(404);
    let r = b_admin.get("/api/validation-rules").await.expect(200);
    assert_eq!(
        r.json["total"], 1,
        "B sees the platform rule only: {}",
        r.json
    );
    b_admin
        .post(
            "/api/validation-rules",
            json!({ "tenant_id": a, "name": "x", "kind": "required", "message": { "zh": "必填", "en": "required" } }),
        )
        .await
        .expect(404);
    // Platform rules: readable by tenants, changed by platform admins only.
    b_admin
        .get(&format!("/api/validation-rules/{platform}"))
        .await
        .expect(200);
    b_admin
        .put(
            &format!("/api/validation-rules/{platform}"),
            range_rule("p", 1.0, 2.0, "error"),
        )
        .await
        .expect(403);
    b_admin
        .delete(&format!("/api/validation-rules/{platform}"))
        .await
        .expect(403);
    stack
        .as_role(Role::TenantViewer, Some(&a))
        .post("/api/validation-rules", range_rule("v", 1.0, 2.0, "error"))
        .await
        .expect(403);
    // Platform admins see everything and filter by tenant.
    let r = admin
        .get(&format!("/api/validation-rules?tenant_id={a}&scope=tenant"))
        .await
        .expect(200);
    assert_eq!(r.json["items"][0]["id"], json!(a_rule));
    // B's template cannot attach A's rule: publish refuses it as unknown.
    let content = json!({ "items": [{ "link_id": "sbp", "type": "integer",
        "limits": { "unit": "mm[Hg]" }, "rules": [a_rule, platform] }] });
    let r = b_admin
        .post(
            "/api/templates",
            json!({ "name": "B form", "content": content }),
        )
        .await
        .expect(201);
    let r = b_admin
        .post(
            &format!("/api/templates/{}/publish", id(&r.json)),
            Value::Null,
        )
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["rule"], "rules", "{}", r.text);
    assert!(r.text.contains(&a_rule), "{}", r.text);
}

async fn publish(stack: &Stack, t: &str, content: Value) -> String {
    let admin = stack.as_role(Role::TenantAdmin, Some(t));
    let r = admin
        .post(
            "/api/templates",
            json!({ "name": "Vitals", "content": content }),
        )
        .await
        .expect(201);
    let tid = id(&r.json);
    admin
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(201);
    tid
}

fn sbp_record(value: i64) -> Value {
    json!({ "status": "completed", "items": [{ "link_id": "sbp", "answers": [{ "integer": value }] }] })
}

async fn validate(stack: &Stack, t: &str, tid: &str, query: &str, body: Value) -> Value {
    stack
        .as_role(Role::TenantViewer, Some(t))
        .post(&format!("/api/templates/{tid}/validate{query}"), body)
        .await
        .expect(200)
        .json
}

async fn published_versions_keep_their_frozen_rules(stack: Stack) {
    let t = tenant(&stack, "vr-frozen", None).await;
    let tadmin = stack.as_role(Role::TenantAdmin, Some(&t));
    let rule = id(&tadmin
        .post(
            "/api/validation-rules",
            range_rule("abnormal", 90.0, 140.0, "warning"),
        )
        .await
        .expect(201)
        .json);
    let content = json!({ "items": [{ "link_id": "sbp", "type": "integer",
        "limits": { "unit": "mm[Hg]" }, "rules": [rule] }] });
    let tid = publish(&stack, &t, content).await;
    let v1 = tadmin
        .get(&format!("/api/templates/{tid}/versions/1"))
        .await
        .expect(200)
        .json;
    assert_eq!(v1["content"]["rules"][&rule]["max"], 140.0, "{v1}");
    let r = validate(&stack, &t, &tid, "", sbp_record(150)).await;
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["warnings"][0]["rule"], json!(rule));

    // The rule is widened; version 1 keeps the definition it was published with.
    tadmin
        .put(
            &format!("/api/validation-rules/{rule}"),
            range_rule("abnormal", 90.0, 160.0, "warning"),
        )
        .await
        .expect(200);
    let r = validate(&stack, &t, &tid, "?version=1", sbp_record(150)).await;
    assert_eq!(r["warnings"][0]["rule"], json!(rule), "{r}");
    let again = tadmin
        .get(&format!("/api/templates/{tid}/versions/1"))
        .await
        .expect(200)
        .json;
    assert_eq!(again["content_sha256"], v1["content_sha256"]);
    assert_eq!(again["content"], v1["content"]);

    // A draft attaching the rule blocks its deletion; the next publish freezes the new one.
    tadmin
        .post(&format!("/api/templates/{tid}/versions"), Value::Null)
        .await
        .expect(201);
    tadmin
        .delete(&format!("/api/validation-rules/{rule}"))
        .await
        .expect(409);
    tadmin
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(201);
    let r = validate(&stack, &t, &tid, "?version=2", sbp_record(150)).await;
    assert_eq!(r["warnings"], json!([]), "{r}");
    let r = validate(&stack, &t, &tid, "?version=2", sbp_record(170)).await;
    assert_eq!(r["warnings"][0]["rule"], json!(rule), "{r}");

    // Deleted, the rule still lives on in both versions.
    tadmin
        .delete(&format!("/api/validation-rules/{rule}"))
        .await
        .expect(204);
    let r = validate(&stack, &t, &tid, "?version=1", sbp_record(150)).await;
    assert_eq!(r["warnings"][0]["rule"], json!(rule), "{r}");
    // ... but a new draft that still attaches it can no longer be published.
    tadmin
        .post(&format!("/api/templates/{tid}/versions"), Value::Null)
        .await
        .expect(201);
    tadmin
        .post(&format!("/api/templates/{tid}/publish"), Value::Null)
        .await
        .expect(422);
}

async fn messages_follow_accept_language(stack: Stack) {
    let t = tenant(&stack, "vr-lang", None).await;
    let tadmin = stack.as_role(Role::TenantAdmin, Some(&t));
    let rule = id(&tadmin
        .post(
            "/api/validation-rules",
            range_rule("abnormal", 90.0, 140.0, "warning"),
        )
        .await
        .expect(201)
        .json);
    let content = json!({ "items": [
        { "link_id": "sbp", "type": "integer", "limits": { "unit": "mm[Hg]" }, "rules": [rule] },
        { "link_id": "note", "type": "string", "max_length": 3 }
    ]});
    let tid = publish(&stack, &t, content).await;
    let body = json!({ "status": "completed", "items": [
        { "link_id": "sbp", "answers": [{ "integer": 180 }] },
        { "link_id": "note", "answers": [{ "string": "too long" }] }
    ]});
    let client = stack.as_role(Role::TenantViewer, Some(&t));
    let http = reqwest::Client::new();
    let ask = |lang: Option<&'static str>| {
        let mut request = http
            .post(format!("{}/api/templates/{tid}/validate", client.base_url))
            .bearer_auth(client.token.clone().expect("token"))
            .json(&body);
        if let Some(lang) = lang {
            request = request.header("accept-language", lang);
        }
        async move {
            let r = request.send().await.expect("sent");
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.expect("json")
        }
    };
    let en = ask(None).await;
    assert_eq!(en["language"], "en");
    assert_eq!(
        en["warnings"][0]["message"],
        "systolic pressure is abnormal"
    );
    assert_eq!(en["errors"][0]["message"], "at most 3 characters");
    let zh = ask(Some("zh-CN,zh;q=0.9,en;q=0.8")).await;
    assert_eq!(zh["language"], "zh");
    assert_eq!(zh["warnings"][0]["message"], "收缩压异常");
    assert_eq!(zh["errors"][0]["message"], "最多 3 个字符");
    // Both languages are always there.
    for r in [&en, &zh] {
        assert_eq!(r["warnings"][0]["messages"]["zh"], "收缩压异常");
        assert_eq!(r["errors"][0]["messages"]["en"], "at most 3 characters");
    }
    let fr = ask(Some("fr-FR")).await;
    assert_eq!(fr["language"], "en");
}
