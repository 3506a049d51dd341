//! Custom domains (API §8): claim, verification by DNS TXT record (against a tiny DNS
//! responder on 127.0.0.1) or HTTP token (against a local web server), the snapshot carrying
//! verified domains only, tenant scoping and roles, on SQLite and PostgreSQL.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::{id, snapshot, tenant};
use medgate_control_plane::Role;
use medgate_testkit::{Backend, Stack};
use serde_json::{json, Value};

// Each test runs on both backends through `run` below, with the checkers started.
medgate_testkit::both_backends_via_run!(
    dns_txt_verification_admits_the_domain_to_the_snapshot,
    http_verification_checks_the_served_token,
    domain_input_errors_are_4xx,
    domains_of_other_tenants_are_not_found,
    deleting_a_domain_takes_its_routes_out_of_the_snapshot,
);

/// What the checkers answer, shared with the test.
#[derive(Clone, Default)]
struct Answers {
    /// TXT record name (lowercase, no trailing dot) -> values.
    txt: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// Host -> body served at any `/.well-known/medgate-challenge/` path.
    http: Arc<Mutex<HashMap<String, String>>>,
}

impl Answers {
    fn set_txt(&self, name: &str, values: &[&str]) {
        self.txt.lock().expect("lock").insert(
            name.to_owned(),
            values.iter().map(|v| (*v).to_owned()).collect(),
        );
    }
    fn set_http(&self, host: &str, body: &str) {
        self.http
            .lock()
            .expect("lock")
            .insert(host.to_owned(), body.to_owned());
    }
}

struct Fixture {
    stack: Stack,
    answers: Answers,
}

async fn run<F, Fut>(backend: Backend, name: &str, test: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let answers = Answers::default();
    let dns = dns_responder(answers.clone()).await;
    let http = http_server(answers.clone()).await;
    let Some(stack) = Stack::start_backend_with(backend, name, |s| {
        s.api.dns_resolver = Some(dns);
        s.api.domain_http_check_url = Some(http);
    })
    .await
    else {
        return;
    };
    test(Fixture { stack, answers }).await;
}

/// A DNS server answering TXT questions from `answers` (NXDOMAIN otherwise), over UDP.
async fn dns_responder(answers: Answers) -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            if let Some(reply) = dns_reply(&buf[..n], &answers) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    addr
}

/// The answer to one query: the question echoed, then one TXT record per value.
fn dns_reply(query: &[u8], answers: &Answers) -> Option<Vec<u8>> {
    let mut pos = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(pos)?);
        pos += 1;
        if len == 0 {
            break;
        }
        labels.push(String::from_utf8_lossy(query.get(pos..pos + len)?).to_lowercase());
        pos += len;
    }
    let qtype = u16::from_be_bytes([*query.get(pos)?, *query.get(pos + 1)?]);
    let question = query.get(12..pos + 4)?;
    let values = answers
        .txt
        .lock()
        .ok()?
        .get(&labels.join("."))
        .cloned()
        .filter(|_| qtype == 16);
    let mut reply = Vec::with_capacity(512);
    reply.extend_from_slice(&query[..2]); // id
    let rcode = if values.is_some() { 0 } else { 3 };
    reply.extend_from_slice(&[0x81, 0x80 | rcode]); // response, recursion desired/available
    let count = values.as_ref().map_or(0, Vec::len) as u16;
    reply.extend_from_slice(&[0, 1]);
    reply.extend_from_slice(&count.to_be_bytes());
    reply.extend_from_slice(&[0, 0, 0, 0]);
    reply.extend_from_slice(question);
    for value in values.unwrap_or_default() {
        reply.extend_from_slice(&[0xC0, 0x0C, 0, 16, 0, 1, 0, 0, 0, 60]);
        let bytes = value.as_bytes();
        reply.extend_from_slice(&(bytes.len() as u16 + 1).to_be_bytes());
        reply.push(bytes.len() as u8);
        reply.extend_from_slice(bytes);
    }
    Some(reply)
}

