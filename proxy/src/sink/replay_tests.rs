//! Replaying a large spool against a control plane on 127.0.0.1 that can be made to fail.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

use super::*;

#[derive(Clone, Default)]
struct Ingest {
    down: Arc<AtomicBool>,
    batches: Arc<Mutex<Vec<usize>>>,
    ids: Arc<Mutex<Vec<String>>>,
}

async fn ingest(State(s): State<Ingest>, Json(body): Json<Value>) -> StatusCode {
    if s.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let events = body["events"].as_array().cloned().unwrap_or_default();
    s.batches.lock().expect("lock").push(events.len());
    s.ids.lock().expect("lock").extend(
        events
            .iter()
            .map(|e| e["request_id"].as_str().unwrap_or_default().to_owned()),
    );
    StatusCode::OK
}

fn entry(n: usize) -> AccessLogEntry {
    AccessLogEntry {
        request_id: format!("req-{n:06}"),
        occurred_at: "2026-11-30T12:00:00Z".into(),
        method: "GET".into(),
        host: "gateway.test".into(),
        path: "/v1/models".into(),
        status: 200,
        latency_ms: 1,
        tenant_id: None,
        route: "inference".into(),
        upstream: None,
        bytes_sent: 10,
        instance_id: "proxy-1".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_spool_is_replayed_in_chunks_and_a_half_written_line_waits() {
    let state = Ingest::default();
    let app = axum::Router::new()
        .route(AccessLogEntry::ENDPOINT, axum::routing::post(ingest))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().expect("tempdir");
    let spool_path = dir.path().join("access-log-spool.jsonl");
    let (_sender, sink) = channel::<AccessLogEntry>(SinkConfig {
        control_plane: Some(Arc::new(ControlPlanes::new(addr, &[]))),
        node_token: None,
        spool_path: spool_path.clone(),
        batch_size: 100,
        flush_interval: Duration::from_millis(200),
        overflow: Overflow::Spool,
        rotation: None,
    });
    let events: Vec<AccessLogEntry> = (0..12_001).map(entry).collect();
    spool::append(&spool_path, &events).expect("spool");
    // A line the request path is still writing: no newline yet.
    let last = serde_json::to_string(&entry(12_001)).expect("json");
    let (head, tail) = last.split_at(40);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&spool_path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, head.as_bytes()))
        .expect("partial line");
    let size = std::fs::metadata(&spool_path).expect("meta").len();

    // Control plane down: nothing delivered, nothing lost.
    state.down.store(true, Ordering::SeqCst);
    sink.replay_spool().await;
    assert!(state.batches.lock().expect("lock").is_empty());
    assert_eq!(std::fs::metadata(&spool_path).expect("meta").len(), size);

    // Up: every whole line in chunks of at most 5000, in order; the half line stays.
    state.down.store(false, Ordering::SeqCst);
    sink.replay_spool().await;
    assert_eq!(
        *state.batches.lock().expect("lock"),
        vec![5_000, 5_000, 2_001]
    );
    let expected: Vec<String> = (0..12_001).map(|n| format!("req-{n:06}")).collect();
    assert_eq!(*state.ids.lock().expect("lock"), expected);
    assert_eq!(
        std::fs::read_to_string(&spool_path).expect("rest"),
        head,
        "the half-written line is kept for the next attempt"
    );

    // Once the line is complete it goes out, and the spool is gone.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&spool_path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{tail}\n").as_bytes()))
        .expect("rest of the line");
    sink.replay_spool().await;
    assert_eq!(
        state.ids.lock().expect("lock").last().map(String::as_str),
        Some("req-012001")
    );
    assert!(!spool_path.exists());
}
