//! The monthly invoice run (a cluster-wide singleton job): once a month is over in a
//! tenant's time zone its invoice is drafted, once; tenants never activated are skipped, and
//! an existing invoice of the month (an operator's draft) is left alone.

mod common;

use chrono::{Duration, Utc};
use medgate_control_plane::billing::invoices::schedule;
use medgate_testkit::{both_backends, Stack};
use serde_json::json;

both_backends!(last_month_is_drafted_once_per_tenant);

async fn last_month_is_drafted_once_per_tenant(stack: Stack) {
    let active = common::tenant(&stack, "monthly-a", None).await;
    let admin = stack.admin();
    let pending = admin
        .post(
            "/api/tenants",
            json!({"name": "Pending", "code": "monthly-p"}),
        )
        .await
        .expect(201);
    let pending = common::id(&pending.json);

    // Two months from now, "last month" is next month: the active tenant existed all of it.
    let later = Utc::now() + Duration::days(62);
    let report = schedule::draft_last_month(&stack.state, later)
        .await
        .expect("run");
    assert_eq!(report.drafted, 1, "{report:?}");
    assert_eq!(report.failed, 0);
    let again = schedule::draft_last_month(&stack.state, later)
        .await
        .expect("second run");
    assert_eq!((again.drafted, again.existing), (0, 1), "drafted once");

    let listed = admin
        .get(&format!("/api/billing/invoices?tenant_id={active}"))
        .await
        .expect(200);
    let items = listed.json["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["status"], "draft");
    let none = admin
        .get(&format!("/api/billing/invoices?tenant_id={pending}"))
        .await
        .expect(200);
    assert_eq!(
        none.json["items"].as_array().map(Vec::len),
        Some(0),
        "never activated"
    );
}
