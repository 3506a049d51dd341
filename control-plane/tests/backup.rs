//! Backups (API §9, backup settings): settings validation (4xx, never 500), running a backup
//! now, the runs history (failures included), retention (only our oldest files go), and the
//! scheduler's slots (one run per slot, retries, a claimed slot is not run twice).

mod common;

use std::path::{Path, PathBuf};

use chrono::{TimeDelta, Utc};
use medgate_control_plane::backup::{self, BackupError, Job, Tick, Trigger};
use medgate_control_plane::Role;
use medgate_testkit::{both_backends, Backend, Stack};
use reqwest::Method;
use serde_json::{json, Value};

both_backends!(
    settings_round_trip_and_validation,
    run_now_writes_a_backup_and_lists_it,
    failed_runs_are_recorded,
    retention_deletes_only_our_oldest_files,
    scheduler_runs_each_slot_once,
);

const PATH: &str = "/api/settings/backup";

/// False (after saying why) when this PostgreSQL stack cannot back up for want of pg_dump;
/// a failure when PostgreSQL is required.
fn can_back_up(stack: &Stack, test: &str) -> bool {
    if stack.backend == Backend::Sqlite {
        return true;
    }
    let found = std::process::Command::new("pg_dump")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("MEDGATE_REQUIRE_POSTGRES").map_or(true, |v| v != "1"),
            "pg_dump is required with MEDGATE_REQUIRE_POSTGRES=1 (install postgresql-client)"
        );
        eprintln!("SKIP postgres::{test}: pg_dump not installed");
    }
    found
}

fn ext(stack: &Stack) -> &'static str {
    match stack.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "dump",
    }
}

fn dir_in(stack: &Stack, name: &str) -> PathBuf {
    stack.data_dir.path().join(name)
}

fn text(p: &Path) -> String {
    p.to_str().expect("utf8").to_owned()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    names.sort();
    names
}

async fn put(stack: &Stack, body: Value) -> Value {
    stack.admin().put(PATH, body).await.expect(200).json
}

