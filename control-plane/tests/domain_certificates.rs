//! A custom domain's TLS certificate (API §8): upload, replace and removal; the checks of an
//! upload (PEM, matching key, covering the domain, not expired) with clear 4xx answers; the
//! private key never returned, stored sealed, and carried by the snapshot only for a verified
//! domain; and the HTTPS options of routes (`https_redirect`, targets' `ca_pem`) and model
//! upstreams (`ca_pem`). On SQLite and PostgreSQL.

mod common;

use common::{id, snapshot, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{Backend, Issued, Stack, TestCa};
use serde_json::{json, Value};
use sqlx::Row;

// Each test runs on both backends through `run` below, which points the HTTP domain check
// at a server answering every challenge with the token it is asked for.
medgate_testkit::both_backends_via_run!(
    certificates_reach_the_snapshot_only_for_verified_domains,
    certificate_input_errors_are_4xx,
    routes_and_models_take_https_options,
);

async fn run<F, Fut>(backend: Backend, name: &str, test: F)
where
    F: FnOnce(Stack) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let checker = challenge_server().await;
    let Some(stack) = Stack::start_backend_with(backend, name, |s| {
        s.api.domain_http_check_url = Some(checker);
    })
    .await
    else {
        return;
    };
    test(stack).await;
}

/// Answers `/.well-known/medgate-challenge/<token>` with `<token>`: every domain verifies.
async fn challenge_server() -> String {
    async fn serve(req: axum::extract::Request) -> String {
        req.uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().fallback(serve)).await;
    });
    url
}

async fn domain(stack: &Stack, tenant: &str, hostname: &str) -> String {
    id(&stack
        .as_role(Role::TenantAdmin, Some(tenant))
        .post(
            "/api/domains",
            json!({ "hostname": hostname, "verification_method": "http" }),
        )
        .await
        .expect(201)
        .json)
}

fn upload(cert: &Issued) -> Value {
    json!({ "certificate_pem": cert.cert_pem, "private_key_pem": cert.key_pem })
}

/// The base64 body of a PEM key, which must never appear in an answer.
fn key_body(cert: &Issued) -> String {
    cert.key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect()
}

async fn certificates_reach_the_snapshot_only_for_verified_domains(stack: Stack) {
    let ca = TestCa::new("test CA");
    let t = tenant(&stack, "cert-a", None).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&t));
    let did = domain(&stack, &t, "portal.clinic.test").await;
    let path = format!("/api/domains/{did}/certificate");
    ta.get(&path).await.expect(404);

    let first = ca.issue(&["portal.clinic.test"]);
    let r = ta.put(&path, upload(&first)).await.expect(200);
    assert!(!r.text.contains("PRIVATE KEY") && !r.text.contains(&key_body(&first)));
    assert_eq!(r.json["domain_id"], json!(did));
    assert_eq!(r.json["hostname"], "portal.clinic.test");
    assert_eq!(r.json["subject"], "CN=portal.clinic.test");
    assert_eq!(r.json["issuer"], "CN=test CA");
    assert_eq!(r.json["dns_names"], json!(["portal.clinic.test"]));
    assert_eq!(
        r.json["fingerprint_sha256"].as_str().map(str::len),
        Some(64)
    );
    assert!(r.json["not_after"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(r.json["active"], false, "the domain is not verified yet");
    let fingerprint = r.json["fingerprint_sha256"].clone();
    assert!(
        snapshot(&stack).await.domains.is_empty(),
        "an unverified domain stays out, certificate or not"
    );

    // The key is stored sealed, never as uploaded.
    let stored: String = sqlx::query("SELECT key_sealed FROM domain_certificates")
        .fetch_one(stack.state.store().reader())
        .await
        .expect("row")
        .try_get("key_sealed")
        .expect("column");
    assert!(!stored.contains(&key_body(&first)) && !stored.contains("PRIVATE KEY"));

    ta.post(&format!("/api/domains/{did}/verify"), Value::Null)
        .await
        .expect(200);
    let s = snapshot(&stack).await;
    let cert = s.domains[0].certificate.as_ref().expect("certificate");
    assert_eq!(cert.chain_pem, first.cert_pem);
    assert_eq!(
        cert.key_pem, first.key_pem,
        "the proxy gets the key unsealed"
    );
    let viewer = stack.as_role(Role::TenantViewer, Some(&t));
    let r = viewer.get(&path).await.expect(200);
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["fingerprint_sha256"], fingerprint);
    assert!(!r.text.contains(&key_body(&first)));
    viewer.put(&path, upload(&first)).await.expect(403);

    // Replacing bumps the version; the snapshot carries the new certificate.
    let second = ca.issue(&["portal.clinic.test", "*.portal.clinic.test"]);
    let version = s.version;
    let r = ta.put(&path, upload(&second)).await.expect(200);
    assert_ne!(r.json["fingerprint_sha256"], fingerprint);
    let s = snapshot(&stack).await;
    assert!(s.version > version);
    let cert = s.domains[0].certificate.as_ref().expect("certificate");
    assert_eq!(cert.chain_pem, second.cert_pem);

    ta.delete(&path).await.expect(204);
    ta.get(&path).await.expect(404);
    ta.delete(&path).await.expect(404);
    let s = snapshot(&stack).await;
    assert_eq!(s.domains.len(), 1, "the domain stays");
    assert!(s.domains[0].certificate.is_none());

    // A deleted domain takes its certificate along.
    ta.put(&path, upload(&second)).await.expect(200);
    ta.delete(&format!("/api/domains/{did}")).await.expect(204);
    let rows: i64 = sqlx::query("SELECT COUNT(*) AS n FROM domain_certificates")
        .fetch_one(stack.state.store().reader())
        .await
        .expect("count")
        .try_get("n")
        .expect("column");
    assert_eq!(rows, 0);

    let audit = stack
        .admin()
        .get("/api/audit-logs?page_size=500")
        .await
        .expect(200);
    assert!(audit.text.contains("domains.put_certificate"));
    assert!(audit.text.contains("domains.delete_certificate"));
    assert!(!audit.text.contains(&key_body(&first)) && !audit.text.contains(&key_body(&second)));
}

