//! What each command does: load settings, open the planes, run until told to stop.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use medgate_config::Settings;

use crate::cli::{
    AuditCommand, BackupCommand, Cli, Command, CommonArgs, ConfigCommand, ServeArgs, TokenCommand,
};
use crate::secrets;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => serve(args, true).await,
        Command::ControlPlane(args) => serve(args, false).await,
        Command::Proxy(args) => crate::proxy::run_standalone(args).await,
        Command::Migrate(common) => {
            let settings = load(&common, None, None)?;
            ensure_data_dir(&settings)?;
            let store =
                medgate_control_plane::Store::connect(&settings.effective_database_url()).await?;
            store.migrate().await?;
            println!(
                "migrations applied to {}",
                medgate_config::settings::redact_url(&settings.effective_database_url())
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Token(TokenCommand::Issue {
            common,
            role,
            tenant,
            ttl,
            subject,
        }) => {
            let settings = load(&common, None, None)?;
            let role = medgate_control_plane::Role::parse(&role)
                .with_context(|| format!("unknown role {role:?} (platform_admin, tenant_admin, tenant_viewer, auditor, node)"))?;
            let secret = secrets::jwt_secret(&settings, false)?;
            let keys = medgate_control_plane::JwtKeys::from_settings(&settings, secret.as_deref())?;
            println!(
                "{}",
                keys.issue(&subject, role, tenant.as_deref(), ttl.into())?
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { file }) => {
            let settings = Settings::load(Some(&file))?;
            // The HTTPS listener's certificate files must be readable and match.
            let https = match settings.proxy.tls.load()? {
                Some(tls) => format!(", https {}", tls.listen),
                None => String::new(),
            };
            println!(
                "{}: ok (database {}, api {}, proxy {}{https})",
                file.display(),
                medgate_config::settings::redact_url(&settings.effective_database_url()),
                settings.api.listen,
                settings.proxy.listen
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit(AuditCommand::Verify(common)) => {
            let settings = load(&common, None, None)?;
            let embedded = settings.data_dir.join("medgate.db");
            if settings.database_url.is_empty() && !embedded.exists() {
                bail!(
                    "no database at {} (check --data-dir or MEDGATE_DATABASE_URL)",
                    embedded.display()
                );
            }
            let store =
                medgate_control_plane::Store::connect(&settings.effective_database_url()).await?;
            let report = medgate_control_plane::audit::verify(&store).await?;
            match report.first_broken {
                None => {
                    println!("audit chain intact: {} entries verified", report.checked);
                    Ok(ExitCode::SUCCESS)
                }
                Some((seq, reason)) => {
                    println!("audit chain BROKEN at entry {seq}: {reason} ({} entries before it verified)", report.checked);
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Backup(BackupCommand::Now { common, dir }) => {
            crate::backup::now(&load(&common, None, None)?, dir).await
        }
        Command::Backup(BackupCommand::Restore { common, file, yes }) => {
            crate::backup::restore(&load(&common, None, None)?, &file, yes).await
        }
    }
}

fn load(
    common: &CommonArgs,
    api: Option<std::net::SocketAddr>,
    proxy: Option<std::net::SocketAddr>,
) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(common.config.as_deref())?;
    if let Some(dir) = &common.data_dir {
        settings.data_dir = dir.clone();
    }
    if let Some(addr) = api {
        settings.api.listen = addr;
    }
    if let Some(addr) = proxy {
        settings.proxy.listen = addr;
    }
    settings.validate()?;
    Ok(settings)
}

fn ensure_data_dir(settings: &Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))
}

async fn serve(args: ServeArgs, with_proxy: bool) -> anyhow::Result<ExitCode> {
    let settings = load(&args.common, args.api_listen, args.proxy_listen)?;
    ensure_data_dir(&settings)?;
    let secret = secrets::jwt_secret(&settings, args.demo)?;
    if settings.auth.jwt_algorithm == "HS256" && secret.is_none() {
        bail!(
            "no JWT secret: set MEDGATE_JWT_SECRET (at least 32 characters) or start with --demo"
        );
    }
    let state = medgate_control_plane::open(&settings, secret.as_deref()).await?;
    let listener = medgate_control_plane::bind(settings.api.listen).await?;
    let api_addr = listener.local_addr()?;
    tracing::info!(
        api = %api_addr,
        database = %medgate_config::settings::redact_url(&settings.effective_database_url()),
        "control plane listening"
    );
    let demo = if args.demo {
        Some(crate::demo::prepare(&state, &settings).await?)
    } else {
        None
    };
    let proxy = if with_proxy {
        let token = match &settings.proxy.node_token {
            Some(t) => t.clone(),
            None => state.keys().issue(
                "proxy-node",
                medgate_control_plane::Role::Node,
                None,
                Duration::from_secs(10 * 365 * 24 * 3600),
            )?,
        };
        let handle = crate::proxy::start_attached(&settings, api_addr, token)?;
        tracing::info!(proxy = %handle.listen, https = ?handle.tls_listen, "proxy listening");
        Some(handle)
    } else {
        None
    };
    if let Some(demo) = &demo {
        let path = settings.data_dir.join("demo-credentials.json");
        secrets::write_private(&path, &serde_json::to_string_pretty(&demo.credentials)?)?;
        print_try_this(&demo.credentials, &path, proxy.is_some());
    }
    let shutdown = async move {
        shutdown_signal().await;
        if let Some(proxy) = proxy {
            // The proxy drains first: its last usage events still reach this control plane.
            let _ = tokio::task::spawn_blocking(move || proxy.stop()).await;
        }
    };
    medgate_control_plane::serve(state, listener, shutdown).await?;
    drop(demo);
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

fn print_try_this(creds: &crate::demo::Credentials, path: &std::path::Path, with_proxy: bool) {
    let api = &creds.api_url;
    println!();
    println!("medgate demo is up. Credentials: {}", path.display());
    println!("API docs: {api}/api/docs");
    println!("Try this:");
    println!(
        "  TOKEN=$(python3 -c 'import json;print(json.load(open(\"{}\"))[\"admin_token\"])')",
        path.display()
    );
    println!("  curl -s -H \"Authorization: Bearer $TOKEN\" {api}/api/tenants");
    println!(
        "  curl -s -H \"Authorization: Bearer $TOKEN\" {api}/api/tenants/{}/config",
        creds.tenant_id
    );
    println!("  curl -s -H \"Authorization: Bearer $TOKEN\" {api}/api/audit-logs");
    if let (true, Some(proxy), Some(model)) = (with_proxy, &creds.proxy_url, &creds.model) {
        println!("Send inference through the gateway (OpenAI-compatible):");
        println!(
            "  KEY=$(python3 -c 'import json;print(json.load(open(\"{}\"))[\"api_key\"])')",
            path.display()
        );
        println!(
            "  curl -s {proxy}/v1/chat/completions -H \"Authorization: Bearer $KEY\" -H 'content-type: application/json' -d '{{\"model\":\"{model}\",\"messages\":[{{\"role\":\"user\",\"content\":\"hello\"}}]}}'"
        );
    }
    println!();
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; draining requests");
}
