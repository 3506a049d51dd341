//! Cluster mode with real processes (issue 7): two `medgate control-plane` and two
//! `medgate proxy` on one PostgreSQL database and one Redis, all on 127.0.0.1.
//!
//! * A change made through one control plane reaches both proxies (the figure is printed).
//! * SIGKILL of a control plane interrupts nothing: inference through both proxies keeps
//!   answering during and after the kill, the proxy that used it moves to the other, a later
//!   change still reaches both proxies, and usage keeps being recorded.
//! * The singleton jobs' leases are held by one control plane.
//!
//! Needs PostgreSQL and Redis; skipped when either is unreachable unless
//! `MEDGATE_REQUIRE_POSTGRES=1` / `MEDGATE_REQUIRE_REDIS=1`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use medgate_control_plane::{demo, Role};
use medgate_testkit::{MockUpstream, Stack, TEST_JWT_SECRET};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_medgate");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn redis_url() -> Option<String> {
    let url =
        std::env::var("MEDGATE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    if std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], 6379).into(), Duration::from_secs(1))
        .is_ok()
    {
        return Some(url);
    }
    assert!(
        std::env::var("MEDGATE_REQUIRE_REDIS").as_deref() != Ok("1"),
        "Redis is required (MEDGATE_REQUIRE_REDIS=1) but unreachable"
    );
    eprintln!("skipped: Redis unreachable");
    None
}

/// A child process killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], env: &[(&str, &str)], data_dir: &std::path::Path) -> Process {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("MEDGATE_DATABASE_URL")
        .env_remove("MEDGATE_CONTROL_PLANE_URL")
        .env("MEDGATE_JWT_SECRET", TEST_JWT_SECRET)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    Process(cmd.spawn().expect("spawn medgate"))
}

