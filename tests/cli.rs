//! The operator's interface, through the real binary: `serve --demo`, `token issue`,
//! `config check`, `audit verify` (including a tampered database), graceful SIGTERM.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_medgate");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn medgate(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("MEDGATE_JWT_SECRET")
        .output()
        .expect("medgate runs")
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `medgate serve --demo` and waits for its credentials file.
fn serve_demo(data_dir: &Path) -> (Server, Value) {
    let port = free_port();
    let proxy_port = free_port();
    let child = Command::new(BIN)
        .args(["serve", "--demo", "--data-dir"])
        .arg(data_dir)
        .args([
            "--api-listen",
            &format!("127.0.0.1:{port}"),
            "--proxy-listen",
            &format!("127.0.0.1:{proxy_port}"),
        ])
        .env_remove("MEDGATE_JWT_SECRET")
        .env_remove("MEDGATE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let server = Server(child);
    let creds_path = data_dir.join("demo-credentials.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&creds_path) {
            if let Ok(creds) = serde_json::from_str::<Value>(&text) {
                return (server, creds);
            }
        }
        assert!(Instant::now() < deadline, "demo credentials never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn get(url: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn demo_lists_the_demo_tenant_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut server, creds) = serve_demo(dir.path());
    for key in ["admin_token", "tenant_id", "tenant_admin_token", "api_url"] {
        assert!(creds[key].is_string(), "demo-credentials.json has {key}");
    }
    let api = creds["api_url"].as_str().expect("api_url");
    let (status, body) = get(
        &format!("{api}/api/tenants"),
        creds["admin_token"].as_str().expect("token"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["code"], "demo-clinic");
    assert_eq!(body["items"][0]["status"], "active");
    let (status, body) = get(
        &format!("{api}/api/tenants"),
        creds["tenant_admin_token"].as_str().expect("token"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 1);

    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    // The proxy gives in-flight requests proxy.grace_period_secs (5 s) before it stops.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.0.try_wait().expect("wait") {
            assert!(status.success(), "exits 0 after SIGTERM, got {status:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A second start reuses the data: same tenant, no duplicate.
    let (_server, creds2) = serve_demo(dir.path());
    assert_eq!(creds2["tenant_id"], creds["tenant_id"]);
}

#[tokio::test]
async fn audit_verify_names_the_tampered_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let (_server, creds) = serve_demo(dir.path());
        let api = creds["api_url"].as_str().expect("api_url");
        let client = reqwest::Client::new();
        for i in 0..3 {
            let r = client
                .post(format!("{api}/api/tenants"))
                .bearer_auth(creds["admin_token"].as_str().expect("token"))
                .json(&serde_json::json!({ "name": format!("T{i}"), "code": format!("cli-{i}") }))
                .send()
                .await
                .expect("post");
            assert_eq!(r.status().as_u16(), 201);
        }
    }
    let data_dir = dir.path().to_str().expect("utf8");
    let out = medgate(&["audit", "verify", "--data-dir", data_dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 entries verified"));

    let url = format!("sqlite://{}", dir.path().join("medgate.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&pool)
        .await
        .expect("drop trigger");
    sqlx::query("UPDATE audit_log SET resource_id = 'forged' WHERE seq = 2")
        .execute(&pool)
        .await
        .expect("tamper");
    pool.close().await;

    let out = medgate(&["audit", "verify", "--data-dir", data_dir]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("BROKEN at entry 2"), "{text}");
}

#[test]
fn token_issue_and_config_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().to_str().expect("utf8");
    let out = medgate(&[
        "token",
        "issue",
        "--role",
        "platform_admin",
        "--data-dir",
        data_dir,
    ]);
    assert!(!out.status.success(), "no secret configured: refuses");

    let out = Command::new(BIN)
        .args([
            "token",
            "issue",
            "--role",
            "tenant_admin",
            "--tenant",
            "tnt_1",
            "--ttl",
            "2h",
        ])
        .env("MEDGATE_JWT_SECRET", "0123456789abcdef0123456789abcdef")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .split('.')
            .count(),
        3,
        "prints a JWT"
    );

    let out = Command::new(BIN)
        .args(["token", "issue", "--role", "tenant_admin"])
        .env("MEDGATE_JWT_SECRET", "0123456789abcdef0123456789abcdef")
        .output()
        .expect("run");
    assert!(!out.status.success(), "tenant roles need --tenant");
    let out = medgate(&["token", "issue", "--role", "emperor"]);
    assert!(!out.status.success());

    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "api:\n  listen: 127.0.0.1:9081\n").expect("write");
    let out = medgate(&["config", "check", good.to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "api:\n  lisen: 127.0.0.1:9081\n").expect("write");
    let out = medgate(&["config", "check", bad.to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("lisen"));
    for example in [
        "config/examples/medgate.yaml",
        "config/examples/cluster.yaml",
    ] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(example);
        if path.exists() {
            let out = Command::new(BIN)
                .args(["config", "check"])
                .arg(&path)
                .output()
                .expect("run");
            assert!(
                out.status.success(),
                "{example}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
