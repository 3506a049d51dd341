//! Storage of settings sections: one JSON document per section in `system_settings`.
//! A section never written reads as its `Default`. A section type declares its name and the
//! partial update the API accepts ([`Section`]); [`update`] is the one read-modify-write.

use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::Row;

use crate::api::AuditTarget;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{self, Store, Tx};

/// One settings section: what is stored, and how an API update applies to it.
pub trait Section: Serialize + DeserializeOwned + Default + Send + Sync {
    /// The row's name in `system_settings`.
    const NAME: &'static str;
    /// The API's partial update (omitted fields keep their value).
    type Update: Send;

    /// Applies `update`, checking every field; nothing is applied when one is wrong.
    fn apply(&mut self, update: Self::Update, process: &medgate_config::Settings) -> ApiResult<()>;
}

/// The answer to a section update: the view, audited with the view and whether the update
/// set the section's write-only secret (`secret_flag`, e.g. `password_changed`), which the
/// view never shows.
pub fn updated<V: Serialize>(
    section: &str,
    view: V,
    secret_flag: &str,
    secret_changed: bool,
) -> axum::response::Response {
    let mut details = serde_json::to_value(&view).unwrap_or_default();
    details[secret_flag] = serde_json::Value::Bool(secret_changed);
    AuditTarget::new(section, None)
        .with_details(details)
        .attach(axum::Json(view))
}

/// The section in force.
pub async fn current<S: Section>(store: &Store) -> ApiResult<S> {
    Ok(load(store, S::NAME).await?)
}

/// Applies `update` to the stored section and writes it, in one transaction that holds the
/// section's row, so concurrent updates of one section serialize instead of losing one.
pub async fn update<S: Section>(state: &AppState, update: S::Update, actor: &str) -> ApiResult<S> {
    let mut tx = state.store().begin().await?;
    lock_section::<S>(&mut tx).await?;
    let mut current: S = load_tx(&mut tx, S::NAME).await?;
    current.apply(update, state.settings())?;
    save(&mut tx, S::NAME, &current, Some(actor)).await?;
    tx.commit().await?;
    Ok(current)
}

/// Creates the section's row (with `S::default()`, version 0) when it is missing and locks it
/// until `tx` ends (PostgreSQL's `ON CONFLICT DO UPDATE` takes the row lock; SQLite writers
/// are serialized anyway).
async fn lock_section<S: Section>(tx: &mut Tx) -> ApiResult<()> {
    let value = serde_json::to_string(&S::default()).map_err(ApiError::internal)?;
    sqlx::query(
        "INSERT INTO system_settings (name, value, version, updated_at, updated_by) \
         VALUES ($1, $2, 0, $3, NULL) \
         ON CONFLICT (name) DO UPDATE SET version = system_settings.version",
    )
    .bind(S::NAME)
    .bind(value)
    .bind(store::now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Reads section `name`, or its default when it was never written.
pub async fn load<T: DeserializeOwned + Default>(
    store: &Store,
    name: &str,
) -> Result<T, sqlx::Error> {
    let row = sqlx::query("SELECT value FROM system_settings WHERE name = $1")
        .bind(name)
        .fetch_optional(store.reader())
        .await?;
    decode(row.map(|r| r.get::<String, _>("value")))
}

/// Reads section `name` inside a transaction (for read-modify-write).
pub async fn load_tx<T: DeserializeOwned + Default>(
    tx: &mut Tx,
    name: &str,
) -> Result<T, sqlx::Error> {
    let row = sqlx::query("SELECT value FROM system_settings WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    decode(row.map(|r| r.get::<String, _>("value")))
}

/// Writes section `name` (already validated by the caller) in `tx`.
pub async fn save<T: Serialize>(
    tx: &mut Tx,
    name: &str,
    value: &T,
    by: Option<&str>,
) -> Result<(), sqlx::Error> {
    let json = serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query(
        "INSERT INTO system_settings (name, value, version, updated_at, updated_by) \
         VALUES ($1, $2, 1, $3, $4) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
         version = system_settings.version + 1, updated_at = excluded.updated_at, \
         updated_by = excluded.updated_by",
    )
    .bind(name)
    .bind(json)
    .bind(store::now())
    .bind(by)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn decode<T: DeserializeOwned + Default>(value: Option<String>) -> Result<T, sqlx::Error> {
    match value {
        None => Ok(T::default()),
        Some(v) => serde_json::from_str(&v).map_err(|e| sqlx::Error::Decode(Box::new(e))),
    }
}
