//! Helpers shared by the recharge-card tests.
#![allow(dead_code)]

use medgate_control_plane::Role;
use medgate_testkit::Stack;
use serde_json::{json, Value};
use sqlx::Row;

/// Creates one card as platform admin; returns (card id, plaintext code).
pub async fn card(stack: &Stack, face_value_minor: i64, currency: &str) -> (String, String) {
    let r = stack
        .admin()
        .post(
            "/api/recharge-cards",
            json!({ "face_value_minor": face_value_minor, "currency": currency }),
        )
        .await
        .expect(201);
    (
        r.json["card"]["id"].as_str().expect("id").to_owned(),
        r.json["code"].as_str().expect("code").to_owned(),
    )
}

/// Creates an active tenant with an optional currency; returns its id.
pub async fn tenant(stack: &Stack, code: &str, currency: Option<&str>) -> String {
    let admin = stack.admin();
    let mut body = json!({ "name": format!("Tenant {code}"), "code": code });
    if let Some(c) = currency {
        body["currency"] = json!(c);
    }
    let r = admin.post("/api/tenants", body).await.expect(201);
    let id = r.json["id"].as_str().expect("id").to_owned();
    admin
        .post(&format!("/api/tenants/{id}/activate"), Value::Null)
        .await
        .expect(200);
    id
}

/// The answer to a redemption.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub json: Value,
    pub retry_after: Option<u64>,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }
}

/// `POST /api/recharge` with `token`, from client address `ip` (sent as X-Forwarded-For,
/// which the control plane trusts from a loopback peer).
pub async fn redeem_as(stack: &Stack, token: &str, body: Value, ip: &str) -> Answer {
    let response = reqwest::Client::new()
        .post(format!("{}/api/recharge", stack.base_url))
        .bearer_auth(token)
        .header("x-forwarded-for", ip)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let json = response.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        json,
        retry_after,
    }
}

/// A tenant admin of `tenant` redeems `code` from `ip`.
pub async fn redeem(stack: &Stack, tenant: &str, code: &str, ip: &str) -> Answer {
    let token = stack.token(Role::TenantAdmin, Some(tenant));
    redeem_as(stack, &token, json!({ "code": code }), ip).await
}

/// The tenant's cached balance (0 without a balance row).
pub async fn balance(stack: &Stack, tenant: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT balance_minor FROM tenant_balances WHERE tenant_id = $1")
        .bind(tenant.to_owned())
        .fetch_optional(stack.state.store().reader())
        .await
        .expect("balance")
        .unwrap_or(0)
}

/// Ledger entries with this idempotency key, over all tenants.
pub async fn ledger_entries(stack: &Stack, key: &str) -> i64 {
    scalar(
        stack,
        "SELECT COUNT(*) FROM ledger_entries WHERE idempotency_key = $1",
        key,
    )
    .await
}

/// Failed attempts counted against a limiter scope (`tenant:<id>` or `ip:<addr>`).
pub async fn failures(stack: &Stack, scope: &str) -> i64 {
    scalar(
        stack,
        "SELECT COUNT(*) FROM recharge_failures WHERE scope_key = $1",
        scope,
    )
    .await
}

/// A one-parameter COUNT query.
pub async fn scalar(stack: &Stack, sql: &str, param: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .bind(param.to_owned())
        .fetch_one(stack.state.store().reader())
        .await
        .expect("count")
}

/// Runs a statement on the store (test set-up: back-dating, injecting rows).
pub async fn exec(stack: &Stack, sql: &str, params: &[&str]) -> u64 {
    let mut q = sqlx::query(sql);
    for p in params {
        q = q.bind(p.to_string());
    }
    let mut tx = stack.state.store().begin().await.expect("begin");
    let n = q.execute(&mut *tx).await.expect("exec").rows_affected();
    tx.commit().await.expect("commit");
    n
}

/// Every value of every column of every table, cast to text, with where it was found.
pub async fn every_text_value(stack: &Stack) -> Vec<(String, String)> {
    let pool = stack.state.store().reader();
    let columns = match stack.backend {
        medgate_testkit::Backend::Sqlite => {
            sqlx::query(
                "SELECT m.name AS t, p.name AS c FROM sqlite_master m \
             JOIN pragma_table_info(m.name) p WHERE m.type = 'table'",
            )
            .fetch_all(pool)
            .await
        }
        medgate_testkit::Backend::Postgres => {
            sqlx::query(
                "SELECT table_name::text AS t, column_name::text AS c \
             FROM information_schema.columns WHERE table_schema = 'public'",
            )
            .fetch_all(pool)
            .await
        }
    }
    .expect("columns");
    let columns: Vec<(String, String)> = columns.iter().map(|r| (r.get("t"), r.get("c"))).collect();
    assert!(
        columns
            .iter()
            .any(|(t, c)| t == "recharge_cards" && c == "code_hash"),
        "{columns:?}"
    );
    let mut out = Vec::new();
    for (table, column) in columns {
        let value = match stack.backend {
            // Blobs (migration checksums) are not UTF-8: compare their hex.
            medgate_testkit::Backend::Sqlite => format!(
                "CASE WHEN typeof(\"{column}\") = 'blob' THEN hex(\"{column}\") \
                 ELSE CAST(\"{column}\" AS TEXT) END"
            ),
            medgate_testkit::Backend::Postgres => format!("CAST(\"{column}\" AS TEXT)"),
        };
        let values: Vec<Option<String>> =
            sqlx::query_scalar(&format!("SELECT {value} FROM \"{table}\""))
                .fetch_all(pool)
                .await
                .expect("values");
        for value in values.into_iter().flatten() {
            out.push((format!("{table}.{column}"), value));
        }
    }
    out
}

/// Panics when any stored text contains one of `codes` in any spelling (grouped or not,
/// either case).
pub async fn assert_no_plaintext(stack: &Stack, codes: &[String]) {
    let values = every_text_value(stack).await;
    assert!(values.len() > 100, "the dump found {} values", values.len());
    let needles: Vec<String> = codes
        .iter()
        .flat_map(|c| {
            let bare = c.replace('-', "");
            // The grouped code, the bare one, and the 16 data symbols without the check.
            [
                c.to_uppercase(),
                bare.to_uppercase(),
                bare[..16].to_uppercase(),
            ]
        })
        .collect();
    for (place, value) in &values {
        let upper = value.to_uppercase();
        for needle in &needles {
            assert!(!upper.contains(needle), "plaintext code found in {place}");
        }
    }
}

/// Rows in a table.
pub async fn rows(stack: &Stack, table: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(stack.state.store().reader())
        .await
        .expect("count")
}

/// Generates a batch as platform admin; returns (batch id, codes).
pub async fn batch(stack: &Stack, count: u32, face: i64) -> (String, Vec<String>) {
    let r = stack
        .admin()
        .post(
            "/api/recharge-cards/batch",
            json!({ "count": count, "face_value_minor": face, "currency": "CNY" }),
        )
        .await
        .expect(201);
    let codes = r.json["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    (
        r.json["batch"]["id"].as_str().expect("id").to_owned(),
        codes,
    )
}
