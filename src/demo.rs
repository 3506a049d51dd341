//! `--demo`: the demo tenant and tokens (control plane), plus a built-in mock model served by
//! an in-process OpenAI-compatible echo upstream and an API key, so a newcomer can send an
//! inference request through the gateway within a minute.

use std::time::Duration;

use anyhow::Context;
use medgate_config::Settings;
use medgate_control_plane::AppState;
use medgate_testkit::MockUpstream;
use serde::Serialize;

/// What `<data-dir>/demo-credentials.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Credentials {
    pub admin_token: String,
    pub tenant_id: String,
    pub tenant_admin_token: String,
    pub api_url: String,
    pub docs_url: String,
    pub api_key: Option<String>,
    pub proxy_url: Option<String>,
    pub model: Option<String>,
}

/// The demo's running parts; the mock upstream stops when this is dropped.
pub struct Demo {
    pub credentials: Credentials,
    _upstream: MockUpstream,
}

pub async fn prepare(state: &AppState, settings: &Settings) -> anyhow::Result<Demo> {
    let base = medgate_control_plane::demo::seed(state, Duration::from_secs(7 * 24 * 3600))
        .await
        .map_err(|e| anyhow::anyhow!("seeding the demo: {e}"))?;
    let upstream = MockUpstream::start().await;
    let api_key =
        medgate_control_plane::demo::seed_inference(state, &base.tenant_id, &upstream.base_url())
            .await
            .map_err(|e| anyhow::anyhow!("seeding the demo model: {e}"))
            .context("demo model and key")?;
    let proxy = settings.proxy.listen;
    let proxy_host = if proxy.ip().is_unspecified() {
        format!("127.0.0.1:{}", proxy.port())
    } else {
        proxy.to_string()
    };
    Ok(Demo {
        credentials: Credentials {
            admin_token: base.admin_token,
            tenant_id: base.tenant_id,
            tenant_admin_token: base.tenant_admin_token,
            api_url: base.api_url,
            docs_url: base.docs_url,
            api_key: Some(api_key),
            proxy_url: Some(format!("http://{proxy_host}")),
            model: Some(medgate_control_plane::demo::DEMO_MODEL.to_owned()),
        },
        _upstream: upstream,
    })
}
