//! Export (API §5.2) and storage (B8) on SQLite and PostgreSQL: export gives only the
//! requested batch, once, audited; no column of any table ever holds a code.

mod cards_common;

use std::collections::HashSet;

use cards_common::{assert_no_plaintext, batch, card, every_text_value, redeem, scalar, tenant};
use medgate_control_plane::billing::cards::Code;
use medgate_testkit::{both_backends, Stack};
use serde_json::json;

both_backends!(
    export_is_once_audited_and_only_the_requested_batch,
    the_store_holds_no_plaintext_code,
);

async fn export_is_once_audited_and_only_the_requested_batch(stack: Stack) {
    let (wanted, wanted_codes) = batch(&stack, 40, 100).await;
    let (_other, other_codes) = batch(&stack, 30, 200).await;
    let t = tenant(&stack, "export-a", None).await;
    assert_eq!(
        redeem(&stack, &t, &wanted_codes[3], "10.2.0.1")
            .await
            .status,
        200
    );

    let admin = stack.admin();
    let r = admin
        .post("/api/recharge-cards/export", json!({ "batch_id": wanted }))
        .await
        .expect(200);
    assert!(r.headers["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/csv"));
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(
        lines[0],
        "card_id,batch_id,batch_index,code,code_hint,face_value_minor,currency,status,expires_at"
    );
    assert_eq!(lines.len(), 41);
    let exported: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(3).expect("code"))
        .collect();
    assert_eq!(
        exported,
        wanted_codes.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert_eq!(lines[4].split(',').nth(7), Some("redeemed"));
    assert!(lines[1..]
        .iter()
        .all(|l| l.split(',').nth(1) == Some(wanted.as_str())));
    assert!(other_codes.iter().all(|c| !r.text.contains(c.as_str())));

    // Once: the seed is gone, a second export is refused.
    let again = admin
        .post("/api/recharge-cards/export", json!({ "batch_id": wanted }))
        .await
        .expect(409);
    assert_eq!(again.error_code(), "already_exported");
    assert_eq!(
        scalar(&stack, "SELECT COUNT(*) FROM card_batches WHERE id = $1 AND seed_sealed IS NULL AND export_count = 1", &wanted).await,
        1
    );
    let detail = admin
        .get(&format!("/api/recharge-cards/batches/{wanted}"))
        .await
        .expect(200);
    assert_eq!(
        (
            detail.json["exports_left"].as_i64(),
            detail.json["counts"]["redeemed"].as_i64()
        ),
        (Some(0), Some(1))
    );
    admin
        .post(
            "/api/recharge-cards/export",
            json!({ "batch_id": "bat_missing" }),
        )
        .await
        .expect(404);
    admin
        .post("/api/recharge-cards/export", json!({}))
        .await
        .expect(422);

    // Audited, success and failure, against the batch.
    let audit = admin
        .get(&format!(
            "/api/audit-logs?action=recharge_cards.export&resource_id={wanted}"
        ))
        .await
        .expect(200);
    let outcomes: HashSet<&str> = audit.json["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["outcome"].as_str().expect("outcome"))
        .collect();
    assert_eq!(audit.json["total"], 2);
    assert_eq!(outcomes, HashSet::from(["success", "failure"]));
    assert!(!audit.text.contains(&wanted_codes[0]));
}

/// B8: after single cards, a batch, redemptions, failures and an export, no column of any
/// table holds a code in any spelling.
async fn the_store_holds_no_plaintext_code(stack: Stack) {
    let (_, single) = card(&stack, 700, "CNY").await;
    let (batch_id, mut codes) = batch(&stack, 25, 300).await;
    let t = tenant(&stack, "b8", None).await;
    assert_eq!(redeem(&stack, &t, &codes[0], "10.3.0.1").await.status, 200);
    assert_eq!(redeem(&stack, &t, &codes[0], "10.3.0.1").await.status, 422);
    assert_eq!(
        redeem(&stack, &t, &single.to_lowercase(), "10.3.0.1")
            .await
            .status,
        200
    );
    let unknown = Code::random().display();
    assert_eq!(redeem(&stack, &t, &unknown, "10.3.0.1").await.status, 422);
    stack
        .admin()
        .post(
            "/api/recharge-cards/export",
            json!({ "batch_id": batch_id }),
        )
        .await
        .expect(200);
    // The dump does reach the card rows: the hints are there, the codes are not.
    let values = every_text_value(&stack).await;
    let hint = single.replace('-', "")[13..].to_owned();
    assert!(values
        .iter()
        .any(|(place, v)| place == "recharge_cards.code_hint" && *v == hint));
    codes.push(single);
    codes.push(unknown);
    assert_no_plaintext(&stack, &codes).await;
}
