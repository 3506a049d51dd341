//! Single recharge cards (API §5.1) on SQLite and PostgreSQL: the code is shown once, cards
//! change until redeemed, and only platform admins manage them.

mod cards_common;

use cards_common::{card, redeem, tenant};
use medgate_control_plane::billing::cards::Code;
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::{json, Value};

both_backends!(
    single_cards_show_their_code_once_and_change_until_redeemed,
    card_management_is_for_platform_admins,
    recharge_endpoints_are_in_the_openapi_document,
);

async fn single_cards_show_their_code_once_and_change_until_redeemed(stack: Stack) {
    let admin = stack.admin();
    let r = admin
        .post(
            "/api/recharge-cards",
            json!({ "face_value_minor": 5000, "currency": "CNY",
                    "expires_at": "2099-01-01T00:00:00Z" }),
        )
        .await
        .expect(201);
    let code = r.json["code"].as_str().expect("code").to_owned();
    let id = r.json["card"]["id"].as_str().expect("id").to_owned();
    assert!(Code::parse(&code).is_ok());
    assert_eq!(r.json["card"]["status"], "active");
    assert_eq!(
        r.json["card"]["code_hint"],
        code.replace('-', "")[13..].to_owned()
    );
    let got = admin
        .get(&format!("/api/recharge-cards/{id}"))
        .await
        .expect(200);
    assert!(!got.text.contains(&code) && got.json.get("code").is_none());

    // Disable, re-enable, change and clear the expiry.
    let put = |body: Value| {
        let admin = admin.clone();
        let id = id.clone();
        async move { admin.put(&format!("/api/recharge-cards/{id}"), body).await }
    };
    assert_eq!(
        put(json!({ "status": "disabled" })).await.expect(200).json["status"],
        "disabled"
    );
    let listed = admin
        .get("/api/recharge-cards?status=disabled")
        .await
        .expect(200);
    assert_eq!(listed.json["total"], 1);
    let r = put(json!({ "status": "active", "expires_at": null }))
        .await
        .expect(200);
    assert_eq!(r.json["status"], "active");
    assert_eq!(r.json["expires_at"], Value::Null);
    for bad in [
        json!({ "status": "redeemed" }),
        json!({ "status": "expired" }),
        json!({ "expires_at": "2001-01-01T00:00:00Z" }),
        json!({ "expires_at": "tomorrow" }),
        json!({}),
        json!({ "code": "x" }),
    ] {
        assert_eq!(put(bad.clone()).await.status, 422, "{bad}");
    }
    for bad in [
        json!({ "face_value_minor": 0, "currency": "CNY" }),
        json!({ "face_value_minor": 1_000_000_000_001i64, "currency": "CNY" }),
        json!({ "face_value_minor": 10, "currency": "XYZ" }),
        json!({ "face_value_minor": 10, "currency": "CNY", "expires_at": "2001-01-01T00:00:00Z" }),
        json!({ "face_value_minor": 10 }),
    ] {
        assert_eq!(
            admin.post("/api/recharge-cards", bad.clone()).await.status,
            422,
            "{bad}"
        );
    }
    assert_eq!(
        admin.get("/api/recharge-cards?status=nope").await.status,
        400
    );
    assert_eq!(
        admin.get("/api/recharge-cards/rcc_missing").await.status,
        404
    );
    assert_eq!(
        admin
            .put(
                "/api/recharge-cards/rcc_missing",
                json!({ "status": "disabled" })
            )
            .await
            .status,
        404
    );

    // Redeemed: it can no longer change or go.
    let t = tenant(&stack, "single-a", None).await;
    assert_eq!(redeem(&stack, &t, &code, "10.1.0.1").await.status, 200);
    let r = put(json!({ "status": "disabled" })).await.expect(409);
    assert_eq!(r.error_code(), "card_redeemed");
    assert_eq!(
        admin
            .delete(&format!("/api/recharge-cards/{id}"))
            .await
            .expect(409)
            .error_code(),
        "card_redeemed"
    );
    let r = admin
        .get(&format!("/api/recharge-cards/{id}"))
        .await
        .expect(200);
    assert_eq!(r.json["status"], "redeemed");
    assert_eq!(r.json["redeemed_by_tenant"], t.as_str());
    let r = admin
        .get(&format!(
            "/api/recharge-cards?status=redeemed&redeemed_by_tenant={t}"
        ))
        .await
        .expect(200);
    assert_eq!(r.json["total"], 1);

    // An unredeemed card can be deleted; its code is then unknown.
    let (other, other_code) = card(&stack, 100, "CNY").await;
    admin
        .delete(&format!("/api/recharge-cards/{other}"))
        .await
        .expect(204);
    admin
        .get(&format!("/api/recharge-cards/{other}"))
        .await
        .expect(404);
    assert_eq!(
        redeem(&stack, &t, &other_code, "10.1.0.1").await.code(),
        "invalid_code"
    );
}

