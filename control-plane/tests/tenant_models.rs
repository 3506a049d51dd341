//! Per-tenant model configuration (API §3.3, tenant part): availability by model state, plan
//! and config; aliases; parameter overrides; what tenant admins may do alone.

mod common;

use common::{create_model, create_model_with, id, model_body, plan, snapshot, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    available_models_follow_model_plan_and_config,
    aliases_and_overrides_reach_the_snapshot,
    aliases_are_unique_and_never_shadow_model_names,
    tenant_admins_cannot_grant_or_loosen,
    configuration_errors_are_4xx,
);

fn names(r: &Value) -> Vec<String> {
    let mut names: Vec<String> = r["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|m| m["model_name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    names
}

async fn available_models_follow_model_plan_and_config(stack: Stack) {
    let admin = stack.admin();
    let open = create_model(&stack, "open").await;
    let mut restricted = model_body("restricted");
    restricted["available_to_all_tenants"] = json!(false);
    let restricted = id(&create_model_with(&stack, restricted).await);
    let off = create_model(&stack, "off").await;
    admin
        .post(&format!("/api/models/{off}/toggle"), Value::Null)
        .await
        .expect(200);
    create_model(&stack, "unplanned").await;
    let p = plan(
        &stack,
        json!({ "name": "p", "allowed_models": ["open", "restricted", "off"] }),
    )
    .await;
    let tid = tenant(&stack, "consumer", Some(&p)).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&tid));
    let path = format!("/api/tenants/{tid}/models");

    let r = ta.get(&path).await.expect(200);
    assert_eq!(names(&r.json), vec!["open"]);
    assert_eq!(r.json["total"], 1);
    assert_eq!(r.json["items"][0]["configured"], false);
    assert_eq!(r.json["items"][0]["available"], true);

    admin
        .post(
            &format!("/api/tenants/{tid}/models/{restricted}"),
            json!({}),
        )
        .await
        .expect(200);
    let r = ta.get(&path).await.expect(200);
    assert_eq!(names(&r.json), vec!["open", "restricted"]);

    let r = ta
        .post(
            &format!("/api/tenants/{tid}/models/{open}"),
            json!({ "enabled": false }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["available"], false);
    let r = ta.get(&path).await.expect(200);
    assert_eq!(names(&r.json), vec!["restricted"]);

    // The disabled model is configured but not available; GET of one model still answers.
    admin
        .post(&format!("/api/tenants/{tid}/models/{off}"), json!({}))
        .await
        .expect(200);
    let r = ta
        .get(&format!("/api/tenants/{tid}/models/{off}"))
        .await
        .expect(200);
    assert_eq!(r.json["configured"], true);
    assert_eq!(r.json["enabled"], true);
    assert_eq!(r.json["available"], false, "the model itself is disabled");

    // Without a plan every enabled model open to all tenants is available.
    let free = tenant(&stack, "free", None).await;
    let r = stack
        .as_role(Role::TenantViewer, Some(&free))
        .get(&format!("/api/tenants/{free}/models"))
        .await
        .expect(200);
    assert_eq!(names(&r.json), vec!["open", "unplanned"]);
    let r = admin
        .get(&format!("/api/tenants/{free}/models?page_size=1&page=2"))
        .await
        .expect(200);
    assert_eq!(r.json["total"], 2);
    assert_eq!(r.json["items"].as_array().expect("items").len(), 1);
    let r = admin
        .get(&format!("/api/tenants/{free}/models?page=768043823"))
        .await
        .expect(200);
    assert_eq!(
        r.json["items"],
        json!([]),
        "a page far past the end is empty"
    );
    let r = admin
        .get(&format!("/api/tenants/{free}/models/{restricted}"))
        .await
        .expect(200);
    assert_eq!(r.json["configured"], false);
    assert_eq!(r.json["available"], false);
}

