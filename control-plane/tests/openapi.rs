//! The OpenAPI document covers every endpoint of the seed sections built so far.

use medgate_testkit::{both_backends, Stack};

both_backends!(openapi_lists_every_built_seed_endpoint);

/// API §1, §3.1-§3.3, the history part of §3.4, §7.3 (audit and access logs) and §7.4, in
/// the seed's syntax.
const SEED: &[(&str, &str)] = &[
    ("get", "/api/tenants"),
    ("post", "/api/tenants"),
    ("get", "/api/tenants/{id}"),
    ("put", "/api/tenants/{id}"),
    ("delete", "/api/tenants/{id}"),
    ("post", "/api/tenants/{id}/activate"),
    ("post", "/api/tenants/{id}/suspend"),
    ("post", "/api/tenants/{id}/terminate"),
    ("get", "/api/tenant-plans"),
    ("post", "/api/tenant-plans"),
    ("put", "/api/tenant-plans/{id}"),
    ("delete", "/api/tenant-plans/{id}"),
    ("post", "/api/tenants/{id}/change-plan"),
    ("get", "/api/tenants/{id}/config"),
    ("put", "/api/tenants/{id}/config"),
    ("get", "/api/isolation-policies"),
    ("post", "/api/isolation-policies"),
    ("put", "/api/isolation-policies/{id}"),
    ("get", "/api/tenants/{id}/isolation"),
    ("put", "/api/tenants/{id}/isolation"),
    ("get", "/api/models"),
    ("post", "/api/models"),
    ("get", "/api/models/{id}"),
    ("put", "/api/models/{id}"),
    ("delete", "/api/models/{id}"),
    ("post", "/api/models/{id}/toggle"),
    ("get", "/api/api-keys"),
    ("post", "/api/api-keys"),
    ("delete", "/api/api-keys/{id}"),
    ("put", "/api/api-keys/{id}/rotate"),
    ("get", "/api/tenants/{tenantId}/api-keys"),
    ("get", "/api/models/{id}/parameters"),
    ("put", "/api/models/{id}/parameters"),
    ("get", "/api/tenants/{tenantId}/models"),
    ("post", "/api/tenants/{tenantId}/models/{modelId}"),
    ("get", "/api/tenants/{tenantId}/models/{modelId}"),
    ("get", "/api/inference/history"),
    ("get", "/api/inference/history/{tenantId}"),
    ("get", "/api/audit-logs"),
    ("get", "/api/audit-logs/{tenantId}"),
    ("post", "/api/audit-logs/export"),
    ("get", "/api/access-logs"),
    ("get", "/api/access-logs/{tenantId}"),
    ("get", "/api/gateway/config"),
    ("put", "/api/gateway/config"),
    ("post", "/api/gateway/reload"),
    ("get", "/api/gateway/status"),
    ("get", "/api/health"),
    ("get", "/api/routes"),
    ("post", "/api/routes"),
    ("get", "/api/routes/{id}"),
    ("put", "/api/routes/{id}"),
    ("delete", "/api/routes/{id}"),
    ("get", "/api/domains"),
    ("post", "/api/domains"),
    ("get", "/api/domains/{id}"),
    ("put", "/api/domains/{id}"),
    ("delete", "/api/domains/{id}"),
    ("post", "/api/domains/{id}/verify"),
    ("get", "/api/tenants/{tenantId}/domains"),
    ("get", "/api/templates"),
    ("post", "/api/templates"),
    ("get", "/api/templates/{id}"),
    ("put", "/api/templates/{id}"),
    ("delete", "/api/templates/{id}"),
    ("get", "/api/tenants/{tenantId}/templates"),
    ("get", "/api/templates/{id}/versions"),
    ("post", "/api/templates/{id}/versions"),
    ("get", "/api/templates/{id}/versions/{version}"),
    ("post", "/api/templates/{id}/publish"),
    ("post", "/api/templates/{id}/validate"),
    ("get", "/api/form-elements"),
    ("post", "/api/templates/{id}/sections"),
    ("put", "/api/templates/{id}/sections/{sectionId}"),
    ("delete", "/api/templates/{id}/sections/{sectionId}"),
    ("put", "/api/templates/{id}/order"),
    ("get", "/api/circuit-breakers"),
    ("post", "/api/circuit-breakers"),
    ("get", "/api/circuit-breakers/{id}"),
    ("put", "/api/circuit-breakers/{id}"),
    ("delete", "/api/circuit-breakers/{id}"),
    ("get", "/api/degradation-rules"),
    ("post", "/api/degradation-rules"),
    ("get", "/api/degradation-rules/{id}"),
    ("put", "/api/degradation-rules/{id}"),
    ("delete", "/api/degradation-rules/{id}"),
    ("get", "/api/health/services"),
    ("get", "/api/health/services/{service}"),
    ("post", "/api/health/recovery"),
    ("get", "/api/alerts"),
    ("post", "/api/alerts"),
    ("get", "/api/alerts/{id}"),
    ("put", "/api/alerts/{id}"),
    ("delete", "/api/alerts/{id}"),
    ("get", "/api/rate-limits"),
    ("post", "/api/rate-limits"),
    ("put", "/api/rate-limits/{id}"),
    ("delete", "/api/rate-limits/{id}"),
    ("get", "/api/tenants/{tenantId}/rate-limits"),
    ("get", "/api/billing/usage"),
    ("get", "/api/billing/usage/{tenantId}"),
    ("get", "/api/billing/usage/{tenantId}/daily"),
    ("get", "/api/billing/usage/{tenantId}/models"),
    ("get", "/api/billing/plans"),
    ("post", "/api/billing/plans"),
    ("put", "/api/billing/plans/{id}"),
    ("delete", "/api/billing/plans/{id}"),
    ("get", "/api/billing/rates"),
    ("put", "/api/billing/rates"),
    ("get", "/api/billing/invoices"),
    ("get", "/api/billing/invoices/{id}"),
    ("post", "/api/billing/invoices/generate"),
    ("put", "/api/billing/invoices/{id}/status"),
    ("get", "/api/billing/tenants/{tenantId}/invoices"),
    ("get", "/api/billing/overages"),
    ("post", "/api/billing/overages/settings"),
    ("get", "/api/billing/overages/settings"),
    ("post", "/api/billing/overages/notify"),
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
    ("get", "/api/tenants/{tenantId}/balance"),
    ("get", "/api/recharge/history"),
    ("get", "/api/recharge/history/{tenantId}"),
    ("post", "/api/balance/adjust"),
    ("get", "/api/balance/transactions"),
    ("post", "/api/balance/threshold"),
    ("get", "/api/balance/threshold"),
];

async fn openapi_lists_every_built_seed_endpoint(stack: Stack) {
    let doc = stack
        .anonymous()
        .get("/api/openapi.json")
        .await
        .expect(200)
        .json;
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path) in SEED {
        let op = &doc["paths"][path][method];
        assert!(
            op.is_object(),
            "{method} {path} missing from the OpenAPI document"
        );
        assert!(op["responses"].is_object(), "{method} {path} has responses");
    }
    let refs = serde_json::to_string(&doc).expect("text");
    for name in [
        "Tenant",
        "TenantPlan",
        "IsolationPolicy",
        "ErrorEnvelope",
        "AuditEntry",
        "ModelView",
        "ApiKeyView",
        "ApiKeyIssued",
        "TenantModelView",
        "InferenceRecord",
        "UsageBatch",
        "AccessLogEntry",
        "GatewayConfig",
        "GatewayStatus",
        "ReloadReport",
        "Route",
        "Domain",
    ] {
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "schema {name}"
        );
    }
    assert!(
        !refs.contains("#/$defs/"),
        "every $ref points into components"
    );
    let page = stack.anonymous().get("/api/docs").await.expect(200);
    assert!(page.text.contains("/api/openapi.json"));
}
