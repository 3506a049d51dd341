//! Recharge history (API §5.3) on SQLite and PostgreSQL: platform admins and auditors see
//! every tenant, tenant roles their own only (another tenant is a 404).

mod cards_common;

use cards_common::{card, redeem, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};

both_backends!(recharge_history_is_scoped_to_the_caller);

async fn recharge_history_is_scoped_to_the_caller(stack: Stack) {
    let a = tenant(&stack, "hist-a", None).await;
    let b = tenant(&stack, "hist-b", None).await;
    for (t, face) in [(&a, 100), (&a, 200), (&b, 300)] {
        let (_, code) = card(&stack, face, "CNY").await;
        assert_eq!(redeem(&stack, t, &code, "10.5.0.1").await.status, 200);
    }
    let admin = stack.admin();
    let all = admin.get("/api/recharge/history").await.expect(200);
    assert_eq!(all.json["total"], 3);
    let first = &all.json["items"][0];
    assert_eq!(
        (first["tenant_id"].as_str(), first["amount_minor"].as_i64()),
        (Some(b.as_str()), Some(300))
    );
    assert_eq!(first["code_hint"].as_str().map(str::len), Some(4));
    assert!(first["card_id"]
        .as_str()
        .is_some_and(|c| c.starts_with("rcc_")));
    assert_eq!(
        admin
            .get(&format!("/api/recharge/history?tenant_id={a}"))
            .await
            .expect(200)
            .json["total"],
        2
    );
    assert_eq!(
        admin
            .get(&format!("/api/recharge/history/{a}"))
            .await
            .expect(200)
            .json["total"],
        2
    );
    assert_eq!(
        admin
            .get("/api/recharge/history?from=2099-01-01T00:00:00Z")
            .await
            .expect(200)
            .json["total"],
        0
    );
    assert_eq!(
        admin
            .get("/api/recharge/history?to=2000-01-01T00:00:00Z")
            .await
            .expect(200)
            .json["total"],
        0
    );
    assert_eq!(
        admin
            .get("/api/recharge/history?page_size=1&page=3")
            .await
            .expect(200)
            .json["items"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        admin
            .get("/api/recharge/history?from=yesterday")
            .await
            .status,
        422
    );
    assert_eq!(
        admin.get("/api/recharge/history/tnt_nope").await.status,
        404
    );
    let auditor = stack.as_role(Role::Auditor, None);
    assert_eq!(
        auditor.get("/api/recharge/history").await.expect(200).json["total"],
        3
    );

    for role in [Role::TenantAdmin, Role::TenantViewer] {
        let c = stack.as_role(role, Some(&a));
        let own = c.get("/api/recharge/history").await.expect(200);
        assert_eq!(own.json["total"], 2);
        assert!(own.json["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["tenant_id"] == a.as_str()));
        assert_eq!(
            c.get(&format!("/api/recharge/history/{a}"))
                .await
                .expect(200)
                .json["total"],
            2
        );
        assert_eq!(
            c.get(&format!("/api/recharge/history/{b}")).await.status,
            404
        );
        assert_eq!(
            c.get(&format!("/api/recharge/history?tenant_id={b}"))
                .await
                .status,
            404
        );
    }
}