async fn aliases_and_overrides_reach_the_snapshot(stack: Stack) {
    let mut body = model_body("gpt-4o");
    body["parameters"] = json!({
        "max_tokens": { "min": 1, "max": 4096, "default": 1024 },
        "temperature": { "default": 0.7 }
    });
    let mid = id(&create_model_with(&stack, body).await);
    let tid = tenant(&stack, "aliaser", None).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&tid));
    let v0 = snapshot(&stack).await.version;
    let r = ta
        .post(
            &format!("/api/tenants/{tid}/models/{mid}"),
            json!({
                "alias": "fast",
                "parameters": { "max_tokens": { "min": 1, "max": 512, "default": 256 } }
            }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["alias"], "fast");
    assert_eq!(r.json["parameters"]["max_tokens"]["max"], 512.0, "merged");
    assert_eq!(
        r.json["parameters"]["temperature"]["default"], 0.7,
        "model rule kept"
    );
    assert_eq!(
        r.json["parameter_overrides"],
        json!({ "max_tokens": { "default": 256, "min": 1.0, "max": 512.0, "forced": null, "on_violation": "clamp" } })
    );

    let got = ta
        .get(&format!("/api/tenants/{tid}/models/{mid}"))
        .await
        .expect(200);
    assert_eq!(got.json["alias"], "fast");
    let list = ta
        .get(&format!("/api/tenants/{tid}/models"))
        .await
        .expect(200);
    assert_eq!(list.json["items"][0]["alias"], "fast");
    assert_eq!(
        list.json["items"][0]["parameters"]["max_tokens"]["default"],
        256
    );

    let s = snapshot(&stack).await;
    assert!(s.version > v0);
    assert_eq!(s.tenant_models.len(), 1);
    let tm = &s.tenant_models[0];
    assert_eq!(tm.tenant_id, tid);
    assert_eq!(tm.model_id, mid);
    assert!(tm.enabled);
    assert_eq!(tm.alias.as_deref(), Some("fast"));
    assert_eq!(tm.parameters["max_tokens"].max, Some(512.0));

    // The POST is an upsert that replaces the whole config.
    let r = ta
        .post(&format!("/api/tenants/{tid}/models/{mid}"), json!({}))
        .await
        .expect(200);
    assert_eq!(r.json["alias"], Value::Null);
    assert_eq!(r.json["parameters"]["max_tokens"]["max"], 4096.0);
    let s = snapshot(&stack).await;
    assert_eq!(s.tenant_models.len(), 1, "still one config");
    assert_eq!(s.tenant_models[0].alias, None);
    let audit = stack
        .admin()
        .get("/api/audit-logs?action=tenant_models.configure")
        .await
        .expect(200);
    assert_eq!(audit.json["total"], 2);
    assert_eq!(audit.json["items"][0]["tenant_id"], json!(tid));
}

async fn aliases_are_unique_and_never_shadow_model_names(stack: Stack) {
    let admin = stack.admin();
    let m1 = create_model(&stack, "model-one").await;
    let m2 = create_model(&stack, "model-two").await;
    let a = tenant(&stack, "alias-a", None).await;
    let b = tenant(&stack, "alias-b", None).await;
    let configure = |tenant: &str, model: &str, alias: &str| {
        let path = format!("/api/tenants/{tenant}/models/{model}");
        let body = json!({ "alias": alias });
        let admin = admin.clone();
        async move { admin.post(&path, body).await }
    };
    configure(&a, &m1, "short").await.expect(200);
    configure(&a, &m1, "short").await.expect(200);
    let r = configure(&a, &m2, "short").await.expect(409);
    assert_eq!(r.error_code(), "alias_taken");
    configure(&b, &m2, "short").await.expect(200);
    let r = configure(&a, &m2, "model-one").await.expect(409);
    assert_eq!(r.error_code(), "alias_taken", "another model's name");
    configure(&a, &m1, "model-one").await.expect(200);

    let r = admin
        .post("/api/models", model_body("short"))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "name_taken_by_alias");
    // Renaming a model onto an alias of another model is refused too...
    let r = admin
        .put(&format!("/api/models/{m1}"), model_body("short"))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "name_taken_by_alias");
    // ...but a model may take a name that tenants use as an alias of that same model.
    admin
        .put(&format!("/api/models/{m2}"), model_body("short"))
        .await
        .expect(200);
}

