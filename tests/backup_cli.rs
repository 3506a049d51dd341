//! `medgate backup now` and `medgate backup restore`, through the real binary: an online
//! backup while the server runs, a restore refused while it runs, then restored once it is
//! stopped, and the original data found again (SQLite; PostgreSQL with pg_dump/pg_restore).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use medgate_testkit::Stack;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_medgate");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Runs medgate with `args` (and `env`), without a terminal.
async fn medgate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env_remove("MEDGATE_JWT_SECRET")
        .env_remove("MEDGATE_DATABASE_URL")
        .env("MEDGATE_LOG", "warn")
        .stdin(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().await.expect("medgate runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The backup path `backup now` printed (its last line of output).
fn printed_path(out: &Output) -> PathBuf {
    assert!(out.status.success(), "backup now: {}", stderr(out));
    let text = stdout(out);
    PathBuf::from(text.lines().last().expect("a path").trim())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `medgate serve --demo` on `data_dir` and waits until it answers.
async fn serve_demo(data_dir: &Path) -> (Server, Value) {
    let creds_path = data_dir.join("demo-credentials.json");
    let _ = std::fs::remove_file(&creds_path);
    let child = Command::new(BIN)
        .args(["serve", "--demo", "--data-dir"])
        .arg(data_dir)
        .args([
            "--api-listen",
            &format!("127.0.0.1:{}", free_port()),
            "--proxy-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env_remove("MEDGATE_JWT_SECRET")
        .env_remove("MEDGATE_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&creds_path) {
            if let Ok(creds) = serde_json::from_str::<Value>(&text) {
                return (server, creds);
            }
        }
        assert!(Instant::now() < deadline, "demo credentials never appeared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn call(
    creds: &Value,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let api = creds["api_url"].as_str().expect("api_url");
    let mut request = reqwest::Client::new()
        .request(method, format!("{api}{path}"))
        .bearer_auth(creds["admin_token"].as_str().expect("token"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let r = request.send().await.expect("request");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn create_tenant(creds: &Value, code: &str) -> String {
    let (status, body) = call(
        creds,
        reqwest::Method::POST,
        "/api/tenants",
        Some(json!({ "name": format!("Tenant {code}"), "code": code })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

async fn tenant_ids(db: &Path) -> Vec<String> {
    let url = format!("sqlite://{}?mode=ro", db.display());
    let pool = sqlx::SqlitePool::connect(&url).await.expect("open db");
    let ids = sqlx::query_scalar("SELECT id FROM resources WHERE kind = 'tenant'")
        .fetch_all(&pool)
        .await
        .expect("tenants");
    pool.close().await;
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backup_now_and_restore_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir = dir.path().join("data");
    let backups = dir.path().join("backups");
    let dd = data_dir.to_str().expect("utf8");
    let (server, creds) = serve_demo(&data_dir).await;
    let kept = create_tenant(&creds, "kept").await;

    // Online: the server keeps running (and writing) while the backup is taken.
    let out = medgate(
        &[
            "backup",
            "now",
            "--data-dir",
            dd,
            "--dir",
            backups.to_str().expect("utf8"),
        ],
        &[],
    )
    .await;
    let file = printed_path(&out);
    assert_eq!(file.parent(), Some(backups.as_path()));
    let name = file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("medgate-") && name.ends_with(".sqlite"),
        "{name}"
    );
    let later = create_tenant(&creds, "later").await;
    let (status, runs) = call(
        &creds,
        reqwest::Method::GET,
        "/api/settings/backup/runs",
        None,
    )
    .await;
    assert_eq!(status, 200, "{runs}");
    assert_eq!(
        runs["items"][0]["kind"], "cli",
        "CLI runs are in the history: {runs}"
    );
    assert_eq!(runs["items"][0]["file_name"], name.as_str());

    // Not while the server has the database open.
    let file_arg = file.to_str().expect("utf8");
    let out = medgate(
        &["backup", "restore", file_arg, "--yes", "--data-dir", dd],
        &[],
    )
    .await;
    assert!(!out.status.success(), "restore under a running server");
    assert!(stderr(&out).contains("in use"), "{}", stderr(&out));
    drop(server);

    // Without --yes and without a terminal to ask on: refused.
    let out = medgate(&["backup", "restore", file_arg, "--data-dir", dd], &[]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    // Not a backup: refused, the database untouched.
    let junk = dir.path().join("junk.sqlite");
    std::fs::write(&junk, "not a database").expect("write");
    let out = medgate(
        &[
            "backup",
            "restore",
            junk.to_str().expect("utf8"),
            "--yes",
            "--data-dir",
            dd,
        ],
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not an SQLite database"),
        "{}",
        stderr(&out)
    );
    let out = medgate(
        &[
            "backup",
            "restore",
            "/nonexistent/medgate.sqlite",
            "--yes",
            "--data-dir",
            dd,
        ],
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no backup file"), "{}", stderr(&out));

    let out = medgate(
        &["backup", "restore", file_arg, "--yes", "--data-dir", dd],
        &[],
    )
    .await;
    assert!(out.status.success(), "restore: {}", stderr(&out));
    assert!(stdout(&out).contains("kept as"), "{}", stdout(&out));

    let db = data_dir.join("medgate.db");
    let ids = tenant_ids(&db).await;
    assert!(ids.contains(&kept), "the backed-up tenant is back: {ids:?}");
    assert!(!ids.contains(&later), "the later tenant is gone: {ids:?}");
    let previous: Vec<PathBuf> = std::fs::read_dir(&data_dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().contains("medgate.db.before-restore-"))
        .collect();
    assert_eq!(previous.len(), 1, "the replaced database is kept");
    assert!(tenant_ids(&previous[0]).await.contains(&later));

    // The restored database is whole: its audit chain verifies and medgate serves it.
    let out = medgate(&["audit", "verify", "--data-dir", dd], &[]).await;
    assert!(out.status.success(), "{}", stdout(&out));
    let (_server, creds) = serve_demo(&data_dir).await;
    let (status, _) = call(
        &creds,
        reqwest::Method::GET,
        &format!("/api/tenants/{kept}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &creds,
        reqwest::Method::GET,
        &format!("/api/tenants/{later}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_now_without_a_database_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = medgate(
        &[
            "backup",
            "now",
            "--data-dir",
            dir.path().to_str().expect("utf8"),
        ],
        &[],
    )
    .await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no database"), "{}", stderr(&out));
}

fn pg_tools_available() -> bool {
    ["pg_dump", "pg_restore"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backup_now_and_restore_round_trip() {
    let test = "postgres_backup_now_and_restore_round_trip";
    if !pg_tools_available() {
        assert!(
            std::env::var("MEDGATE_REQUIRE_POSTGRES").map_or(true, |v| v != "1"),
            "pg_dump and pg_restore are required with MEDGATE_REQUIRE_POSTGRES=1"
        );
        eprintln!("SKIP {test}: pg_dump/pg_restore not installed");
        return;
    }
    // A fresh database of its own (dropped with the stack).
    let Some(mut stack) = Stack::start_postgres_or_skip(test).await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let dd = dir.path().join("data");
    let dd = dd.to_str().expect("utf8");
    let backups = dir.path().join("backups");
    let database_url = stack.database_url.clone();
    let env = [("MEDGATE_DATABASE_URL", database_url.as_str())];
    let admin = stack.admin();
    let kept = stack.create_active_tenant("pg-kept").await["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let out = medgate(
        &[
            "backup",
            "now",
            "--data-dir",
            dd,
            "--dir",
            backups.to_str().expect("utf8"),
        ],
        &env,
    )
    .await;
    let file = printed_path(&out);
    assert!(
        file.to_string_lossy().ends_with(".dump"),
        "{}",
        file.display()
    );
    assert!(std::fs::read(&file).expect("read").starts_with(b"PGDMP"));
    let later = stack.create_active_tenant("pg-later").await["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let restore = |file: PathBuf| async move {
        medgate(
            &[
                "backup",
                "restore",
                file.to_str().expect("utf8"),
                "--yes",
                "--data-dir",
                dd,
            ],
            &env,
        )
        .await
    };

    // While a control plane serves the database, a restore is refused and changes nothing.
    let out = restore(file.clone()).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("in use by"), "{}", stderr(&out));
    admin
        .get(&format!("/api/tenants/{later}"))
        .await
        .expect(200);
    stack.stop_serving().await;

    // A dump that is not ours is refused before anything changes.
    let junk = dir.path().join("junk.dump");
    std::fs::write(&junk, "PGDMP but not really").expect("write");
    let out = restore(junk).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("cannot be read"), "{}", stderr(&out));
    assert!(pg_has_row(&stack, &later).await);

    let out = restore(file).await;
    assert!(out.status.success(), "restore: {}", stderr(&out));
    assert!(stdout(&out).contains("kept as"), "{}", stdout(&out));
    let kept_dumps = std::fs::read_dir(&backups)
        .expect("read dir")
        .filter(|e| {
            e.as_ref().is_ok_and(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("medgate-before-restore-")
            })
        })
        .count();
    assert_eq!(kept_dumps, 1, "the replaced database is kept as a dump");
    assert!(pg_has_row(&stack, &kept).await);
    assert!(!pg_has_row(&stack, &later).await);
}

/// Whether the stack's PostgreSQL database holds resource `id`.
async fn pg_has_row(stack: &Stack, id: &str) -> bool {
    let pool = sqlx::PgPool::connect(&stack.database_url)
        .await
        .expect("connect");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM resources WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("query");
    pool.close().await;
    n == 1
}