async fn settings_round_trip_and_validation(stack: Stack) {
    let admin = stack.admin();
    let got = admin.get(PATH).await.expect(200).json;
    assert_eq!(got["enabled"], false);
    assert_eq!(got["interval_hours"], 24);
    assert_eq!(got["at"], "02:00");
    assert_eq!(got["directory"], Value::Null);
    assert_eq!(got["retention_count"], 7);
    assert_eq!(got["pg_dump_path"], Value::Null);
    assert_eq!(got["backend"], ext(&stack).replace("dump", "postgres"));
    assert_eq!(
        got["effective_directory"],
        text(&dir_in(&stack, "backups")),
        "the default directory is <data_dir>/backups"
    );
    assert_eq!(got["next_run_at"], Value::Null, "disabled");
    assert_eq!(got["last_run"], Value::Null);

    let dir = dir_in(&stack, "nested/backups");
    let updated = put(
        &stack,
        json!({ "interval_hours": 6, "at": "03:15", "directory": text(&dir), "retention_count": 3 }),
    )
    .await;
    assert!(dir.is_dir(), "the directory is created on PUT");
    assert_eq!(updated["interval_hours"], 6);
    assert_eq!(updated["directory"], text(&dir));
    assert_eq!(updated["effective_directory"], text(&dir));
    // Omitted fields keep their value.
    let updated = put(&stack, json!({ "enabled": true })).await;
    assert_eq!(updated["enabled"], true);
    assert_eq!(updated["at"], "03:15");
    assert_eq!(updated["retention_count"], 3);
    assert!(updated["next_run_at"].is_string(), "{updated}");
    let settings_now = |mut v: Value| {
        // `next_run_at` moves with the clock while the slot is not covered.
        v.as_object_mut().expect("object").remove("next_run_at");
        v
    };
    let before = settings_now(admin.get(PATH).await.expect(200).json);

    let blocker = dir_in(&stack, "a-file");
    std::fs::write(&blocker, "not a directory").expect("write");
    let bad: Vec<(Value, &str)> = vec![
        (json!({ "interval_hours": 5 }), "interval_hours"),
        (json!({ "interval_hours": 0 }), "interval_hours"),
        (json!({ "interval_hours": 336 }), "interval_hours"),
        (json!({ "at": "24:00" }), "at"),
        (json!({ "at": "2:30" }), "at"),
        (json!({ "at": "02:30:00" }), "at"),
        (json!({ "retention_count": 0 }), "retention_count"),
        (json!({ "retention_count": 366 }), "retention_count"),
        (json!({ "directory": "relative/backups" }), "directory"),
        (json!({ "directory": "" }), "directory"),
        (json!({ "directory": "/tmp/with\u{0}nul" }), "directory"),
        (
            json!({ "directory": text(&blocker.join("sub")) }),
            "directory",
        ),
        (json!({ "directory": text(&blocker) }), "directory"),
        (json!({ "pg_dump_path": "pg_dump" }), "pg_dump_path"),
        (
            json!({ "pg_dump_path": "/nonexistent/bin/pg_dump" }),
            "pg_dump_path",
        ),
        (json!({ "pg_dump_path": text(&blocker) }), "pg_dump_path"),
        (json!({ "pg_dump_path": "/bin/sh" }), "pg_dump_path"),
        (
            json!({ "pg_dump_path": text(&blocker.join("pg_dump")) }),
            "pg_dump_path",
        ),
    ];
    for (body, field) in bad {
        let r = admin.put(PATH, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.error_code(), "validation_failed", "{body}: {}", r.text);
        assert_eq!(
            r.json["error"]["details"]["field"]
                .as_str()
                .map(|f| f.starts_with(field)),
            Some(true),
            "{body}: {}",
            r.text
        );
    }
    for body in [
        json!({ "retention_count": -1 }),
        json!({ "retention_count": "seven" }),
        json!({ "interval_hours": 4294967296u64 }),
        json!({ "enabled": "yes" }),
        json!({ "schedule": "daily" }),
        json!([]),
    ] {
        let r = admin.put(PATH, body.clone()).await;
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert_eq!(r.error_code(), "invalid_body", "{body}");
    }
    let r = admin
        .raw(
            Method::PUT,
            PATH,
            "application/json",
            b"{\"enabled\":".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = admin.get(&format!("{PATH}/runs?status=done")).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = admin.get(&format!("{PATH}/runs?page_size=0")).await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = admin.get(&format!("{PATH}/runs?page=x")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        settings_now(admin.get(PATH).await.expect(200).json),
        before,
        "refused changes change nothing"
    );

    // Platform admins only.
    let tenant = common::tenant(&stack, "bk-tenant", None).await;
    for client in [
        stack.as_role(Role::TenantAdmin, Some(&tenant)),
        stack.as_role(Role::TenantViewer, Some(&tenant)),
        stack.as_role(Role::Auditor, None),
    ] {
        assert_eq!(client.get(PATH).await.status, 403);
        assert_eq!(
            client.put(PATH, json!({ "enabled": false })).await.status,
            403
        );
        assert_eq!(
            client
                .post(&format!("{PATH}/run"), Value::Null)
                .await
                .status,
            403
        );
        assert_eq!(client.get(&format!("{PATH}/runs")).await.status, 403);
    }
    assert_eq!(stack.anonymous().get(PATH).await.status, 401);

    // The change is audited.
    let audit = admin
        .get("/api/audit-logs?action=settings.update_backup")
        .await
        .expect(200)
        .json;
    let items = audit["items"].as_array().expect("items");
    assert!(items.iter().any(|e| e["outcome"] == "success"), "{audit}");
    assert!(
        items
            .iter()
            .any(|e| e["outcome"] == "failure" && e["status_code"] == 422),
        "refused changes are audited too: {audit}"
    );
}

async fn run_now_writes_a_backup_and_lists_it(stack: Stack) {
    if !can_back_up(&stack, "run_now_writes_a_backup_and_lists_it") {
        return;
    }
    let admin = stack.admin();
    let tenant = common::tenant(&stack, "bk-before", None).await;
    let dir = dir_in(&stack, "bk");
    put(&stack, json!({ "directory": text(&dir) })).await;

    let run = admin
        .post(&format!("{PATH}/run"), Value::Null)
        .await
        .expect(201)
        .json;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["kind"], "manual");
    assert_eq!(run["directory"], text(&dir));
    let name = run["file_name"].as_str().expect("file name").to_owned();
    let (_, seq, file_ext) = backup::parse_backup_name(&name).expect("our naming pattern");
    assert_eq!((seq, file_ext), (1, ext(&stack)));
    let path = dir.join(&name);
    let size = std::fs::metadata(&path).expect("backup file").len();
    assert_eq!(run["size_bytes"].as_u64(), Some(size));
    assert!(size > 0);
    assert!(run["duration_ms"].as_i64().is_some_and(|d| d >= 0));
    assert_eq!(
        files(&dir),
        vec![name.clone()],
        "no temporary file left behind"
    );

    // The backup holds the data.
    match stack.backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}?mode=ro", path.display());
            let pool = sqlx::SqlitePool::connect(&url).await.expect("open backup");
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM resources WHERE id = $1")
                .bind(&tenant)
                .fetch_one(&pool)
                .await
                .expect("query backup");
            assert_eq!(n, 1, "the tenant is in the backup");
            pool.close().await;
        }
        Backend::Postgres => {
            let head = std::fs::read(&path).expect("read");
            assert!(head.starts_with(b"PGDMP"), "a pg_dump custom archive");
        }
    }

    // A second run in the same second gets another name; both are listed, newest first.
    let second = admin
        .post(&format!("{PATH}/run"), Value::Null)
        .await
        .expect(201)
        .json;
    assert_ne!(second["file_name"], run["file_name"]);
    let runs = admin.get(&format!("{PATH}/runs")).await.expect(200).json;
    assert_eq!(runs["total"], 2, "{runs}");
    assert_eq!(runs["items"][0]["id"], second["id"]);
    assert_eq!(runs["items"][1]["id"], run["id"]);
    let page = admin
        .get(&format!("{PATH}/runs?page=2&page_size=1&status=succeeded"))
        .await
        .expect(200)
        .json;
    assert_eq!(page["items"][0]["id"], run["id"], "{page}");
    let got = admin.get(PATH).await.expect(200).json;
    assert_eq!(got["last_run"]["id"], second["id"]);

    let audit = admin
        .get("/api/audit-logs?action=settings.run_backup")
        .await
        .expect(200)
        .json;
    assert_eq!(audit["total"], 2, "{audit}");
}

