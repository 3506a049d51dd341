//! The store: sqlx over SQLite (embedded default, WAL) or PostgreSQL (clusters), one code path
//! through sqlx's `Any` driver with portable SQL (`$n` placeholders work on both).
//!
//! SQLite allows one writer at a time; write transactions therefore go through a pool of one
//! connection, so they queue in-process instead of failing with SQLITE_BUSY, while reads use
//! a separate pool and run concurrently under WAL.

pub mod filter;
pub mod resources;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub use resources::{ResourceFilter, ResourceRow};

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database handle shared by every module.
#[derive(Debug, Clone)]
pub struct Store {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
}

pub type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL (use sqlite:// or postgres://)")]
    UnsupportedUrl,
}

/// The `application_name` of medgate's PostgreSQL sessions (unless the URL names another):
/// how a restore finds control planes still using the database.
pub const PG_APPLICATION_NAME: &str = "medgate";

/// `url` with `application_name` set, unless it sets one.
fn with_application_name(url: &str) -> String {
    if url.contains("application_name=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}application_name={PG_APPLICATION_NAME}")
}

impl Store {
    /// Opens the database behind `url`. Does not run migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let options = match backend {
            Backend::Sqlite => AnyConnectOptions::from_str(url)?,
            Backend::Postgres => AnyConnectOptions::from_str(&with_application_name(url))?,
        };
        let store = match backend {
            Backend::Sqlite => {
                let write = sqlite_pool(1).connect_with(options.clone()).await?;
                let read = sqlite_pool(8).connect_with(options).await?;
                Self {
                    read,
                    write,
                    backend,
                }
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                Self {
                    read: pool.clone(),
                    write: pool,
                    backend,
                }
            }
        };
        Ok(store)
    }

    /// Applies the migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::migrate!("./migrations/sqlite")
                    .run(&self.write)
                    .await?
            }
            Backend::Postgres => {
                sqlx::migrate!("./migrations/postgres")
                    .run(&self.write)
                    .await?
            }
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Pool for reads outside transactions.
    pub fn reader(&self) -> &AnyPool {
        &self.read
    }

    /// Starts a write transaction.
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        self.write.begin().await
    }

    /// Cheap reachability check for health endpoints.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map(|_| ())
    }

    /// Closes every connection of both pools.
    pub async fn close(&self) {
        for pool in [&self.read, &self.write] {
            // A connection handed back while `close` runs can stay idle in the closed pool
            // (sqlx 0.8 closes only what is idle when it looks); closing again closes it.
            for _ in 0..10 {
                pool.close().await;
                if pool.size() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// The current snapshot version.
    pub async fn config_version(&self) -> Result<u64, sqlx::Error> {
        let v: i64 = sqlx::query_scalar("SELECT version FROM config_version WHERE id = 1")
            .fetch_one(&self.read)
            .await?;
        Ok(u64::try_from(v).unwrap_or_default())
    }
}

/// Bumps the snapshot version inside a transaction that changed snapshot content.
pub async fn bump_config_version(tx: &mut Tx) -> Result<u64, sqlx::Error> {
    let v: i64 = sqlx::query_scalar(
        "UPDATE config_version SET version = version + 1 WHERE id = 1 RETURNING version",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(u64::try_from(v).unwrap_or_default())
}

fn sqlite_pool(max: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")
                    .await?;
                Ok(())
            })
        })
}

/// Timestamps as stored: RFC 3339, UTC, microseconds, fixed width.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Now, as stored.
pub fn now() -> String {
    timestamp(Utc::now())
}

/// Whether an error is a unique-constraint violation (SQLite and PostgreSQL).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db
                    .code()
                    .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
        }
        _ => false,
    }
}

/// A fresh opaque id with a readable prefix, e.g. `tnt_0193...`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}
