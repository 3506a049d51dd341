//! The in-process control plane.

use std::time::Duration;

use medgate_config::Settings;
use medgate_control_plane::{AppState, JwtKeys, Role};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::Client;

pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which store a stack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running control plane; stops (and drops its database) when dropped.
pub struct Stack {
    pub base_url: String,
    pub backend: Backend,
    pub database_url: String,
    pub state: AppState,
    pub keys: JwtKeys,
    pub data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<()>>,
    pg_database: Option<(String, String)>,
}

impl Stack {
    /// Starts on `backend`; panics when it cannot (use `start_postgres_or_skip` for PG).
    pub async fn start(backend: Backend) -> Stack {
        match backend {
            Backend::Sqlite => Self::start_with(None, |_| {}).await,
            Backend::Postgres => {
                let (url, admin, name) = fresh_pg_database().await.expect("PostgreSQL reachable");
                Self::start_with(Some((url, admin, name)), |_| {}).await
            }
        }
    }

    /// Starts on a fresh PostgreSQL database, or returns None (printing why) when PostgreSQL
    /// is unreachable and not required.
    pub async fn start_postgres_or_skip(test: &str) -> Option<Stack> {
        match fresh_pg_database().await {
            Ok(db) => Some(Self::start_with(Some(db), |_| {}).await),
            Err(e) => {
                if std::env::var("MEDGATE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                    panic!(
                        "PostgreSQL is required (MEDGATE_REQUIRE_POSTGRES=1) but unreachable: {e}"
                    );
                }
                eprintln!("SKIP postgres::{test}: PostgreSQL unreachable ({e})");
                None
            }
        }
    }

    /// Starts on SQLite with adjusted settings.
    pub async fn start_sqlite_with(adjust: impl FnOnce(&mut Settings)) -> Stack {
        Self::start_with(None, adjust).await
    }

    /// Starts on `backend` with adjusted settings; None (printing why) when PostgreSQL is
    /// unreachable and not required, as for [`both_backends!`](crate::both_backends).
    pub async fn start_backend_with(
        backend: Backend,
        test: &str,
        adjust: impl FnOnce(&mut Settings),
    ) -> Option<Stack> {
        match backend {
            Backend::Sqlite => Some(Self::start_with(None, adjust).await),
            Backend::Postgres => match fresh_pg_database().await {
                Ok(db) => Some(Self::start_with(Some(db), adjust).await),
                Err(e) => {
                    if std::env::var("MEDGATE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                        panic!("PostgreSQL is required (MEDGATE_REQUIRE_POSTGRES=1) but unreachable: {e}");
                    }
                    eprintln!("SKIP postgres::{test}: PostgreSQL unreachable ({e})");
                    None
                }
            },
        }
    }

    async fn start_with(
        pg: Option<(String, String, String)>,
        adjust: impl FnOnce(&mut Settings),
    ) -> Stack {
        let data_dir = tempfile::tempdir().expect("tempdir");
        let mut settings = Settings {
            data_dir: data_dir.path().to_owned(),
            ..Settings::default()
        };
        settings.api.listen = "127.0.0.1:0".parse().expect("addr");
        settings.auth.jwt_secret = Some(TEST_JWT_SECRET.into());
        let backend = if pg.is_some() {
            Backend::Postgres
        } else {
            Backend::Sqlite
        };
        let pg_database = pg
            .as_ref()
            .map(|(_, admin, name)| (admin.clone(), name.clone()));
        if let Some((url, _, _)) = &pg {
            settings.database_url = url.clone();
        }
        adjust(&mut settings);
        let database_url = settings.effective_database_url();
        let state = medgate_control_plane::open(&settings, Some(TEST_JWT_SECRET))
            .await
            .expect("control plane opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        let serve_state = state.clone();
        let serving = tokio::spawn(async move {
            let _ = medgate_control_plane::serve(serve_state, listener, async {
                let _ = rx.await;
            })
            .await;
        });
        Stack {
            base_url,
            backend,
            database_url,
            state,
            keys: JwtKeys::hs256(TEST_JWT_SECRET.as_bytes(), "medgate"),
            data_dir,
            shutdown: Some(tx),
            serving: Some(serving),
            pg_database,
        }
    }

    /// Stops the control plane the way it stops cleanly (API drained, job leases released,
    /// connections closed); the database stays until the stack is dropped.
    pub async fn stop_serving(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(serving) = self.serving.take() {
            let _ = serving.await;
        }
        self.state.store().close().await;
    }

    /// A token for `role` (tenant roles need `tenant`).
    pub fn token(&self, role: Role, tenant: Option<&str>) -> String {
        self.keys
            .issue(
                &format!("test-{}", role.as_str()),
                role,
                tenant,
                Duration::from_secs(600),
            )
            .expect("token")
    }

    /// Client without a token.
    pub fn anonymous(&self) -> Client {
        Client::new(&self.base_url, None)
    }

    /// Client with a platform admin token.
    pub fn admin(&self) -> Client {
        Client::new(&self.base_url, Some(self.token(Role::PlatformAdmin, None)))
    }

    /// Client with a token of `role` for `tenant`.
    pub fn as_role(&self, role: Role, tenant: Option<&str>) -> Client {
        Client::new(&self.base_url, Some(self.token(role, tenant)))
    }

    /// Creates a plan and returns its id.
    pub async fn create_plan(&self, name: &str) -> String {
        let r = self
            .admin()
            .post(
                "/api/tenant-plans",
                json!({ "name": name, "quotas": { "requests_per_minute": 60 } }),
            )
            .await;
        assert_eq!(r.status, 201, "create plan: {}", r.text);
        r.json["id"].as_str().expect("id").to_owned()
    }

    /// Creates an active tenant and returns its JSON.
    pub async fn create_active_tenant(&self, code: &str) -> Value {
        let admin = self.admin();
        let r = admin
            .post(
                "/api/tenants",
                json!({ "name": format!("Tenant {code}"), "code": code }),
            )
            .await;
        assert_eq!(r.status, 201, "create tenant: {}", r.text);
        let id = r.json["id"].as_str().expect("id").to_owned();
        let r = admin
            .post(&format!("/api/tenants/{id}/activate"), Value::Null)
            .await;
        assert_eq!(r.status, 200, "activate: {}", r.text);
        r.json
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some((admin, name)) = self.pg_database.take() {
            // Best effort: a fresh runtime on another thread, since Drop cannot await.
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(async move {
                        if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                            let _ = sqlx::query(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .execute(&pool)
                            .await;
                            pool.close().await;
                        }
                    });
                }
            })
            .join();
        }
    }
}

/// Creates an empty database; returns (its URL, the admin URL, its name).
async fn fresh_pg_database() -> Result<(String, String, String), String> {
    let admin =
        std::env::var("MEDGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned());
    let pool = tokio::time::timeout(Duration::from_secs(5), sqlx::PgPool::connect(&admin))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let name = format!("medgate_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .map_err(|e| e.to_string())?;
    pool.close().await;
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_owned())
        .ok_or("bad URL")?;
    Ok((format!("{base}/{name}"), admin, name))
}
