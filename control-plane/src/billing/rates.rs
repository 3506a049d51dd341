//! Versioned model rates (API §2.2 `GET`/`PUT /api/billing/rates`).
//!
//! A rate is never edited: `PUT` appends a new version per model, effective from a time that
//! is not in the past (a past one would reprice usage already billed). The rate of a usage
//! event is the version of its model with the latest `effective_from <= occurred_at`, and the
//! event keeps the id of that version (`usage_events.rate_id`), so later versions never change
//! what was billed.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::money::{is_currency, DEFAULT_CURRENCY};
use crate::api::pagination::Page;
use crate::api::parse_time;
use crate::error::{ApiError, ApiResult};
use crate::models::Model;
use crate::resource;
use crate::store::filter::{Bind, Where};
use crate::store::{self, Store, Tx};

/// Most rates in one `PUT`.
pub const MAX_RATES_PER_PUT: usize = 500;

/// One version of a model's rate. Prices are in micros (millionths of a minor unit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ModelRate {
    pub id: String,
    pub model_id: String,
    pub currency: String,
    pub input_per_1k_micros: i64,
    pub output_per_1k_micros: i64,
    pub per_request_micros: i64,
    /// Usage that occurred at or after this time (and before the next version) is priced with
    /// this version.
    pub effective_from: String,
    pub created_at: String,
    pub created_by: Option<String>,
}

/// One rate to append.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateInput {
    pub model_id: String,
    /// ISO 4217; default `CNY`.
    pub currency: Option<String>,
    pub input_per_1k_micros: i64,
    pub output_per_1k_micros: i64,
    #[serde(default)]
    pub per_request_micros: i64,
    /// RFC 3339, not in the past; default now.
    pub effective_from: Option<String>,
}

/// Body of `PUT /api/billing/rates`: new versions, appended in one transaction.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RatesUpdate {
    pub rates: Vec<RateInput>,
}

/// Query of `GET /api/billing/rates`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RatesQuery {
    /// Every version of this model (oldest first), scheduled ones included.
    pub model_id: Option<String>,
    /// The rates in force at this RFC 3339 time instead of now.
    pub at: Option<String>,
    pub page: Option<u32>,
    pub page_size: Option<u32>,
}

const COLUMNS: &str = "id, model_id, currency, input_per_1k_micros, output_per_1k_micros, \
    per_request_micros, effective_from, created_at, created_by";

/// Checks the inputs and appends them in one transaction; the whole list or nothing. 404 for
/// an unknown model, 422 for a bad price or a past `effective_from`, 409 when the model
/// already has a version at that time.
pub async fn append(
    store: &Store,
    inputs: Vec<RateInput>,
    actor: &str,
) -> ApiResult<Vec<ModelRate>> {
    if inputs.is_empty() || inputs.len() > MAX_RATES_PER_PUT {
        return Err(ApiError::invalid(
            "rates",
            format!("must list 1 to {MAX_RATES_PER_PUT} rates"),
        ));
    }
    let now = store::now();
    let mut rates = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.into_iter().enumerate() {
        rates.push(checked(i, input, &now, actor)?);
    }
    for rate in &rates {
        if resource::load::<Model>(store, &rate.model_id)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("model", rate.model_id.clone()));
        }
    }
    let mut tx = store.begin().await?;
    for rate in &rates {
        insert(&mut tx, rate).await?;
    }
    // The snapshot carries the rate in force of each model.
    store::bump_config_version(&mut tx).await?;
    tx.commit().await?;
    Ok(rates)
}

fn checked(i: usize, input: RateInput, now: &str, actor: &str) -> ApiResult<ModelRate> {
    let field = |name: &str| format!("rates[{i}].{name}");
    crate::validate::plain_id(&field("model_id"), &input.model_id, 128)?;
    let currency = input
        .currency
        .unwrap_or_else(|| DEFAULT_CURRENCY.to_owned());
    if !is_currency(&currency) {
        return Err(ApiError::invalid(
            &field("currency"),
            "must be an ISO 4217 code",
        ));
    }
    for (name, value) in [
        ("input_per_1k_micros", input.input_per_1k_micros),
        ("output_per_1k_micros", input.output_per_1k_micros),
        ("per_request_micros", input.per_request_micros),
    ] {
        if value < 0 {
            return Err(ApiError::invalid(&field(name), "must not be negative"));
        }
    }
    let effective_from = match input.effective_from {
        None => now.to_owned(),
        Some(t) => {
            let t = parse_time(&field("effective_from"), &t)?;
            if t.as_str() < now {
                return Err(ApiError::invalid(
                    &field("effective_from"),
                    "must not be in the past (it would reprice usage already billed)",
                ));
            }
            t
        }
    };
    Ok(ModelRate {
        id: store::new_id("rate"),
        model_id: input.model_id,
        currency,
        input_per_1k_micros: input.input_per_1k_micros,
        output_per_1k_micros: input.output_per_1k_micros,
        per_request_micros: input.per_request_micros,
        effective_from,
        created_at: now.to_owned(),
        created_by: Some(actor.to_owned()),
    })
}