async fn tenant_admins_cannot_grant_or_loosen(stack: Stack) {
    let admin = stack.admin();
    let mut body = model_body("guarded");
    body["available_to_all_tenants"] = json!(false);
    body["parameters"] = json!({
        "max_tokens": { "min": 16, "max": 2048 },
        "top_p": { "forced": 1 }
    });
    let mid = id(&create_model_with(&stack, body).await);
    let tid = tenant(&stack, "self-service", None).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&tid));
    let path = format!("/api/tenants/{tid}/models/{mid}");

    let r = ta.post(&path, json!({})).await.expect(403);
    assert_eq!(r.error_code(), "forbidden");
    ta.post(&path, json!({ "enabled": false }))
        .await
        .expect(200);
    ta.post(&path, json!({ "enabled": true })).await.expect(403);

    let loose = json!({ "max_tokens": { "min": 16, "max": 8192 } });
    admin
        .post(&path, json!({ "parameters": loose.clone() }))
        .await
        .expect(200);
    let r = ta
        .post(
            &path,
            json!({ "parameters": { "max_tokens": { "min": 1, "max": 100 } } }),
        )
        .await
        .expect(422);
    assert_eq!(
        r.json["error"]["details"]["field"],
        "parameters.max_tokens.min"
    );
    let r = ta
        .post(
            &path,
            json!({ "parameters": { "top_p": { "forced": 0.5 } } }),
        )
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "parameters.top_p");
    // What the platform admin set may be posted back unchanged, with a new alias.
    let r = ta
        .post(&path, json!({ "alias": "g", "parameters": loose }))
        .await
        .expect(200);
    assert_eq!(r.json["available"], true);
    assert_eq!(r.json["parameters"]["max_tokens"]["max"], 8192.0);
    let r = ta
        .post(
            &path,
            json!({ "parameters": { "max_tokens": { "min": 32, "max": 1024 } } }),
        )
        .await
        .expect(200);
    assert_eq!(
        r.json["parameters"]["max_tokens"]["max"], 1024.0,
        "narrower is fine"
    );
}

async fn configuration_errors_are_4xx(stack: Stack) {
    let admin = stack.admin();
    let mid = create_model(&stack, "target").await;
    let tid = tenant(&stack, "cfg-errors", None).await;
    let path = format!("/api/tenants/{tid}/models/{mid}");
    for (body, field) in [
        (json!({ "alias": "bad alias" }), "alias"),
        (
            json!({ "parameters": { "temperature": { "max": 9 } } }),
            "parameters.temperature.max",
        ),
        (
            json!({ "parameters": { "volume": {} } }),
            "parameters.volume",
        ),
    ] {
        let r = admin.post(&path, body.clone()).await.expect(422);
        assert_eq!(r.json["error"]["details"]["field"], field, "{body}");
    }
    for body in [json!({ "nickname": "x" }), json!({ "enabled": "yes" })] {
        let r = admin.post(&path, body.clone()).await.expect(422);
        assert_eq!(r.error_code(), "invalid_body", "{body}");
    }
    admin
        .post(&format!("/api/tenants/{tid}/models/mdl_missing"), json!({}))
        .await
        .expect(404);
    admin
        .get(&format!("/api/tenants/{tid}/models/mdl_missing"))
        .await
        .expect(404);
    admin
        .post(&format!("/api/tenants/tnt_missing/models/{mid}"), json!({}))
        .await
        .expect(404);
    admin
        .get("/api/tenants/tnt_missing/models")
        .await
        .expect(404);
    admin
        .get(&format!("/api/tenants/{tid}/models?colour=1"))
        .await
        .expect(400);
    stack
        .as_role(Role::TenantViewer, Some(&tid))
        .post(&path, json!({}))
        .await
        .expect(403);
    stack
        .as_role(Role::Auditor, None)
        .post(&path, json!({}))
        .await
        .expect(403);
    admin
        .post(&format!("/api/tenants/{tid}/terminate"), Value::Null)
        .await
        .expect(200);
    let r = admin.post(&path, json!({})).await.expect(409);
    assert_eq!(r.error_code(), "tenant_terminated");
    assert!(snapshot(&stack).await.tenant_models.is_empty());
}