async fn wait_for(url: &str, what: &str) -> Value {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(url).send().await {
            if r.status().is_success() {
                return r.json().await.unwrap_or(Value::Null);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what} never became ready ({url})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn snapshot_version(proxy: &str) -> u64 {
    wait_for(&format!("{proxy}/readyz"), "proxy").await["snapshot_version"]
        .as_u64()
        .expect("version")
}

async fn chat(http: &reqwest::Client, proxy: &str, key: &str) -> u16 {
    http.post(format!("{proxy}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({
            "model": demo::DEMO_MODEL,
            "max_tokens": 8,
            "messages": [{"role": "user", "content": "hello"}]
        }))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Creates an API key through control plane `cp`; waits until both proxies accept it and
/// returns how long that took.
async fn new_key_reaches_both(
    http: &reqwest::Client,
    cp: &str,
    admin: &str,
    tenant: &str,
    proxies: &[&str],
) -> Duration {
    let created: Value = http
        .post(format!("{cp}/api/api-keys"))
        .bearer_auth(admin)
        .json(&json!({"tenant_id": tenant, "name": format!("k{}", free_port())}))
        .send()
        .await
        .expect("create key")
        .json()
        .await
        .expect("json");
    let key = created["key"].as_str().expect("plaintext key").to_owned();
    let start = Instant::now();
    for proxy in proxies {
        loop {
            if chat(http, proxy, &key).await == 200 {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "the key never reached {proxy}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    start.elapsed()
}

async fn usage_rows(stack: &Stack) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM usage_events")
        .fetch_one(stack.state.store().reader())
        .await
        .expect("count usage")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_control_planes_and_two_proxies_survive_losing_a_control_plane() {
    let Some(redis) = redis_url() else { return };
    let Some(stack) = Stack::start_postgres_or_skip("cluster").await else {
        return;
    };
    let upstream = MockUpstream::start().await;
    let creds = demo::seed(&stack.state, Duration::from_secs(3600))
        .await
        .expect("seed");
    let key = demo::seed_inference(&stack.state, &creds.tenant_id, &upstream.base_url())
        .await
        .expect("seed inference");
    let admin = stack
        .keys
        .issue("ops", Role::PlatformAdmin, None, Duration::from_secs(3600))
        .expect("token");
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().expect("dir")).collect();

    let (cp1_port, cp2_port) = (free_port(), free_port());
    let (cp1, cp2) = (
        format!("http://127.0.0.1:{cp1_port}"),
        format!("http://127.0.0.1:{cp2_port}"),
    );
    let cp_env = [
        ("MEDGATE_DATABASE_URL", stack.database_url.as_str()),
        ("MEDGATE_REDIS_URL", redis.as_str()),
    ];
    let mut cp1_process = Some(spawn(
        &[
            "control-plane",
            "--api-listen",
            &format!("127.0.0.1:{cp1_port}"),
        ],
        &cp_env,
        dirs[0].path(),
    ));
    let _cp2_process = spawn(
        &[
            "control-plane",
            "--api-listen",
            &format!("127.0.0.1:{cp2_port}"),
        ],
        &cp_env,
        dirs[1].path(),
    );
    wait_for(&format!("{cp1}/api/health/ready"), "control plane 1").await;
    wait_for(&format!("{cp2}/api/health/ready"), "control plane 2").await;

    // Proxy 1 uses control plane 1 first, proxy 2 control plane 2.
    let (p1_port, p2_port) = (free_port(), free_port());
    let (p1, p2) = (
        format!("http://127.0.0.1:{p1_port}"),
        format!("http://127.0.0.1:{p2_port}"),
    );
    let p1_planes = format!("{cp1},{cp2}");
    let p2_planes = format!("{cp2},{cp1}");
    let _p1_process = spawn(
        &["proxy", "--proxy-listen", &format!("127.0.0.1:{p1_port}")],
        &[
            ("MEDGATE_CONTROL_PLANE_URL", p1_planes.as_str()),
            ("MEDGATE_REDIS_URL", redis.as_str()),
        ],
        dirs[2].path(),
    );
    let _p2_process = spawn(
        &["proxy", "--proxy-listen", &format!("127.0.0.1:{p2_port}")],
        &[
            ("MEDGATE_CONTROL_PLANE_URL", p2_planes.as_str()),
            ("MEDGATE_REDIS_URL", redis.as_str()),
        ],
        dirs[3].path(),
    );
    snapshot_version(&p1).await;
    snapshot_version(&p2).await;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    assert_eq!(chat(&http, &p1, &key).await, 200);
    assert_eq!(chat(&http, &p2, &key).await, 200);

    // A change through control plane 1 reaches both proxies.
    let took = new_key_reaches_both(&http, &cp1, &admin, &creds.tenant_id, &[&p1, &p2]).await;
    eprintln!(
        "cluster: a key created through control plane 1 served by both proxies after {took:?}"
    );

    // Singleton jobs: both control planes see the same single holder per lease.
    let view1: Value = http
        .get(format!("{cp1}/api/cluster"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("view")
        .json()
        .await
        .expect("json");
    let view2: Value = http
        .get(format!("{cp2}/api/cluster"))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("view")
        .json()
        .await
        .expect("json");
    assert_eq!(view1["store"], "postgres");
    assert_ne!(view1["instance"], view2["instance"]);
    assert_eq!(view1["leases"], view2["leases"], "one shared lease table");

    // Kill control plane 1 while traffic flows through both proxies.
    let usage_before = usage_rows(&stack).await;
    let traffic = {
        let (http, key, p1, p2) = (http.clone(), key.clone(), p1.clone(), p2.clone());
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut sent = 0;
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(3) {
                for proxy in [&p1, &p2] {
                    let status = chat(&http, proxy, &key).await;
                    sent += 1;
                    if status != 200 {
                        failures.push((proxy.clone(), status));
                    }
                }
                // Under the demo plan's 600 requests per minute, shared by both proxies.
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            (sent, failures)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(cp1_process.take()); // SIGKILL
    let (sent, failures) = traffic.await.expect("traffic");
    assert!(
        failures.is_empty(),
        "requests failed while a control plane died: {failures:?}"
    );
    eprintln!("cluster: {sent} requests through both proxies across the kill, none failed");

    // Proxy 1 moved to control plane 2: a change through it reaches both proxies.
    let took = new_key_reaches_both(&http, &cp2, &admin, &creds.tenant_id, &[&p1, &p2]).await;
    eprintln!("cluster: after the kill, a key created through control plane 2 reached both proxies after {took:?}");

    // And the usage of the requests after the kill is recorded (through control plane 2).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let recorded = usage_rows(&stack).await - usage_before;
        if recorded >= i64::from(sent) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {recorded} of {sent} usage events recorded after the kill"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