async fn failed_runs_are_recorded(stack: Stack) {
    let admin = stack.admin();
    let dir = dir_in(&stack, "gone");
    put(&stack, json!({ "directory": text(&dir) })).await;
    // The directory became a file after it was checked.
    std::fs::remove_dir(&dir).expect("rmdir");
    std::fs::write(&dir, "in the way").expect("write");
    let r = admin.post(&format!("{PATH}/run"), Value::Null).await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.error_code(), "backup_failed");
    let run = &r.json["error"]["details"]["run"];
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"].as_str().is_some_and(|e| e.contains("gone")),
        "{run}"
    );

    let failed = admin
        .get(&format!("{PATH}/runs?status=failed"))
        .await
        .expect(200)
        .json;
    assert_eq!(failed["total"], 1);
    assert_eq!(failed["items"][0]["id"], run["id"]);
    assert!(failed["items"][0]["finished_at"].is_string());
    let ok = admin
        .get(&format!("{PATH}/runs?status=succeeded"))
        .await
        .expect(200)
        .json;
    assert_eq!(ok["total"], 0);

    if stack.backend == Backend::Postgres {
        // A pg_dump that fails: the failure and its message are recorded too.
        std::fs::remove_file(&dir).expect("rm");
        let bin = dir_in(&stack, "bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        let fake = bin.join("pg_dump");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho 'simulated dump failure' >&2\nexit 3\n",
        )
        .expect("write");
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        put(
            &stack,
            json!({ "directory": text(&dir), "pg_dump_path": text(&fake) }),
        )
        .await;
        let r = admin.post(&format!("{PATH}/run"), Value::Null).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert!(
            r.json["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("simulated dump failure")),
            "{}",
            r.text
        );
        assert_eq!(files(&dir), Vec::<String>::new(), "no partial file kept");
    }
    let audit = admin
        .get("/api/audit-logs?action=settings.run_backup")
        .await
        .expect(200)
        .json;
    assert!(audit["total"].as_u64().is_some_and(|n| n >= 1), "{audit}");
}

async fn retention_deletes_only_our_oldest_files(stack: Stack) {
    if !can_back_up(&stack, "retention_deletes_only_our_oldest_files") {
        return;
    }
    let admin = stack.admin();
    let ext = ext(&stack);
    let other_ext = if ext == "sqlite" { "dump" } else { "sqlite" };
    let dir = dir_in(&stack, "retained");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let old = [
        format!("medgate-20200101T000000Z.{ext}"),
        format!("medgate-20200102T000000Z.{ext}"),
        format!("medgate-20200103T000000Z.{ext}"),
        format!("medgate-20200103T000000Z-2.{ext}"),
    ];
    let foreign = [
        "notes.txt".to_owned(),
        "medgate.db".to_owned(),
        format!("medgate-20190101T000000Z.{other_ext}"),
        format!("medgate-2019.{ext}"),
        format!("backup-20190101T000000Z.{ext}"),
    ];
    for name in old.iter().chain(&foreign) {
        std::fs::write(dir.join(name), "x").expect("write");
    }
    put(
        &stack,
        json!({ "directory": text(&dir), "retention_count": 3 }),
    )
    .await;

    let first = admin
        .post(&format!("{PATH}/run"), Value::Null)
        .await
        .expect(201)
        .json;
    assert_eq!(first["pruned"], 2, "{first}");
    let first_name = first["file_name"].as_str().expect("name").to_owned();
    let mut expected: Vec<String> = foreign.to_vec();
    expected.extend([old[2].clone(), old[3].clone(), first_name.clone()]);
    expected.sort();
    assert_eq!(files(&dir), expected, "the two oldest of ours are gone");

    let second = admin
        .post(&format!("{PATH}/run"), Value::Null)
        .await
        .expect(201)
        .json;
    assert_eq!(second["pruned"], 1, "{second}");
    let mut expected: Vec<String> = foreign.to_vec();
    expected.extend([
        old[3].clone(),
        first_name,
        second["file_name"].as_str().expect("name").to_owned(),
    ]);
    expected.sort();
    assert_eq!(
        files(&dir),
        expected,
        "`-2` of the same second is newer than the plain name"
    );
}

