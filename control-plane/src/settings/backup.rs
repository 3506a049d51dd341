//! `/api/settings/backup`: the backup settings (schedule, directory, retention, `pg_dump`
//! path), running a backup now, and the history of runs. Platform admins only; writes are
//! audited by the API guard. The backup job itself is in [`crate::backup`].

use std::path::PathBuf;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::store as settings_store;
use crate::api::extract::{ApiJson, ApiQuery};
use crate::api::pagination::{Page, PageQuery};
use crate::api::{ApiBuilder, AuditTarget, Endpoint};
use crate::auth::{Access, Principal};
use crate::backup::{self, BackupError, BackupRun, BackupSettings, Job, RunStatus, Trigger};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::Backend;

const PATH: &str = "/api/settings/backup";
const RUN: &str = "/api/settings/backup/run";
const RUNS: &str = "/api/settings/backup/runs";

/// The backup settings with what follows from them.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BackupSettingsView {
    #[serde(flatten)]
    pub settings: BackupSettings,
    /// `sqlite` or `postgres`: what a backup copies.
    pub backend: String,
    /// The directory backups go to on the control plane that answered.
    pub effective_directory: String,
    /// When the next scheduled backup is expected (null while disabled).
    pub next_run_at: Option<String>,
    /// The latest run, whatever its outcome.
    pub last_run: Option<BackupRun>,
}

/// Body of `PUT /api/settings/backup`: omitted fields keep their value.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupSettingsInput {
    /// Whether scheduled backups run.
    pub enabled: Option<bool>,
    /// 1, 2, 3, 4, 6, 8, 12, 24, 48, 72, 96, 120, 144 or 168.
    pub interval_hours: Option<u32>,
    /// UTC time of day (`HH:MM`) the schedule is anchored at.
    pub at: Option<String>,
    /// Absolute directory (created when missing; must be writable); `null` for
    /// `<data_dir>/backups`.
    #[serde(default, deserialize_with = "crate::api::extract::present")]
    pub directory: Option<Option<String>>,
    /// Backups kept, 1 to 365.
    pub retention_count: Option<u32>,
    /// Absolute path of an executable `pg_dump`; `null` looks it up on `PATH`.
    #[serde(default, deserialize_with = "crate::api::extract::present")]
    pub pg_dump_path: Option<Option<String>>,
}

impl settings_store::Section for BackupSettings {
    const NAME: &'static str = backup::SECTION;
    type Update = BackupSettingsInput;

    fn apply(
        &mut self,
        update: BackupSettingsInput,
        _: &medgate_config::Settings,
    ) -> ApiResult<()> {
        update.apply(self);
        self.validate()
            .map_err(|e| ApiError::invalid(e.field, e.message))
    }
}

impl BackupSettingsInput {
    fn apply(&self, to: &mut BackupSettings) {
        if let Some(v) = self.enabled {
            to.enabled = v;
        }
        if let Some(v) = self.interval_hours {
            to.interval_hours = v;
        }
        if let Some(v) = &self.at {
            to.at = v.clone();
        }
        if let Some(v) = &self.directory {
            to.directory = v.clone();
        }
        if let Some(v) = self.retention_count {
            to.retention_count = v;
        }
        if let Some(v) = &self.pg_dump_path {
            to.pg_dump_path = v.clone();
        }
    }
}

/// Query of `GET /api/settings/backup/runs`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRunsQuery {
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1 to 500 (default 50).
    pub page_size: Option<u32>,
    /// `running`, `succeeded` or `failed`.
    pub status: Option<String>,
}

pub fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(PATH, "settings.get_backup", "Get the backup settings")
            .access(Access::PlatformAdmin)
            .resource("backup_settings")
            .response::<BackupSettingsView>(),
        get,
    )
    .add(
        Endpoint::put(
            PATH,
            "settings.update_backup",
            "Update the backup settings (omitted fields keep their value)",
        )
        .access(Access::PlatformAdmin)
        .resource("backup_settings")
        .request::<BackupSettingsInput>()
        .response::<BackupSettingsView>(),
        update,
    )
    .add(
        Endpoint::post(
            RUN,
            "settings.run_backup",
            "Take a backup now (answers when it is written; 422 with the failed run otherwise)",
        )
        .access(Access::PlatformAdmin)
        .resource("backup_run")
        .response::<BackupRun>()
        .status(201),
        run_now,
    )
    .add(
        Endpoint::get(
            RUNS,
            "settings.list_backup_runs",
            "List backup runs, newest first (failures included)",
        )
        .access(Access::PlatformAdmin)
        .resource("backup_run")
        .query::<BackupRunsQuery>()
        .response::<Page<BackupRun>>(),
        list_runs,
    )
}