async fn card_management_is_for_platform_admins(stack: Stack) {
    let t = tenant(&stack, "roles-a", None).await;
    let (id, _) = card(&stack, 100, "CNY").await;
    let body = json!({ "face_value_minor": 1, "currency": "CNY" });
    for (role, tenant) in [
        (Role::TenantAdmin, Some(t.as_str())),
        (Role::TenantViewer, Some(t.as_str())),
        (Role::Auditor, None),
    ] {
        let c = stack.as_role(role, tenant);
        assert_eq!(
            c.post("/api/recharge-cards", body.clone()).await.status,
            403
        );
        assert_eq!(
            c.post(
                "/api/recharge-cards/batch",
                json!({ "count": 1, "face_value_minor": 1, "currency": "CNY" })
            )
            .await
            .status,
            403
        );
        assert_eq!(
            c.put(
                &format!("/api/recharge-cards/{id}"),
                json!({ "status": "disabled" })
            )
            .await
            .status,
            403
        );
        assert_eq!(
            c.delete(&format!("/api/recharge-cards/{id}")).await.status,
            403
        );
        assert_eq!(
            c.post("/api/recharge-cards/export", json!({ "batch_id": "x" }))
                .await
                .status,
            403
        );
    }
    // Auditors read lists; tenant roles and tenant-bound auditors do not.
    let auditor = stack.as_role(Role::Auditor, None);
    assert_eq!(
        auditor.get("/api/recharge-cards").await.expect(200).json["total"],
        1
    );
    auditor.get("/api/recharge-cards/batches").await.expect(200);
    auditor
        .get(&format!("/api/recharge-cards/{id}"))
        .await
        .expect(200);
    for c in [
        stack.as_role(Role::TenantAdmin, Some(&t)),
        stack.as_role(Role::Auditor, Some(&t)),
    ] {
        assert_eq!(c.get("/api/recharge-cards").await.status, 403);
        assert_eq!(
            c.get(&format!("/api/recharge-cards/{id}")).await.status,
            403
        );
    }
    assert_eq!(
        stack.anonymous().get("/api/recharge-cards").await.status,
        401
    );
}

/// API §5.1-§5.3 (but the balance endpoint), in the seed's syntax.
async fn recharge_endpoints_are_in_the_openapi_document(stack: Stack) {
    let doc = stack
        .anonymous()
        .get("/api/openapi.json")
        .await
        .expect(200)
        .json;
    for (method, path) in [
        ("get", "/api/recharge-cards"),
        ("post", "/api/recharge-cards"),
        ("get", "/api/recharge-cards/{id}"),
        ("put", "/api/recharge-cards/{id}"),
        ("delete", "/api/recharge-cards/{id}"),
        ("post", "/api/recharge-cards/batch"),
        ("get", "/api/recharge-cards/batches"),
        ("get", "/api/recharge-cards/batches/{id}"),
        ("post", "/api/recharge-cards/export"),
        ("post", "/api/recharge"),
        ("get", "/api/recharge/history"),
        ("get", "/api/recharge/history/{tenantId}"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(op["responses"].is_object(), "{method} {path} has responses");
    }
    let text = doc.to_string();
    for schema in [
        "RechargeCard",
        "CardIssued",
        "BatchIssued",
        "BatchDetail",
        "Redeemed",
    ] {
        assert!(text.contains(schema), "{schema} missing");
    }
}