fn job_of(stack: &Stack) -> (String, PathBuf) {
    (
        stack.state.settings().effective_database_url(),
        stack.state.settings().data_dir.clone(),
    )
}

async fn scheduler_runs_each_slot_once(stack: Stack) {
    if !can_back_up(&stack, "scheduler_runs_each_slot_once") {
        return;
    }
    let state = &stack.state;
    let now = Utc::now();
    assert!(matches!(
        backup::tick_at(state, now).await.expect("tick"),
        Tick::Disabled
    ));
    // Daily, anchored an hour ago: now, now + 48 min and now + 23 h are in one slot.
    let anchor = now - TimeDelta::hours(1);
    let at = anchor.format("%H:%M").to_string();
    let dir = dir_in(&stack, "scheduled");
    put(
        &stack,
        json!({ "enabled": true, "interval_hours": 24, "at": at, "directory": text(&dir) }),
    )
    .await;
    let settings = backup::load_settings(state.store())
        .await
        .expect("settings");
    let slot = backup::slot_start(&settings, now);
    assert!(slot <= now && now - slot < TimeDelta::hours(2), "{slot}");

    // A slot that another control plane claimed (a `running` attempt) is not run here.
    let (url, data_dir) = job_of(&stack);
    let job = Job {
        store: state.store(),
        database_url: &url,
        data_dir: &data_dir,
        record: true,
    };
    let key = format!("{}#1", slot.format("%Y-%m-%dT%H:%M:%SZ"));
    let claimed = backup::run(
        &job,
        &settings,
        Trigger::Scheduled {
            slot: key.clone(),
            at: now,
        },
        None,
    )
    .await
    .expect("first claim runs");
    assert_eq!(claimed.slot.as_deref(), Some(key.as_str()));
    let again = backup::run(
        &job,
        &settings,
        Trigger::Scheduled { slot: key, at: now },
        None,
    )
    .await;
    assert!(
        matches!(again, Err(BackupError::SlotTaken(_))),
        "a slot key is taken once: {again:?}"
    );
    // That attempt succeeded: the slot is covered.
    assert!(matches!(
        backup::tick_at(state, now).await.expect("tick"),
        Tick::Covered
    ));

    // The next slot runs once; a second check in it finds it covered.
    let next = now + TimeDelta::hours(24);
    let Tick::Ran(run) = backup::tick_at(state, next).await.expect("tick") else {
        panic!("the next slot runs");
    };
    assert_eq!(run.kind, "scheduled");
    assert!(run.slot.as_deref().is_some_and(|s| s.ends_with("#1")));
    assert_eq!(run.status.as_str(), "succeeded", "{run:?}");
    assert!(matches!(
        backup::tick_at(state, next + TimeDelta::hours(1))
            .await
            .expect("tick"),
        Tick::Covered
    ));

    // Failures: retried after 15 minutes, three attempts per slot, all recorded.
    std::fs::remove_dir_all(&dir).expect("rm");
    std::fs::write(&dir, "in the way").expect("write");
    let later = now + TimeDelta::hours(48);
    let outcomes = [
        (later, "ran"),
        (later + TimeDelta::minutes(1), "retry_later"),
        (later + TimeDelta::minutes(16), "ran"),
        (later + TimeDelta::minutes(32), "ran"),
        (later + TimeDelta::minutes(48), "gave_up"),
    ];
    for (t, expected) in outcomes {
        let tick = backup::tick_at(state, t).await.expect("tick");
        let got = match &tick {
            Tick::Ran(run) => {
                assert_eq!(run.status.as_str(), "failed", "{run:?}");
                "ran"
            }
            Tick::RetryLater => "retry_later",
            Tick::GaveUp => "gave_up",
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(got, expected, "at {t}");
    }
    let failed = stack
        .admin()
        .get(&format!("{PATH}/runs?status=failed"))
        .await
        .expect(200)
        .json;
    assert_eq!(failed["total"], 3, "{failed}");
    let slots: Vec<&str> = failed["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["slot"].as_str().expect("slot"))
        .collect();
    assert!(
        slots[0].ends_with("#3") && slots[2].ends_with("#1"),
        "{slots:?}"
    );
}
