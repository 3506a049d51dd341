//! The OpenAPI document covers every endpoint of the seed sections built so far.

use medgate_testkit::{both_backends, Stack};

both_backends!(openapi_lists_every_built_seed_endpoint);

/// API §1 and the audit part of §7.3, in the seed's syntax.
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
    ("get", "/api/audit-logs"),
    ("get", "/api/audit-logs/{tenantId}"),
    ("post", "/api/audit-logs/export"),
    ("get", "/api/health"),
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