async fn certificate_input_errors_are_4xx(stack: Stack) {
    let ca = TestCa::new("test CA");
    let a = tenant(&stack, "cert-in-a", None).await;
    let b = tenant(&stack, "cert-in-b", None).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&a));
    let did = domain(&stack, &a, "his.clinic.test").await;
    let path = format!("/api/domains/{did}/certificate");
    let good = ca.issue(&["his.clinic.test"]);
    let field_error = |r: &medgate_testkit::Reply| {
        (
            r.json["error"]["details"]["field"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            r.json["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };

    let cases = [
        (
            json!({ "certificate_pem": "not a certificate", "private_key_pem": good.key_pem }),
            "certificate_pem",
            "no PEM certificate",
        ),
        (
            json!({ "certificate_pem": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                    "private_key_pem": good.key_pem }),
            "certificate_pem",
            "not a readable X.509",
        ),
        (
            json!({ "certificate_pem": good.cert_pem, "private_key_pem": "garbage" }),
            "private_key_pem",
            "not a PEM private key",
        ),
        (
            json!({ "certificate_pem": good.cert_pem, "private_key_pem": ca.issue(&["his.clinic.test"]).key_pem }),
            "private_key_pem",
            "does not match",
        ),
        (
            upload(&ca.issue(&["other.clinic.test", "*.his.clinic.test"])),
            "certificate_pem",
            "does not cover his.clinic.test",
        ),
        (
            upload(&ca.issue_expired(&["his.clinic.test"])),
            "certificate_pem",
            "expired at 2021-01-01",
        ),
        (
            json!({ "certificate_pem": "x".repeat(70_000), "private_key_pem": good.key_pem }),
            "certificate_pem",
            "larger than",
        ),
    ];
    for (body, field, message) in cases {
        let r = ta.put(&path, body).await.expect(422);
        let (f, m) = field_error(&r);
        assert_eq!(f, field, "{m}");
        assert!(m.contains(message), "{m}");
    }
    for body in [
        json!({ "certificate_pem": good.cert_pem }),
        json!({ "certificate_pem": good.cert_pem, "private_key_pem": good.key_pem, "x": 1 }),
        json!("text"),
    ] {
        let r = ta.put(&path, body).await.expect(422);
        assert_eq!(r.error_code(), "invalid_body");
    }
    ta.get(&path).await.expect(404);

    // A wildcard certificate covers the domain; another tenant cannot see or touch it.
    ta.put(&path, upload(&ca.issue(&["*.clinic.test"])))
        .await
        .expect(200);
    let tb = stack.as_role(Role::TenantAdmin, Some(&b));
    tb.get(&path).await.expect(404);
    tb.put(&path, upload(&good)).await.expect(404);
    tb.delete(&path).await.expect(404);
    ta.put("/api/domains/dom_missing/certificate", upload(&good))
        .await
        .expect(404);
    stack
        .as_role(Role::Auditor, None)
        .put(&path, upload(&good))
        .await
        .expect(403);
}

async fn routes_and_models_take_https_options(stack: Stack) {
    let ca = TestCa::new("upstream CA");
    let admin = stack.admin();
    let route = |target: Value| {
        json!({ "name": "secure", "match": { "path_prefix": "/secure" },
                "targets": [target], "https_redirect": true })
    };
    for (target, message) in [
        (
            json!({ "url": "http://10.0.0.1:80", "ca_pem": ca.pem() }),
            "https://",
        ),
        (
            json!({ "url": "https://10.0.0.1", "ca_pem": "not pem" }),
            "no PEM certificate",
        ),
    ] {
        let r = admin.post("/api/routes", route(target)).await.expect(422);
        assert_eq!(r.json["error"]["details"]["field"], "targets[0].ca_pem");
        assert!(r.text.contains(message), "{}", r.text);
    }
    let r = admin
        .post(
            "/api/routes",
            route(json!({ "url": "https://10.0.0.1", "ca_pem": ca.pem() })),
        )
        .await
        .expect(201);
    assert_eq!(r.json["https_redirect"], true);
    let s = snapshot(&stack).await;
    assert!(s.routes[0].https_redirect);
    assert_eq!(
        s.routes[0].targets[0].ca_pem.as_deref(),
        Some(ca.pem().as_str())
    );

    let model = |ca_pem: Value| {
        json!({ "name": "secure-model",
                "upstreams": [{ "url": "https://llm.internal.test/v1", "ca_pem": ca_pem }] })
    };
    let r = admin
        .post("/api/models", model(json!("garbage")))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "upstreams[0].ca_pem");
    let r = admin
        .post("/api/models", model(json!(ca.pem())))
        .await
        .expect(201);
    assert_eq!(r.json["upstreams"][0]["ca_pem"], json!(ca.pem()));
    let s = snapshot(&stack).await;
    assert_eq!(
        s.models[0].upstreams[0].ca_pem.as_deref(),
        Some(ca.pem().as_str())
    );
}
