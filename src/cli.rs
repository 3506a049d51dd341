//! Command-line flags. Names and flags here are the operator's interface: keep them stable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "medgate",
    version,
    about = "Multi-tenant LLM gateway and management plane for medical SaaS"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the control plane and the proxy in one process (embedded SQLite by default).
    Serve(ServeArgs),
    /// Run the control plane (management API) alone.
    ControlPlane(ServeArgs),
    /// Run the proxy (data plane) alone.
    Proxy(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(CommonArgs),
    /// Mint management tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Audit trail tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Back up the database now, or restore a backup.
    #[command(subcommand)]
    Backup(BackupCommand),
}

/// Flags shared by every command that opens the store.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// YAML settings file (environment variables MEDGATE_* override it).
    #[arg(long, short = 'c')]
    pub config: Option<PathBuf>,
    /// Data directory (SQLite database, generated secrets, demo credentials).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Management API listen address (default 127.0.0.1:8081).
    #[arg(long)]
    pub api_listen: Option<SocketAddr>,
    /// Proxy listen address (default 127.0.0.1:8080).
    #[arg(long)]
    pub proxy_listen: Option<SocketAddr>,
    /// Seed a demo tenant and write <data-dir>/demo-credentials.json (generates a JWT secret if none is set).
    #[arg(long)]
    pub demo: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a signed JWT for the management API.
    Issue {
        #[command(flatten)]
        common: CommonArgs,
        /// platform_admin, tenant_admin, tenant_viewer, auditor or node.
        #[arg(long)]
        role: String,
        /// Tenant id (required for tenant_admin and tenant_viewer).
        #[arg(long)]
        tenant: Option<String>,
        /// Lifetime, e.g. 1h, 30m, 7d.
        #[arg(long, default_value = "1h")]
        ttl: humantime::Duration,
        /// Subject recorded in audit entries.
        #[arg(long, default_value = "cli")]
        subject: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a settings file (with the current MEDGATE_* environment applied).
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; exits 1 and names the first broken entry if any.
    Verify(CommonArgs),
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Write a backup now (also while the server runs) and print its path.
    Now {
        #[command(flatten)]
        common: CommonArgs,
        /// Directory to write to (default: the backup settings' directory, else
        /// <data-dir>/backups).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Replace the database with a backup (stop medgate first; the replaced database is kept).
    Restore {
        #[command(flatten)]
        common: CommonArgs,
        /// A backup file: medgate-*.sqlite (SQLite) or medgate-*.dump (PostgreSQL).
        file: PathBuf,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}
