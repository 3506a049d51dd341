//! The live state of each rule, its transitions and their deliveries (tables of
//! `0006_alerts.sql`).
//!
//! A transition is decided by a compare-and-set on `(state, revision)` inside the transaction
//! that also appends its event and its `pending` deliveries: of any number of evaluators that
//! see the same change at once, exactly one writes it and notifies.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::model::AlertRule;
use crate::error::ApiResult;
use crate::store::filter::{Bind, Where};
use crate::store::{self, Store};

/// How many transitions `GET /api/alerts/{id}` shows.
pub const HISTORY_LIMIT: i64 = 50;

/// Whether a rule's condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Ok,
    Firing,
}

impl AlertState {
    fn as_str(self) -> &'static str {
        match self {
            AlertState::Ok => "ok",
            AlertState::Firing => "firing",
        }
    }

    fn parse(text: &str) -> AlertState {
        if text == "firing" {
            AlertState::Firing
        } else {
            AlertState::Ok
        }
    }
}

/// A rule's state as the evaluator last left it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct LiveState {
    pub state: AlertState,
    /// When the rule entered this state (or was first evaluated); None before that.
    pub since: Option<String>,
    /// The metric's value at the last evaluation.
    pub last_value: Option<f64>,
    pub evaluated_at: Option<String>,
}

impl LiveState {
    /// A rule never evaluated yet.
    pub fn unknown() -> Self {
        Self {
            state: AlertState::Ok,
            since: None,
            last_value: None,
            evaluated_at: None,
        }
    }
}

/// One transition, as appended by the evaluator that won it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct AlertEvent {
    /// Also sent as `X-Medgate-Event-Id`.
    pub event_id: String,
    /// `fired` or `resolved`.
    pub kind: String,
    pub value: f64,
    pub threshold: f64,
    pub at: String,
    /// The latest outcome per channel (`webhook`, `email:<address>`).
    pub deliveries: Vec<Delivery>,
}

/// The outcome of notifying one channel of one transition.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Delivery {
    pub channel: String,
    /// Webhook: `pending` (being sent, or the sender stopped mid-way), `delivered` or
    /// `failed`. E-mail: `queued` (in the notifier's outbox), `retrying` (an attempt failed,
    /// see `error`; the notifier tries again with backoff), `delivered` or `failed` (gave up;
    /// `POST /api/notifications/{id}/retry` queues it again).
    pub outcome: String,
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub at: String,
}

