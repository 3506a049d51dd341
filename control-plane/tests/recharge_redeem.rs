//! Redemption (API §5.3) on SQLite and PostgreSQL: exactly once under concurrency (B1), one
//! answer for every unusable code (B6) and the brute-force limit (B9).

mod cards_common;

use cards_common::{balance, card, exec, failures, ledger_entries, redeem, redeem_as, tenant};
use medgate_control_plane::billing::cards::limiter::MAX_FAILURES;
use medgate_control_plane::billing::cards::Code;
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Stack};
use serde_json::json;

both_backends!(
    one_card_redeemed_by_a_hundred_tenants_at_once_credits_once,
    one_card_redeemed_a_hundred_times_by_one_tenant_credits_once,
    unusable_codes_all_get_the_same_answer_and_count_as_failures,
    failures_past_the_limit_are_refused_even_for_a_valid_code,
);

/// The books balance: every cached balance equals its ledger sum.
async fn assert_books_balance(stack: &Stack) {
    let drift: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM tenant_balances b WHERE b.balance_minor <> \
         COALESCE((SELECT SUM(l.amount_minor) FROM ledger_entries l \
                   WHERE l.tenant_id = b.tenant_id), 0)",
    )
    .fetch_one(stack.state.store().reader())
    .await
    .expect("drift");
    assert_eq!(drift, 0);
}

/// B1, different tenants (each from its own address, so no limit is involved).
async fn one_card_redeemed_by_a_hundred_tenants_at_once_credits_once(stack: Stack) {
    let mut tenants = Vec::new();
    for i in 0..100 {
        tenants.push(tenant(&stack, &format!("b1-{i}"), None).await);
    }
    let (card_id, code) = card(&stack, 1000, "CNY").await;
    let stack = std::sync::Arc::new(stack);
    let mut tasks = tokio::task::JoinSet::new();
    for (i, t) in tenants.iter().enumerate() {
        let (stack, t, code) = (stack.clone(), t.clone(), code.clone());
        tasks.spawn(async move {
            let answer = redeem(
                &stack,
                &t,
                &code,
                &format!("10.9.{}.{}", i / 200, i % 200 + 1),
            )
            .await;
            (t, answer)
        });
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    while let Some(done) = tasks.join_next().await {
        let (t, answer) = done.expect("task");
        match answer.status {
            200 => {
                assert_eq!(answer.json["amount_minor"], 1000);
                assert_eq!(answer.json["balance_minor"], 1000);
                winners.push(t);
            }
            422 => {
                assert_eq!(answer.code(), "invalid_code", "{:?}", answer.json);
                losers += 1;
            }
            other => panic!("unexpected {other}: {:?}", answer.json),
        }
    }
    assert_eq!((winners.len(), losers), (1, 99));
    for t in &tenants {
        let expected = if *t == winners[0] { 1000 } else { 0 };
        assert_eq!(balance(&stack, t).await, expected, "{t}");
    }
    assert_eq!(
        ledger_entries(&stack, &format!("redeem:{card_id}")).await,
        1
    );
    assert_books_balance(&stack).await;
}

/// B1, one tenant: the card credits once; after the success the tenant's failures reach the
/// limit, and every later attempt is a 429.
async fn one_card_redeemed_a_hundred_times_by_one_tenant_credits_once(stack: Stack) {
    let t = tenant(&stack, "b1-same", None).await;
    let (card_id, code) = card(&stack, 2500, "CNY").await;
    let stack = std::sync::Arc::new(stack);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (stack, t, code) = (stack.clone(), t.clone(), code.clone());
        tasks.spawn(async move { redeem(&stack, &t, &code, &format!("10.8.0.{}", i + 1)).await });
    }
    let (mut ok, mut invalid, mut limited) = (0, 0, 0);
    while let Some(done) = tasks.join_next().await {
        let answer = done.expect("task");
        match (answer.status, answer.code()) {
            (200, _) => ok += 1,
            (422, "invalid_code") => invalid += 1,
            (429, "rate_limited") => limited += 1,
            other => panic!("unexpected {other:?}: {:?}", answer.json),
        }
    }
    assert_eq!((ok, invalid, limited), (1, MAX_FAILURES, 99 - MAX_FAILURES));
    assert_eq!(balance(&stack, &t).await, 2500);
    assert_eq!(
        ledger_entries(&stack, &format!("redeem:{card_id}")).await,
        1
    );
    assert_books_balance(&stack).await;
}