/// A web server answering the HTTP check from `answers`, by Host.
async fn http_server(answers: Answers) -> String {
    use axum::extract::{Request, State};
    use axum::http::StatusCode;
    async fn serve(State(answers): State<Answers>, req: Request) -> (StatusCode, String) {
        let host = req
            .headers()
            .get("host")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !req
            .uri()
            .path()
            .starts_with("/.well-known/medgate-challenge/")
        {
            return (StatusCode::NOT_FOUND, String::new());
        }
        match answers.http.lock().expect("lock").get(&host) {
            Some(body) => (StatusCode::OK, body.clone()),
            None => (StatusCode::NOT_FOUND, String::new()),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let app = axum::Router::new().fallback(serve).with_state(answers);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

async fn create(stack: &Stack, tenant: &str, body: Value) -> Value {
    stack
        .as_role(Role::TenantAdmin, Some(tenant))
        .post("/api/domains", body)
        .await
        .expect(201)
        .json
}

async fn verify(stack: &Stack, tenant: &str, id: &str) -> Value {
    stack
        .as_role(Role::TenantAdmin, Some(tenant))
        .post(&format!("/api/domains/{id}/verify"), Value::Null)
        .await
        .expect(200)
        .json
}

async fn dns_txt_verification_admits_the_domain_to_the_snapshot(f: Fixture) {
    let stack = &f.stack;
    let t = tenant(stack, "dns-a", None).await;
    let d = create(stack, &t, json!({ "hostname": "Portal.Clinic-A.Example." })).await;
    let did = id(&d);
    assert_eq!(d["hostname"], "portal.clinic-a.example", "normalized");
    assert_eq!(d["status"], "pending");
    assert_eq!(d["tenant_id"], json!(t));
    let v = &d["verification"];
    assert_eq!(v["method"], "dns_txt");
    assert_eq!(
        v["record_name"],
        "_medgate-challenge.portal.clinic-a.example"
    );
    let token = v["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 32);
    assert_eq!(
        v["expected_value"],
        json!(format!("medgate-verification={token}"))
    );
    assert!(
        snapshot(stack).await.domains.is_empty(),
        "pending: not routed"
    );

    let r = verify(stack, &t, &did).await;
    assert_eq!(r["status"], "failed");
    assert!(
        r["last_error"]
            .as_str()
            .expect("error")
            .contains("no TXT record"),
        "{r}"
    );
    assert!(r["last_checked_at"].is_string());
    let name = "_medgate-challenge.portal.clinic-a.example";
    f.answers
        .set_txt(name, &["v=spf1 -all", "medgate-verification=wrong"]);
    let r = verify(stack, &t, &did).await;
    assert_eq!(r["status"], "failed");
    assert!(r["last_error"]
        .as_str()
        .expect("error")
        .contains("do not include"));

    f.answers.set_txt(
        name,
        &["v=spf1 -all", &format!("medgate-verification={token}")],
    );
    let r = verify(stack, &t, &did).await;
    assert_eq!(r["status"], "verified", "{r}");
    assert!(r["verified_at"].is_string());
    assert!(r["last_error"].is_null());
    let s = snapshot(stack).await;
    assert_eq!(s.domains.len(), 1);
    assert_eq!(s.domains[0].hostname, "portal.clinic-a.example");
    assert_eq!(s.domains[0].tenant_id, t);

    // A tenant route on the verified domain reaches the data plane.
    let route = json!({ "name": "portal", "match": { "hosts": ["portal.clinic-a.example"] },
                        "targets": [{ "url": "http://10.1.1.1:8080" }] });
    stack
        .as_role(Role::TenantAdmin, Some(&t))
        .post("/api/routes", route)
        .await
        .expect(201);
    let s = snapshot(stack).await;
    assert_eq!(s.routes.len(), 1);
    assert_eq!(s.routes[0].tenant_id.as_deref(), Some(t.as_str()));

    let list = stack
        .as_role(Role::TenantViewer, Some(&t))
        .get(&format!("/api/tenants/{t}/domains?status=verified"))
        .await
        .expect(200);
    assert_eq!(list.json["total"], 1);

    // The record is gone: a re-check withdraws the domain, and its route with it.
    f.answers.set_txt(name, &[]);
    let r = verify(stack, &t, &did).await;
    assert_eq!(r["status"], "failed");
    let s = snapshot(stack).await;
    assert!(s.domains.is_empty() && s.routes.is_empty());
    let audit = stack
        .admin()
        .get("/api/audit-logs?page_size=500")
        .await
        .expect(200);
    assert!(audit.text.contains("domains.verify"));
}

async fn http_verification_checks_the_served_token(f: Fixture) {
    let stack = &f.stack;
    let t = tenant(stack, "http-a", None).await;
    let d = create(
        stack,
        &t,
        json!({ "hostname": "his.clinic.example", "verification_method": "http" }),
    )
    .await;
    let did = id(&d);
    let token = d["verification"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_eq!(
        d["verification"]["http_url"],
        json!(format!(
            "http://his.clinic.example/.well-known/medgate-challenge/{token}"
        ))
    );
    let r = verify(stack, &t, &did).await;
    assert_eq!(r["status"], "failed");
    assert!(
        r["last_error"].as_str().expect("error").contains("404"),
        "{r}"
    );
    f.answers.set_http("his.clinic.example", "not-the-token");
    assert_eq!(verify(stack, &t, &did).await["status"], "failed");
    f.answers
        .set_http("his.clinic.example", &format!("{token}\n"));
    assert_eq!(verify(stack, &t, &did).await["status"], "verified");
    assert_eq!(snapshot(stack).await.domains.len(), 1);

    // Switching the method keeps a verified domain verified.
    let r = stack
        .as_role(Role::TenantAdmin, Some(&t))
        .put(
            &format!("/api/domains/{did}"),
            json!({ "verification_method": "dns_txt" }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["status"], "verified");
    assert_eq!(r.json["verification"]["method"], "dns_txt");
}

async fn domain_input_errors_are_4xx(f: Fixture) {
    let stack = &f.stack;
    let a = tenant(stack, "in-a", None).await;
    let b = tenant(stack, "in-b", None).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&a));
    for hostname in [
        "localhost",
        "10.0.0.1",
        "bad_name.example",
        "-x.example",
        "a..example",
        "",
    ] {
        let r = ta
            .post("/api/domains", json!({ "hostname": hostname }))
            .await
            .expect(422);
        assert_eq!(
            r.json["error"]["details"]["field"], "hostname",
            "{hostname}"
        );
    }
    for body in [
        json!({ "hostname": "x.example", "verification_method": "email" }),
        json!({ "hostname": "x.example", "status": "verified" }),
        json!({}),
    ] {
        let r = ta.post("/api/domains", body.clone()).await.expect(422);
        assert_eq!(r.error_code(), "invalid_body", "{body}");
    }
    let r = stack
        .admin()
        .post("/api/domains", json!({ "hostname": "x.example" }))
        .await
        .expect(422);
    assert_eq!(r.json["error"]["details"]["field"], "tenant_id");
    stack
        .admin()
        .post(
            "/api/domains",
            json!({ "hostname": "x.example", "tenant_id": "tnt_missing" }),
        )
        .await
        .expect(404);

    let d = create(stack, &a, json!({ "hostname": "taken.example" })).await;
    let r = stack
        .as_role(Role::TenantAdmin, Some(&b))
        .post("/api/domains", json!({ "hostname": "TAKEN.example" }))
        .await
        .expect(409);
    assert_eq!(r.error_code(), "already_exists");

    // The host name and tenant are the domain's identity: an update cannot change them.
    let did = id(&d);
    for body in [
        json!({ "hostname": "other.example" }),
        json!({ "tenant_id": b }),
    ] {
        let r = ta
            .put(&format!("/api/domains/{did}"), body.clone())
            .await
            .expect(422);
        assert_eq!(r.error_code(), "invalid_body", "{body}");
    }
    f.answers
        .set_txt("_medgate-challenge.taken.example", &["nope"]);
    assert_eq!(verify(stack, &a, &did).await["status"], "failed");
    let r = ta
        .put(
            &format!("/api/domains/{did}"),
            json!({ "verification_method": "http" }),
        )
        .await
        .expect(200);
    assert_eq!(r.json["status"], "pending", "a new method starts over");
    assert!(r.json["last_error"].is_null());
}

async fn domains_of_other_tenants_are_not_found(f: Fixture) {
    let stack = &f.stack;
    let a = tenant(stack, "sc-a", None).await;
    let b = tenant(stack, "sc-b", None).await;
    let did = id(&create(stack, &a, json!({ "hostname": "a.clinic.example" })).await);
    for role in [Role::TenantAdmin, Role::TenantViewer] {
        let c = stack.as_role(role, Some(&b));
        let r = c.get(&format!("/api/domains/{did}")).await;
        assert_eq!(r.status, 404, "get as {role:?}: {}", r.text);
        let r = c.get(&format!("/api/tenants/{a}/domains")).await;
        assert_eq!(r.status, 404, "tenant list as {role:?}: {}", r.text);
    }
    let tb = stack.as_role(Role::TenantAdmin, Some(&b));
    tb.put(&format!("/api/domains/{did}"), json!({}))
        .await
        .expect(404);
    tb.post(&format!("/api/domains/{did}/verify"), Value::Null)
        .await
        .expect(404);
    tb.delete(&format!("/api/domains/{did}")).await.expect(404);
    tb.post(
        "/api/domains",
        json!({ "hostname": "b.example", "tenant_id": a }),
    )
    .await
    .expect(404);
    assert_eq!(tb.get("/api/domains").await.expect(200).json["total"], 0);
    tb.get(&format!("/api/domains?tenant_id={a}"))
        .await
        .expect(404);

    // Viewers and auditors read but never write: 403, whoever owns the domain.
    for role in [Role::TenantViewer, Role::Auditor] {
        let c = stack.as_role(role, Some(&a));
        c.post(&format!("/api/domains/{did}/verify"), Value::Null)
            .await
            .expect(403);
        c.delete(&format!("/api/domains/{did}")).await.expect(403);
        c.post("/api/domains", json!({ "hostname": "v.example" }))
            .await
            .expect(403);
    }
    stack
        .as_role(Role::TenantViewer, Some(&a))
        .get(&format!("/api/domains/{did}"))
        .await
        .expect(200);
    let r = stack
        .admin()
        .get(&format!("/api/tenants/{a}/domains"))
        .await
        .expect(200);
    assert_eq!(r.json["total"], 1);
    stack
        .admin()
        .get("/api/tenants/tnt_missing/domains")
        .await
        .expect(404);
    stack.anonymous().get("/api/domains").await.expect(401);
}

async fn deleting_a_domain_takes_its_routes_out_of_the_snapshot(f: Fixture) {
    let stack = &f.stack;
    let t = tenant(stack, "del-a", None).await;
    let ta = stack.as_role(Role::TenantAdmin, Some(&t));
    let d = create(stack, &t, json!({ "hostname": "gone.example" })).await;
    let did = id(&d);
    let token = d["verification"]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    f.answers.set_txt(
        "_medgate-challenge.gone.example",
        &[&format!("medgate-verification={token}")],
    );
    assert_eq!(verify(stack, &t, &did).await["status"], "verified");
    ta.post(
        "/api/routes",
        json!({ "name": "r", "match": { "hosts": ["*.gone.example"] },
                "targets": [{ "url": "http://10.1.1.1" }] }),
    )
    .await
    .expect(201);
    assert_eq!(snapshot(stack).await.routes.len(), 1);
    ta.delete(&format!("/api/domains/{did}")).await.expect(204);
    ta.get(&format!("/api/domains/{did}")).await.expect(404);
    let s = snapshot(stack).await;
    assert!(s.domains.is_empty());
    assert!(
        s.routes.is_empty(),
        "no verified domain covers the route's hosts"
    );
    assert_eq!(
        ta.get("/api/routes").await.expect(200).json["total"],
        1,
        "the route stays stored"
    );
}