async fn view(state: &AppState, settings: BackupSettings) -> ApiResult<BackupSettingsView> {
    let store = state.store();
    Ok(BackupSettingsView {
        backend: backup::backend_name(store.backend()).to_owned(),
        effective_directory: settings
            .effective_directory(&state.settings().data_dir)
            .display()
            .to_string(),
        next_run_at: backup::next_run_at(store, &settings, Utc::now()).await?,
        last_run: backup::last_run(store).await?,
        settings,
    })
}

async fn get(State(state): State<AppState>) -> ApiResult<Json<BackupSettingsView>> {
    let settings = backup::load_settings(state.store()).await?;
    Ok(Json(view(&state, settings).await?))
}

async fn update(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(input): ApiJson<BackupSettingsInput>,
) -> ApiResult<Response> {
    // Validate the result of the change first, file system included (outside the write
    // transaction: a slow disk must not hold the store's writer).
    let mut wanted = backup::load_settings(state.store()).await?;
    input.apply(&mut wanted);
    check(&state, &wanted).await?;

    let settings: BackupSettings =
        settings_store::update(&state, input, &principal.subject).await?;
    let details = serde_json::to_value(&settings).unwrap_or_default();
    let target = AuditTarget::new(backup::SECTION, None).with_details(details);
    Ok(target.attach(Json(view(&state, settings).await?)))
}

/// Every rule, then the directory (created, written to) and the `pg_dump` executable.
async fn check(state: &AppState, settings: &BackupSettings) -> ApiResult<()> {
    settings
        .validate()
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    let field = if settings.directory.is_some() {
        "directory"
    } else {
        "directory (default <data_dir>/backups)"
    };
    let dir = settings.effective_directory(&state.settings().data_dir);
    let pg_dump = settings.pg_dump_path.clone().map(PathBuf::from);
    let needs_pg_dump = state.store().backend() == Backend::Postgres && settings.enabled;
    let problem = tokio::task::spawn_blocking(move || {
        if let Err(e) = backup::check_directory(&dir) {
            return Some((field, e));
        }
        match pg_dump {
            Some(path) => backup::check_executable(&path)
                .err()
                .map(|e| ("pg_dump_path", e)),
            None if needs_pg_dump && find_on_path("pg_dump").is_none() => Some((
                "pg_dump_path",
                "pg_dump is not on PATH: install the PostgreSQL client tools or set \
                 pg_dump_path"
                    .to_owned(),
            )),
            None => None,
        }
    })
    .await
    .map_err(ApiError::internal)?;
    match problem {
        Some((field, message)) => Err(ApiError::invalid(field, message)),
        None => Ok(()),
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| backup::check_executable(p).is_ok())
}

async fn run_now(State(state): State<AppState>, principal: Principal) -> ApiResult<Response> {
    let settings = backup::load_settings(state.store()).await?;
    let task_state = state.clone();
    let actor = principal.subject.clone();
    // In its own task: a client that hangs up does not cancel a backup half-way.
    let outcome = tokio::spawn(async move {
        let url = task_state.settings().effective_database_url();
        let job = Job {
            store: task_state.store(),
            database_url: &url,
            data_dir: &task_state.settings().data_dir,
            record: true,
        };
        backup::run(&job, &settings, Trigger::Manual { actor }, None).await
    })
    .await
    .map_err(ApiError::internal)?;
    let run =
        match outcome {
            Ok(run) => run,
            Err(BackupError::Busy) => return Err(ApiError::conflict(
                "backup_running",
                "a backup of this database is already running; see GET /api/settings/backup/runs",
            )),
            Err(BackupError::SlotTaken(slot)) => {
                return Err(ApiError::internal(format!("manual run got slot {slot}")))
            }
            Err(BackupError::Db(e)) => return Err(e.into()),
        };
    let target = AuditTarget::new(&run.id, None).with_details(json!({
        "status": run.status,
        "file_name": run.file_name,
        "directory": run.directory,
    }));
    if run.status == RunStatus::Succeeded {
        return Ok(target.attach((StatusCode::CREATED, Json(run))));
    }
    let message = format!(
        "the backup failed: {}",
        run.error.as_deref().unwrap_or("unknown error")
    );
    let error = ApiError::Unprocessable {
        code: "backup_failed",
        message,
        details: json!({ "run": run }),
    };
    Ok(target.attach(error.into_response()))
}

async fn list_runs(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<BackupRunsQuery>,
) -> ApiResult<Json<Page<BackupRun>>> {
    let (page, size) = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .resolve()?;
    let status =
        match q.status.as_deref() {
            None => None,
            Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("status", "must be running, succeeded or failed")
            })?),
        };
    Ok(Json(
        backup::list_runs(state.store(), status, page, size).await?,
    ))
}
