//! `medgate`: the command line that wires the crates together. No business logic lives here.
#![forbid(unsafe_code)]

mod backup;
mod cli;
mod commands;
mod demo;
mod proxy;
mod secrets;

use clap::Parser;

/// mimalloc instead of glibc malloc: the proxy allocates small objects per request from
/// several threads, where glibc's arenas showed as ~15% of a saturated worker (benches/).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEDGATE_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=warn")
            }),
        )
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("medgate: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("medgate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
