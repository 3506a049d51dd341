//! Micro-benchmarks of the proxy's per-request work and of the snapshot swap.
//!
//! `cargo bench -p medgate-benches -- --warm-up-time 1 --measurement-time 3`
//!
//! - `route_match`: `Endpoint::of` for inference paths and for paths that are not inference;
//! - `key_auth`: `auth::authenticate` (prefix lookup, SHA-256, constant-time compare, expiry)
//!   against a catalog of 10k tenants and 100k keys;
//! - `json_model`: `Body::parse` + `.model()` on a 1 MiB chat body whose `model` is the last
//!   field, and the same with the model rewritten and the body serialized again;
//! - `sse_meter`: `SseMeter::feed` over a 50-event chat stream fed event by event, passing the
//!   usage chunk through or hiding it;
//! - `snapshot_swap`: `Snapshot::validate` (with the content hash), `Catalog::new` (indexing)
//!   and `Shared::install` (validation, indexing and the swap itself; with and without writing
//!   the last good snapshot to disk) for 10k tenants, 100k keys and 100 models.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use medgate_config::{
    ApiKeyEntry, GatewayEntry, KeySecret, ModelEntry, Snapshot, TenantEntry, TenantStatus,
    UpstreamEntry,
};
use medgate_proxy::auth::{authenticate, KeyRefusal};
use medgate_proxy::catalog::Catalog;
use medgate_proxy::inference::request::Body;
use medgate_proxy::inference::sse::SseMeter;
use medgate_proxy::inference::Endpoint;
use medgate_proxy::shared::Shared;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const TENANTS: usize = 10_000;
const KEYS: usize = 100_000;
const MODELS: usize = 100;

fn key_prefix(i: usize) -> String {
    format!("mg_{i:012x}")
}

/// The full key `mg_<id>_<secret>` of key number `i` (64 hex characters of secret).
fn key_text(i: usize) -> String {
    let secret = hex::encode(Sha256::digest(format!("secret {i}").as_bytes()));
    format!("{}_{secret}", key_prefix(i))
}

fn tenant(i: usize) -> TenantEntry {
    TenantEntry {
        id: format!("tenant-{i:05}"),
        code: format!("clinic-{i:05}"),
        status: TenantStatus::Active,
        quotas: None,
        allowed_models: vec![],
        log_request_payloads: false,
        cors_allowed_origins: vec![],
        isolation: None,
    }
}

fn model(i: usize) -> ModelEntry {
    ModelEntry {
        id: format!("model-{i:03}"),
        name: format!("gpt-bench-{i:03}"),
        enabled: true,
        provider: "openai_compatible".into(),
        upstreams: vec![UpstreamEntry {
            url: "http://127.0.0.1:18401/v1".into(),
            weight: 1,
            api_key: Some("sk-upstream".into()),
            pool: None,
            max_concurrency: None,
            ca_pem: None,
        }],
        upstream_model: format!("vendor-model-{i:03}"),
        connect_timeout_ms: 2000,
        read_timeout_ms: 30_000,
        available_to_all_tenants: true,
        parameters: Default::default(),
        rates: Vec::new(),
    }
}

fn api_key(i: usize) -> ApiKeyEntry {
    ApiKeyEntry {
        id: format!("key-{i:06}"),
        tenant_id: format!("tenant-{:05}", i % TENANTS),
        prefix: key_prefix(i),
        secrets: vec![KeySecret {
            sha256: hex::encode(Sha256::digest(key_text(i).as_bytes())),
            valid_until: None,
        }],
        expires_at: (i % 2 == 0).then(|| "2999-01-01T00:00:00Z".to_owned()),
        allowed_models: vec![],
    }
}

