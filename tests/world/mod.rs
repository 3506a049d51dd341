//! The in-process world of the cross-plane tests: a control plane on SQLite, a proxy fed by
//! it, a mock model, a tenant with an API key.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use medgate_config::Settings;
use medgate_control_plane::{AppState, Role};
use medgate_proxy::{ConfigSource, ProxyHandle, ProxyOptions};
use medgate_testkit::{MockUpstream, TEST_JWT_SECRET};
use serde_json::{json, Value};
use tokio::sync::oneshot;

pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

pub struct ControlPlane {
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ControlPlane {
    pub async fn start(settings: &Settings, addr: SocketAddr) -> ControlPlane {
        let state = medgate_control_plane::open(settings, Some(TEST_JWT_SECRET))
            .await
            .expect("opens");
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let (tx, rx) = oneshot::channel::<()>();
        let serve_state = state.clone();
        let task = tokio::spawn(async move {
            let _ = medgate_control_plane::serve(serve_state, listener, async {
                let _ = rx.await;
            })
            .await;
        });
        ControlPlane {
            state,
            stop: Some(tx),
            task,
        }
    }

    pub async fn kill(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = self.task.await;
        self.state.store().close().await;
    }
}

pub struct World {
    pub settings: Settings,
    pub api: SocketAddr,
    pub api_url: String,
    pub proxy_url: String,
    pub cp: Option<ControlPlane>,
    pub proxy: Option<ProxyHandle>,
    pub _upstream: MockUpstream,
    pub _dir: tempfile::TempDir,
    pub admin: String,
    pub key: String,
    pub key_id: String,
    pub tenant: String,
    pub model_id: String,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(p) = self.proxy.take() {
            p.stop();
        }
    }
}

pub async fn call(
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.expect("sent");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = MockUpstream::start().await;
    let mut settings = Settings {
        data_dir: dir.path().to_owned(),
        ..Settings::default()
    };
    settings.auth.jwt_secret = Some(TEST_JWT_SECRET.into());
    let api = free_addr();
    let cp = ControlPlane::start(&settings, api).await;
    let api_url = format!("http://{api}");
    let admin = cp
        .state
        .keys()
        .issue("admin", Role::PlatformAdmin, None, Duration::from_secs(600))
        .expect("token");
    let post = |path: &str, body: Value| {
        let (url, admin) = (format!("{api_url}{path}"), admin.clone());
        async move { call(reqwest::Method::POST, &url, &admin, Some(body)).await }
    };
    let (s, t) = post(
        "/api/tenants",
        json!({ "name": "Clinic", "code": "clinic" }),
    )
    .await;
    assert_eq!(s, 201, "{t}");
    let tenant = t["id"].as_str().expect("id").to_owned();
    let (s, _) = post(&format!("/api/tenants/{tenant}/activate"), Value::Null).await;
    assert_eq!(s, 200);
    let (s, m) = post(
        "/api/models",
        json!({ "name": "echo", "upstreams": [{ "url": upstream.base_url() }] }),
    )
    .await;
    assert_eq!(s, 201, "{m}");
    let model_id = m["id"].as_str().expect("id").to_owned();
    let (s, k) = post(
        "/api/api-keys",
        json!({ "tenant_id": tenant, "name": "app" }),
    )
    .await;
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().expect("plaintext").to_owned();
    let key_id = k["id"].as_str().expect("id").to_owned();

    let node = cp
        .state
        .keys()
        .issue("node", Role::Node, None, Duration::from_secs(600))
        .expect("token");
    let proxy_addr = free_addr();
    let proxy = medgate_proxy::start(ProxyOptions {
        listen: proxy_addr,
        data_dir: dir.path().to_owned(),
        source: ConfigSource::ControlPlane {
            addr: api,
            standby: Vec::new(),
            node_token: node,
        },
        threads: 2,
        grace_period_secs: 1,
        redis_url: None,
        redis_timeout: Duration::from_secs(2),
        spool: Default::default(),
        tls: None,
    })
    .expect("proxy");
    let proxy_url = format!("http://{proxy_addr}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(format!("{proxy_url}/readyz"))
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "proxy not ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    World {
        settings,
        api,
        api_url,
        proxy_url,
        cp: Some(cp),
        proxy: Some(proxy),
        _upstream: upstream,
        _dir: dir,
        admin,
        key,
        key_id,
        tenant,
        model_id,
    }
}

pub async fn infer(w: &World) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        &format!("{}/v1/chat/completions", w.proxy_url),
        &w.key,
        Some(json!({ "model": "echo", "messages": [{ "role": "user", "content": "ping" }] })),
    )
    .await
}

/// Time from the management call's answer until the proxy refuses with `code`.
pub async fn time_until_refused(w: &World, code: &str) -> Duration {
    let since = Instant::now();
    loop {
        let (status, body) = infer(w).await;
        if status >= 400 {
            assert_eq!(body["error"]["code"], code, "{body}");
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "change never reached the proxy"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