/// Records one evaluation of `rule`: its value, and, when `wanted` differs from the stored
/// state, the transition. Returns the event when this call made the transition; None when the
/// state already was `wanted` or another evaluator made it first.
pub async fn record(
    store: &Store,
    rule: &AlertRule,
    wanted: AlertState,
    value: f64,
    now: &str,
) -> ApiResult<Option<AlertEvent>> {
    let mut tx = store.begin().await?;
    // Creating the row and setting the value in one statement also takes the row's lock on
    // PostgreSQL, so the read below sees any transition another evaluator committed.
    sqlx::query(
        "INSERT INTO alert_states (rule_id, tenant_id, state, revision, since, last_value, \
         evaluated_at) VALUES ($1, $2, 'ok', 0, $3, $4, $3) ON CONFLICT (rule_id) DO UPDATE \
         SET last_value = excluded.last_value, evaluated_at = excluded.evaluated_at",
    )
    .bind(rule.id.clone())
    .bind(rule.tenant_id.clone())
    .bind(now.to_owned())
    .bind(value)
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query("SELECT state, revision FROM alert_states WHERE rule_id = $1")
        .bind(rule.id.clone())
        .fetch_one(&mut *tx)
        .await?;
    let current = AlertState::parse(&row.try_get::<String, _>("state")?);
    let revision: i64 = row.try_get("revision")?;
    if current == wanted {
        tx.commit().await?;
        return Ok(None);
    }
    let won = sqlx::query(
        "UPDATE alert_states SET state = $1, revision = revision + 1, since = $2 \
         WHERE rule_id = $3 AND state = $4 AND revision = $5",
    )
    .bind(wanted.as_str())
    .bind(now.to_owned())
    .bind(rule.id.clone())
    .bind(current.as_str())
    .bind(revision)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !won {
        tx.rollback().await?;
        return Ok(None);
    }
    let event = AlertEvent {
        event_id: store::new_id("evt"),
        kind: if wanted == AlertState::Firing {
            "fired"
        } else {
            "resolved"
        }
        .into(),
        value,
        threshold: rule.threshold,
        at: now.to_owned(),
        deliveries: Vec::new(),
    };
    sqlx::query(
        "INSERT INTO alert_events (id, rule_id, tenant_id, kind, value, threshold, revision, \
         occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(event.event_id.clone())
    .bind(rule.id.clone())
    .bind(rule.tenant_id.clone())
    .bind(event.kind.clone())
    .bind(value)
    .bind(rule.threshold)
    .bind(revision + 1)
    .bind(now.to_owned())
    .execute(&mut *tx)
    .await?;
    let mut channels: Vec<(String, &str)> = Vec::new();
    if rule.webhook_url.is_some() {
        channels.push(("webhook".into(), "pending"));
    }
    for email in &rule.emails {
        channels.push((format!("email:{email}"), "queued"));
    }
    for (channel, outcome) in channels {
        insert_delivery(&mut tx, &event.event_id, &channel, outcome, 0, None, None).await?;
    }
    if !rule.emails.is_empty() {
        // E-mail goes through the notifier's outbox, in this transaction: the transition and
        // its e-mail exist together or not at all. The notifier appends the outcomes here.
        let payload = serde_json::json!({
            "event_id": event.event_id,
            "alert_id": rule.id,
            "name": rule.name,
            "tenant_id": rule.tenant_id,
            "metric": rule.metric.as_str(),
            "state": if wanted == AlertState::Firing { "firing" } else { "resolved" },
            "value": value,
            "threshold": rule.threshold,
            "at": now,
            "emails": rule.emails,
        });
        crate::notifier::enqueue(
            &mut tx,
            rule.tenant_id.as_deref(),
            crate::notifier::ALERT_KIND,
            &format!("{}:{}", crate::notifier::ALERT_KIND, event.event_id),
            &payload,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Some(event))
}

/// Appends the outcome of delivering `event_id` to `channel`.
pub async fn record_delivery(
    store: &Store,
    event_id: &str,
    channel: &str,
    outcome: &str,
    attempts: u32,
    status_code: Option<u16>,
    error: Option<String>,
) -> ApiResult<()> {
    let mut tx = store.begin().await?;
    insert_delivery(
        &mut tx,
        event_id,
        channel,
        outcome,
        attempts,
        status_code,
        error,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_delivery(
    tx: &mut store::Tx,
    event_id: &str,
    channel: &str,
    outcome: &str,
    attempts: u32,
    status_code: Option<u16>,
    error: Option<String>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO alert_deliveries (id, event_id, channel, outcome, attempts, status_code, \
         error, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(store::new_id("dlv"))
    .bind(event_id.to_owned())
    .bind(channel.to_owned())
    .bind(outcome.to_owned())
    .bind(i64::from(attempts))
    .bind(status_code.map(i64::from))
    .bind(error)
    .bind(store::now())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The live states of `rule_ids` (rules never evaluated are missing).
pub async fn states(store: &Store, rule_ids: &[String]) -> ApiResult<HashMap<String, LiveState>> {
    if rule_ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut w = Where::new();
    w.push(&in_list("rule_id", rule_ids.len()), texts(rule_ids));
    let sql = format!(
        "SELECT rule_id, state, since, last_value, evaluated_at FROM alert_states WHERE {}",
        w.sql()
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(store.reader()).await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        out.insert(row.try_get("rule_id")?, live_state(&row)?);
    }
    Ok(out)
}

fn live_state(row: &AnyRow) -> Result<LiveState, sqlx::Error> {
    Ok(LiveState {
        state: AlertState::parse(&row.try_get::<String, _>("state")?),
        since: Some(row.try_get("since")?),
        last_value: row.try_get("last_value")?,
        evaluated_at: Some(row.try_get("evaluated_at")?),
    })
}

/// The last [`HISTORY_LIMIT`] transitions of a rule, newest first, with their deliveries.
pub async fn recent(store: &Store, rule_id: &str) -> ApiResult<Vec<AlertEvent>> {
    let rows = sqlx::query(
        "SELECT id, kind, value, threshold, occurred_at FROM alert_events WHERE rule_id = $1 \
         ORDER BY revision DESC LIMIT $2",
    )
    .bind(rule_id.to_owned())
    .bind(HISTORY_LIMIT)
    .fetch_all(store.reader())
    .await?;
    let mut events = Vec::with_capacity(rows.len());
    for row in rows {
        events.push(AlertEvent {
            event_id: row.try_get("id")?,
            kind: row.try_get("kind")?,
            value: row.try_get("value")?,
            threshold: row.try_get("threshold")?,
            at: row.try_get("occurred_at")?,
            deliveries: Vec::new(),
        });
    }
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let mut deliveries = latest_deliveries(store, &ids).await?;
    for e in &mut events {
        e.deliveries = deliveries
            .remove(&e.event_id)
            .map(|m| m.into_values().collect())
            .unwrap_or_default();
    }
    Ok(events)
}

/// The latest delivery row per (event, channel), channels sorted by name.
async fn latest_deliveries(
    store: &Store,
    event_ids: &[String],
) -> ApiResult<HashMap<String, BTreeMap<String, Delivery>>> {
    let mut out: HashMap<String, BTreeMap<String, Delivery>> = HashMap::new();
    if event_ids.is_empty() {
        return Ok(out);
    }
    let mut w = Where::new();
    w.push(&in_list("event_id", event_ids.len()), texts(event_ids));
    let sql = format!(
        "SELECT event_id, channel, outcome, attempts, status_code, error, recorded_at \
         FROM alert_deliveries WHERE {} ORDER BY recorded_at, id",
        w.sql()
    );
    let rows = w.bind(sqlx::query(&sql)).fetch_all(store.reader()).await?;
    for row in rows {
        let channel: String = row.try_get("channel")?;
        let delivery = Delivery {
            channel: channel.clone(),
            outcome: row.try_get("outcome")?,
            attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or_default(),
            status_code: row
                .try_get::<Option<i64>, _>("status_code")?
                .and_then(|s| u16::try_from(s).ok()),
            error: row.try_get("error")?,
            at: row.try_get("recorded_at")?,
        };
        // Rows come oldest first, so the last one written per channel stands.
        out.entry(row.try_get("event_id")?)
            .or_default()
            .insert(channel, delivery);
    }
    Ok(out)
}

fn in_list(column: &str, n: usize) -> String {
    format!("{column} IN ({})", vec!["?"; n].join(", "))
}

fn texts(values: &[String]) -> Vec<Bind> {
    values.iter().cloned().map(Bind::Text).collect()
}