async fn insert(tx: &mut Tx, rate: &ModelRate) -> ApiResult<()> {
    let result = sqlx::query(&format!(
        "INSERT INTO model_rates ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(rate.id.clone())
    .bind(rate.model_id.clone())
    .bind(rate.currency.clone())
    .bind(rate.input_per_1k_micros)
    .bind(rate.output_per_1k_micros)
    .bind(rate.per_request_micros)
    .bind(rate.effective_from.clone())
    .bind(rate.created_at.clone())
    .bind(rate.created_by.clone())
    .execute(&mut **tx)
    .await;
    match result {
        Ok(_) => Ok(()),
        Err(e) if store::is_unique_violation(&e) => Err(ApiError::conflict(
            "rate_exists",
            format!(
                "model {} already has a rate effective from {}",
                rate.model_id, rate.effective_from
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// One page of rates: the history of `q.model_id` (oldest first), or the rates in force at
/// `q.at` (default now), one per model, by model id.
pub async fn list(
    store: &Store,
    q: &RatesQuery,
    page: u32,
    size: u32,
) -> ApiResult<Page<ModelRate>> {
    let mut w = Where::new();
    match &q.model_id {
        Some(model) => {
            w.eq_text("r.model_id", Some(model));
            if let Some(at) = &q.at {
                w.push(
                    "r.effective_from <= ?",
                    vec![Bind::Text(parse_time("at", at)?)],
                );
            }
        }
        None => {
            let at = match &q.at {
                Some(at) => parse_time("at", at)?,
                None => store::now(),
            };
            w.push(
                "r.effective_from <= ? AND NOT EXISTS (SELECT 1 FROM model_rates n \
                 WHERE n.model_id = r.model_id AND n.effective_from <= ? \
                 AND n.effective_from > r.effective_from)",
                vec![Bind::Text(at.clone()), Bind::Text(at)],
            );
        }
    }
    let where_sql = w.sql();
    let total: i64 = w
        .bind_scalar(sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM model_rates r WHERE {where_sql}"
        )))
        .fetch_one(store.reader())
        .await?;
    let offset = i64::from(page - 1) * i64::from(size);
    let rows = w
        .bind(sqlx::query(&format!(
            "SELECT {COLUMNS} FROM model_rates r WHERE {where_sql} \
             ORDER BY r.model_id, r.effective_from LIMIT {size} OFFSET {offset}"
        )))
        .fetch_all(store.reader())
        .await?;
    Ok(Page {
        items: rows.iter().map(rate_of).collect::<Result<_, _>>()?,
        total: u64::try_from(total).unwrap_or_default(),
        page,
        page_size: size,
    })
}

/// Every version of the given models, by model and `effective_from` (for pricing a batch).
pub async fn versions_of(tx: &mut Tx, model_ids: &[&str]) -> ApiResult<Vec<ModelRate>> {
    if model_ids.is_empty() {
        return Ok(Vec::new());
    }
    let params: Vec<String> = (1..=model_ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {COLUMNS} FROM model_rates WHERE model_id IN ({}) \
         ORDER BY model_id, effective_from",
        params.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for id in model_ids {
        query = query.bind((*id).to_owned());
    }
    let rows = query.fetch_all(&mut **tx).await?;
    Ok(rows.iter().map(rate_of).collect::<Result<_, _>>()?)
}

fn rate_of(row: &AnyRow) -> Result<ModelRate, sqlx::Error> {
    Ok(ModelRate {
        id: row.try_get("id")?,
        model_id: row.try_get("model_id")?,
        currency: row.try_get("currency")?,
        input_per_1k_micros: row.try_get("input_per_1k_micros")?,
        output_per_1k_micros: row.try_get("output_per_1k_micros")?,
        per_request_micros: row.try_get("per_request_micros")?,
        effective_from: row.try_get("effective_from")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

/// How many of a model's latest rate versions the snapshot carries: the one in force and
/// those scheduled after it, in practice (the data plane picks by its clock).
pub const SNAPSHOT_VERSIONS: usize = 3;

/// The latest [`SNAPSHOT_VERSIONS`] versions of every model's rate, oldest first, as the
/// data plane needs them. A function of the store alone (no clock), like the whole snapshot.
pub async fn snapshot_entries(
    store: &Store,
) -> ApiResult<std::collections::HashMap<String, Vec<medgate_config::RateEntry>>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM model_rates ORDER BY model_id, effective_from"
    ))
    .fetch_all(store.reader())
    .await?;
    let mut out: std::collections::HashMap<String, Vec<medgate_config::RateEntry>> =
        std::collections::HashMap::new();
    for row in &rows {
        let rate = rate_of(row)?;
        out.entry(rate.model_id.clone())
            .or_default()
            .push(medgate_config::RateEntry {
                effective_from: rate.effective_from,
                currency: rate.currency,
                input_per_1k_micros: rate.input_per_1k_micros,
                output_per_1k_micros: rate.output_per_1k_micros,
                per_request_micros: rate.per_request_micros,
            });
    }
    for versions in out.values_mut() {
        let skip = versions.len().saturating_sub(SNAPSHOT_VERSIONS);
        versions.drain(..skip);
    }
    Ok(out)
}