/// B6: unknown, used, expired and disabled codes share one answer; the balance does not
/// move and each counts as a failure. Typos and currency mismatches do not count.
async fn unusable_codes_all_get_the_same_answer_and_count_as_failures(stack: Stack) {
    let t = tenant(&stack, "b6", None).await;
    let other = tenant(&stack, "b6-other", None).await;
    let admin = stack.admin();
    let (_, used) = card(&stack, 100, "CNY").await;
    assert_eq!(redeem(&stack, &other, &used, "10.6.0.1").await.status, 200);
    let (expired_id, expired) = card(&stack, 100, "CNY").await;
    exec(
        &stack,
        "UPDATE recharge_cards SET expires_at = '2020-01-01T00:00:00.000000Z' WHERE id = $1",
        &[&expired_id],
    )
    .await;
    let listed = admin
        .get("/api/recharge-cards?status=expired")
        .await
        .expect(200);
    assert_eq!(listed.json["items"][0]["id"], expired_id.as_str());
    let (disabled_id, disabled) = card(&stack, 100, "CNY").await;
    admin
        .put(
            &format!("/api/recharge-cards/{disabled_id}"),
            json!({ "status": "disabled" }),
        )
        .await
        .expect(200);
    let unknown = Code::random().display();

    let mut answers = Vec::new();
    for code in [&unknown, &used, &expired, &disabled] {
        let a = redeem(&stack, &t, code, "10.6.0.2").await;
        assert_eq!(a.status, 422);
        answers.push(a.json["error"]["message"].clone());
        assert_eq!(a.code(), "invalid_code");
    }
    assert!(answers.windows(2).all(|w| w[0] == w[1]), "{answers:?}");
    assert_eq!(balance(&stack, &t).await, 0);
    assert_eq!(failures(&stack, &format!("tenant:{t}")).await, 4);
    assert_eq!(failures(&stack, "ip:10.6.0.2").await, 4);

    // A typo is caught by the check symbol before any lookup and counts for nothing.
    let mut typo = disabled.clone().into_bytes();
    typo[0] = if typo[0] == b'A' { b'B' } else { b'A' };
    let a = redeem(
        &stack,
        &t,
        &String::from_utf8(typo).expect("ascii"),
        "10.6.0.2",
    )
    .await;
    assert_eq!((a.status, a.code()), (422, "malformed_code"));
    assert_eq!(
        redeem(&stack, &t, "not a code", "10.6.0.2").await.code(),
        "malformed_code"
    );
    // A card in another currency is refused and stays active.
    let (usd_id, usd) = card(&stack, 100, "USD").await;
    let a = redeem(&stack, &t, &usd, "10.6.0.2").await;
    assert_eq!((a.status, a.code()), (422, "currency_mismatch"));
    let usd_card = admin
        .get(&format!("/api/recharge-cards/{usd_id}"))
        .await
        .expect(200);
    assert_eq!(usd_card.json["status"], "active");
    let dollars = tenant(&stack, "b6-usd", Some("USD")).await;
    assert_eq!(redeem(&stack, &dollars, &usd, "10.6.0.3").await.status, 200);
    assert_eq!(failures(&stack, &format!("tenant:{t}")).await, 4);

    // Re-enabled, the disabled card redeems (lower case, no hyphens).
    admin
        .put(
            &format!("/api/recharge-cards/{disabled_id}"),
            json!({ "status": "active" }),
        )
        .await
        .expect(200);
    let a = redeem(
        &stack,
        &t,
        &disabled.replace('-', "").to_lowercase(),
        "10.6.0.2",
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(a.json["balance_minor"], 100);
    assert_eq!(
        a.json["code_hint"],
        disabled.replace('-', "")[13..].to_owned()
    );

    // A platform admin names the tenant; a tenant admin cannot name another one.
    let (_, code) = card(&stack, 40, "CNY").await;
    let admin_token = stack.token(Role::PlatformAdmin, None);
    let a = redeem_as(&stack, &admin_token, json!({ "code": code }), "10.6.0.4").await;
    assert_eq!((a.status, a.code()), (422, "validation_failed"));
    let own = stack.token(Role::TenantAdmin, Some(&t));
    let a = redeem_as(
        &stack,
        &own,
        json!({ "code": code, "tenant_id": other }),
        "10.6.0.4",
    )
    .await;
    assert_eq!(a.status, 404);
    let viewer = stack.token(Role::TenantViewer, Some(&t));
    assert_eq!(
        redeem_as(&stack, &viewer, json!({ "code": code }), "10.6.0.4")
            .await
            .status,
        403
    );
    let a = redeem_as(
        &stack,
        &admin_token,
        json!({ "code": code, "tenant_id": "tnt_nope" }),
        "10.6.0.4",
    )
    .await;
    assert_eq!(a.status, 404);
    let a = redeem_as(
        &stack,
        &admin_token,
        json!({ "code": code, "tenant_id": t }),
        "10.6.0.4",
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(balance(&stack, &t).await, 140);

    // Every attempt is audited against the tenant, without the code.
    let audit = admin
        .get(&format!(
            "/api/audit-logs?action=recharge.redeem&tenant_id={t}"
        ))
        .await
        .expect(200);
    assert!(
        audit.json["total"].as_u64().expect("total") >= 9,
        "{}",
        audit.text
    );
    for code in [&unknown, &used, &expired, &disabled] {
        assert!(!audit.text.contains(code.as_str()));
    }
}

/// B9: per tenant and per address, the limit holds even for a valid code, says when to
/// retry, and lifts once the failures leave the window.
async fn failures_past_the_limit_are_refused_even_for_a_valid_code(stack: Stack) {
    let t = tenant(&stack, "b9", None).await;
    let (card_id, valid) = card(&stack, 500, "CNY").await;
    for i in 0..MAX_FAILURES {
        let a = redeem(
            &stack,
            &t,
            &Code::random().display(),
            &format!("10.7.1.{}", i + 1),
        )
        .await;
        assert_eq!(a.code(), "invalid_code");
    }
    let a = redeem(&stack, &t, &valid, "10.7.2.1").await;
    assert_eq!((a.status, a.code()), (429, "rate_limited"));
    let retry = a.retry_after.expect("Retry-After");
    assert!((1..=900).contains(&retry), "{retry}");
    let shown = stack
        .admin()
        .get(&format!("/api/recharge-cards/{card_id}"))
        .await
        .expect(200);
    assert_eq!(shown.json["status"], "active");
    assert_eq!(failures(&stack, &format!("tenant:{t}")).await, MAX_FAILURES);

    // Per address: failures spread over tenants still close the address.
    let mut spread = Vec::new();
    for i in 0..MAX_FAILURES {
        spread.push(tenant(&stack, &format!("b9-{i}"), None).await);
    }
    for s in &spread {
        assert_eq!(
            redeem(&stack, s, &Code::random().display(), "10.7.3.3")
                .await
                .code(),
            "invalid_code"
        );
    }
    let fresh = tenant(&stack, "b9-fresh", None).await;
    let (_, other_valid) = card(&stack, 70, "CNY").await;
    let a = redeem(&stack, &fresh, &other_valid, "10.7.3.3").await;
    assert_eq!((a.status, a.retry_after.is_some()), (429, true));
    assert_eq!(
        redeem(&stack, &fresh, &other_valid, "10.7.3.4")
            .await
            .status,
        200
    );

    // The window passes (failures back-dated by 16 minutes): the tenant may try again.
    let old = "2000-01-01T00:00:00.000000Z";
    exec(
        &stack,
        "UPDATE recharge_failures SET attempted_at = $1 WHERE scope_key = $2",
        &[old, &format!("tenant:{t}")],
    )
    .await;
    let a = redeem(&stack, &t, &valid, "10.7.2.1").await;
    assert_eq!(a.status, 200, "{:?}", a.json);
    assert_eq!(balance(&stack, &t).await, 500);
    assert_eq!(failures(&stack, &format!("tenant:{t}")).await, 0, "pruned");
}