/// A valid snapshot of 10k tenants, 100k keys and 100 models.
fn big_snapshot() -> Snapshot {
    let snapshot = Snapshot::from_parts(
        1,
        (0..TENANTS).map(tenant).collect(),
        (0..MODELS).map(model).collect(),
        (0..KEYS).map(api_key).collect(),
        vec![],
        GatewayEntry::default(),
    );
    snapshot.validate().expect("the bench snapshot is valid");
    snapshot
}

fn route_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_match");
    let cases = [
        ("POST", "/v1/chat/completions"),
        ("GET", "/v1/models"),
        ("POST", "/v1/embeddings"),
        ("POST", "/api/inference/house-model"),
        ("GET", "/healthz"),
        (
            "GET",
            "/api/tenants/0190f0aa-1111-7222-8333-444455556666/keys",
        ),
    ];
    for (method, path) in cases {
        group.bench_function(format!("{method} {path}"), |b| {
            b.iter(|| Endpoint::of(black_box(method), black_box(path)))
        });
    }
    group.finish();
}

fn key_auth(c: &mut Criterion) {
    let catalog = Catalog::new(big_snapshot());
    let good = key_text(54_321);
    assert!(authenticate(&catalog, Some(&good)).is_ok());
    let wrong_secret = format!("{}_{}", key_prefix(54_321), "0".repeat(64));
    let unknown = format!("{}_{}", key_prefix(KEYS + 7), "0".repeat(64));
    assert_eq!(
        authenticate(&catalog, Some(&unknown)).err(),
        Some(KeyRefusal::Unknown)
    );

    let mut group = c.benchmark_group("key_auth_100k_keys");
    group.bench_function("valid key", |b| {
        b.iter(|| authenticate(&catalog, black_box(Some(good.as_str()))).is_ok())
    });
    group.bench_function("wrong secret", |b| {
        b.iter(|| authenticate(&catalog, black_box(Some(wrong_secret.as_str()))).is_ok())
    });
    group.bench_function("unknown prefix", |b| {
        b.iter(|| authenticate(&catalog, black_box(Some(unknown.as_str()))).is_ok())
    });
    group.bench_function("lookup only (no hash)", |b| {
        b.iter(|| catalog.key(black_box(&good[..15])).is_some())
    });
    group.finish();
}

/// A chat body of at least 1 MiB with `model` as its last field.
fn big_chat_body() -> Bytes {
    let paragraph = "The patient, a 54-year-old with type 2 diabetes, reports \"intermittent\" \
        chest discomfort on exertion since March; ECG shows no acute changes.\nMedications: \
        metformin 1000 mg b.i.d., atorvastatin 20 mg; allergies: penicillin (rash). \
        Température 37,2 °C — SpO₂ 97 %. ";
    let mut messages = vec![json!({
        "role": "system",
        "content": "You are a careful clinical documentation assistant."
    })];
    let mut size = 0;
    let mut turn = 0;
    while size < 1024 * 1024 {
        let content = paragraph.repeat(4);
        size += content.len() + 40;
        let role = if turn % 2 == 0 { "user" } else { "assistant" };
        messages.push(json!({ "role": role, "content": content }));
        turn += 1;
    }
    let messages = serde_json::to_string(&messages).expect("serializes");
    let body = format!(
        "{{\"messages\":{messages},\"temperature\":0.2,\"max_tokens\":512,\"stream\":false,\"model\":\"gpt-bench-042\"}}"
    );
    assert!(body.len() >= 1024 * 1024);
    assert!(body.ends_with("\"model\":\"gpt-bench-042\"}"));
    Bytes::from(body)
}

fn json_model(c: &mut Criterion) {
    let body = big_chat_body();
    let mut group = c.benchmark_group("json_model_1mib");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("parse + model", |b| {
        b.iter(|| {
            let parsed = Body::parse(black_box(body.clone())).expect("valid JSON");
            parsed.model().map(str::len)
        })
    });
    group.bench_function("parse + model + rewrite model + serialize", |b| {
        b.iter(|| {
            let mut parsed = Body::parse(black_box(body.clone())).expect("valid JSON");
            assert_eq!(parsed.model(), Some("gpt-bench-042"));
            parsed.set("model", Value::String("vendor-model-042".into()));
            parsed.into_bytes().len()
        })
    });
    group.finish();
}

