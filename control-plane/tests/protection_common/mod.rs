//! Bodies and assertions shared by the traffic-protection tests.
#![allow(dead_code)]

use medgate_testkit::{Client, Reply};
use serde_json::{json, Value};

pub fn rate_limit(model: &str) -> Value {
    json!({ "scope": "model", "target": model, "metric": "requests", "window": "minute", "limit": 100 })
}

pub fn breaker(model: &str) -> Value {
    json!({ "target": { "kind": "model", "name": model } })
}

/// Asserts a 400 `invalid_rule` naming `field`.
#[track_caller]
pub fn assert_rule_error(r: &Reply, field: &str) {
    assert_eq!(r.status, 400, "{field}: {}", r.text);
    assert_eq!(r.error_code(), "invalid_rule", "{}", r.text);
    assert_eq!(r.json["error"]["details"]["field"], field, "{}", r.text);
}

pub async fn audited(admin: &Client, actions: &[&str]) {
    let audit = admin.get("/api/audit-logs?page_size=500").await.expect(200);
    for action in actions {
        assert!(audit.text.contains(action), "{action} audited");
    }
}
