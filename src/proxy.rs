//! Starting the data plane from the CLI: attached to an in-process control plane (`serve`),
//! or standalone (`medgate proxy`) against a remote control plane or a static gateway file.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use medgate_config::Settings;
use medgate_proxy::{ConfigSource, ProxyHandle, ProxyOptions};

use crate::cli::ServeArgs;

/// The proxy of `medgate serve`, fed by the control plane at `api_addr`.
pub fn start_attached(
    settings: &Settings,
    api_addr: SocketAddr,
    node_token: String,
) -> anyhow::Result<ProxyHandle> {
    let control_plane = if api_addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], api_addr.port()))
    } else {
        api_addr
    };
    medgate_proxy::start(options(
        settings,
        ConfigSource::ControlPlane {
            addr: control_plane,
            standby: Vec::new(),
            node_token,
        },
    )?)
    .with_context(|| format!("starting the proxy on {}", settings.proxy.listen))
}

/// The proxy's options; reads and checks the HTTPS listener's default certificate.
fn options(settings: &Settings, source: ConfigSource) -> anyhow::Result<ProxyOptions> {
    Ok(ProxyOptions {
        listen: settings.proxy.listen,
        data_dir: settings.data_dir.clone(),
        source,
        threads: settings.proxy.threads,
        grace_period_secs: settings.proxy.grace_period_secs,
        redis_url: settings.redis_url.clone(),
        redis_timeout: Duration::from_millis(settings.proxy.redis_timeout_ms.max(1)),
        spool: settings.proxy.spool,
        tls: settings.proxy.tls.load()?,
    })
}

/// `medgate proxy`: `--config` names either a settings file or a static gateway file.
pub async fn run_standalone(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let gateway_file = args
        .common
        .config
        .clone()
        .filter(|p| medgate_proxy::static_config::is_gateway_file(p));
    let mut common = args.common.clone();
    if gateway_file.is_some() {
        common.config = None;
    }
    let mut settings = Settings::load(common.config.as_deref())?;
    if let Some(dir) = &common.data_dir {
        settings.data_dir = dir.clone();
    }
    if let Some(addr) = args.proxy_listen {
        settings.proxy.listen = addr;
    }
    std::fs::create_dir_all(&settings.data_dir)?;
    let source = match gateway_file {
        Some(path) => {
            medgate_proxy::static_config::load(&path, 1)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            ConfigSource::StaticFile(path)
        }
        None => {
            let url = settings
                .proxy
                .control_plane_url
                .clone()
                .context("set proxy.control_plane_url (MEDGATE_CONTROL_PLANE_URL) or pass --config gateway.yaml")?;
            // One URL, or several (comma-separated) control planes of one cluster.
            let mut addrs = Vec::new();
            for part in url.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let authority = part.trim_start_matches("http://").trim_end_matches('/');
                let addr = authority
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .with_context(|| {
                        format!("control plane address {authority} does not resolve")
                    })?;
                addrs.push(addr);
            }
            let Some((&addr, standby)) = addrs.split_first() else {
                bail!("proxy.control_plane_url is empty");
            };
            let token = match &settings.proxy.node_token {
                Some(t) => t.clone(),
                None => {
                    let secret = crate::secrets::jwt_secret(&settings, false)?;
                    let Some(secret) = secret else {
                        bail!("no node credential: set MEDGATE_NODE_TOKEN (medgate token issue --role node)")
                    };
                    medgate_control_plane::JwtKeys::from_settings(&settings, Some(&secret))?.issue(
                        "proxy-node",
                        medgate_control_plane::Role::Node,
                        None,
                        Duration::from_secs(10 * 365 * 24 * 3600),
                    )?
                }
            };
            ConfigSource::ControlPlane {
                addr,
                standby: standby.to_vec(),
                node_token: token,
            }
        }
    };
    let handle = medgate_proxy::start(options(&settings, source)?)?;
    tracing::info!(proxy = %handle.listen, https = ?handle.tls_listen, "proxy listening");
    crate::commands::shutdown_signal().await;
    tokio::task::spawn_blocking(move || handle.stop()).await?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