/// A realistic streamed chat answer: role chunk, 46 content chunks, finish chunk, usage chunk
/// (sent because the gateway asked for `include_usage`) and `[DONE]`: 50 events.
fn chat_stream() -> Vec<Bytes> {
    let head = "\"id\":\"chatcmpl-9x7Qk2mZbF1aT0\",\"object\":\"chat.completion.chunk\",\"created\":1718000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\"";
    let words = [
        " Based",
        " on",
        " the",
        " symptoms",
        " described,",
        " consider",
        " stable",
        " angina;",
        " order",
        " a",
        " stress",
        " test",
        " and",
        " lipid",
        " panel.",
    ];
    let mut events = vec![format!(
        "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
    )];
    for i in 0..46 {
        let word = words[i % words.len()];
        events.push(format!(
            "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{word}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
        ));
    }
    events.push(format!(
        "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}\n\n"
    ));
    events.push(format!(
        "data: {{{head},\"choices\":[],\"usage\":{{\"prompt_tokens\":412,\"completion_tokens\":46,\"total_tokens\":458}}}}\n\n"
    ));
    events.push("data: [DONE]\n\n".to_owned());
    assert_eq!(events.len(), 50);
    events.into_iter().map(Bytes::from).collect()
}

fn sse_meter(c: &mut Criterion) {
    let stream = chat_stream();
    let total: usize = stream.iter().map(Bytes::len).sum();
    let mut group = c.benchmark_group("sse_meter_50_events");
    group.throughput(Throughput::Bytes(total as u64));
    for (name, hide) in [("usage chunk passed", false), ("usage chunk hidden", true)] {
        // Same result as in production: usage read, the chunk dropped only when hiding.
        let mut check = SseMeter::new(hide);
        let sent: usize = stream.iter().map(|c| check.feed(c).len()).sum();
        assert_eq!(check.usage.map(|u| u.output_tokens), Some(46));
        assert_eq!(sent == total, !hide);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut meter = SseMeter::new(hide);
                let mut sent = 0;
                for chunk in &stream {
                    sent += meter.feed(black_box(chunk)).len();
                }
                sent += meter.finish().len();
                (sent, meter.usage)
            })
        });
    }
    group.finish();
}

fn snapshot_swap(c: &mut Criterion) {
    let snapshot = big_snapshot();
    let mut group = c.benchmark_group("snapshot_10k_tenants_100k_keys_100_models");
    group.sample_size(10);
    group.bench_function("Snapshot::validate (includes the content hash)", |b| {
        b.iter(|| snapshot.validate().is_ok())
    });
    group.bench_function("Catalog::new", |b| {
        b.iter_batched(|| snapshot.clone(), Catalog::new, BatchSize::PerIteration)
    });
    let shared = Shared::new(None);
    shared.install(snapshot.clone()).expect("valid");
    group.bench_function(
        "Shared::install, no persistence (validate + index + swap)",
        |b| {
            b.iter_batched(
                || snapshot.clone(),
                |s| shared.install(s).expect("valid"),
                BatchSize::PerIteration,
            )
        },
    );
    // As the server runs it: the last good snapshot is also written to the data directory.
    let dir = tempfile::tempdir().expect("temp dir");
    let persisted = Shared::new(Some(dir.path().join("last-good-snapshot.json")));
    persisted.install(snapshot.clone()).expect("valid");
    group.bench_function("Shared::install, persisted (as the server runs it)", |b| {
        b.iter_batched(
            || snapshot.clone(),
            |s| persisted.install(s).expect("valid"),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = route_match, key_auth, json_model, sse_meter, snapshot_swap
}
criterion_main!(benches);
