//! Delivery of due outbox rows: lease, resolve the channels, send each channel not delivered
//! yet, record the outcome, schedule the next attempt with exponential backoff or give up.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::email::{self, Mail};
use super::outbox::{self, ChannelOutcome, Finish, Notification, Status};
use super::sealed::SealKey;
use super::{render, webhook, ALERT_KIND, ALERT_WEBHOOK_KIND, MAX_ATTEMPTS};
use crate::alerts::AlertRule;
use crate::error::ApiResult;
use crate::resource;
use crate::settings::general::{self, GeneralSettings};
use crate::settings::smtp::{self, SmtpSettings};
use crate::state::AppState;
use crate::store;
use crate::tenants::Tenant;

/// How often the background notifier looks for due rows.
pub const DELIVERY_INTERVAL: Duration = Duration::from_secs(10);
/// Wait after the first failed attempt; doubled after each further one, up to
/// [`BACKOFF_CAP`].
pub const BACKOFF_BASE: Duration = Duration::from_secs(30);
pub const BACKOFF_CAP: Duration = Duration::from_secs(3600);
/// How long a lease lasts; renewed after every channel, so it only has to cover one send
/// (SMTP timeouts are at most 120 s per command).
pub const LEASE: Duration = Duration::from_secs(600);
/// Most rows one pass takes.
pub const BATCH: i64 = 50;

/// The wait after `failed_attempts` failed attempts (1 or more): 30 s, 1 min, 2 min, ...,
/// at most 1 h.
pub fn backoff(failed_attempts: i64) -> Duration {
    let doublings = u32::try_from(failed_attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    BACKOFF_BASE
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(BACKOFF_CAP)
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Rows this pass leased and attempted.
    pub attempted: usize,
    pub delivered: usize,
    /// Rows that failed this attempt and will be tried again.
    pub retrying: usize,
    /// Rows that failed their last allowed attempt.
    pub failed: usize,
}

/// Delivers what is due now. See [`deliver_due_at`].
pub async fn deliver_due(state: &AppState) -> ApiResult<DeliveryReport> {
    deliver_due_at(state, Utc::now()).await
}

/// Delivers up to [`BATCH`] rows due at `now` (a test may pass a later time to skip the
/// backoff). Rows leased by another control plane are left alone.
pub async fn deliver_due_at(state: &AppState, now: DateTime<Utc>) -> ApiResult<DeliveryReport> {
    let store = state.store();
    let stamp = store::timestamp(now);
    let mut report = DeliveryReport::default();
    let ids = outbox::due(store, &stamp, BATCH).await?;
    if ids.is_empty() {
        return Ok(report);
    }
    let ctx = Context {
        state,
        general: general::load(store).await?,
        smtp: smtp::load(store).await?,
        now,
    };
    for id in ids {
        let token = store::new_id("lease");
        if !outbox::claim(store, &id, &token, &stamp, &ctx.lease_end()).await? {
            continue;
        }
        let Some(row) = outbox::get(store, &id).await? else {
            continue;
        };
        report.attempted += 1;
        match deliver_one(&ctx, &row, &token).await {
            Ok(Some(Status::Delivered)) => report.delivered += 1,
            Ok(Some(Status::Failed)) => report.failed += 1,
            Ok(Some(Status::Pending)) => report.retrying += 1,
            Ok(None) => tracing::warn!(id, "notification lease lost mid-delivery"),
            // The lease expires and the row is tried again.
            Err(e) => tracing::warn!(id, error = %e, "notification could not be processed"),
        }
    }
    Ok(report)
}

struct Context<'a> {
    state: &'a AppState,
    general: GeneralSettings,
    smtp: SmtpSettings,
    now: DateTime<Utc>,
}

impl Context<'_> {
    fn stamp(&self) -> String {
        store::timestamp(self.now)
    }

    fn lease_end(&self) -> String {
        store::timestamp(self.now + chrono::Duration::from_std(LEASE).unwrap_or_default())
    }
}

/// Where one notification goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Channel {
    Email(String),
    Webhook {
        url: String,
        sealed_secret: Option<String>,
    },
    /// The webhook of the alert rule in the payload, as the rule has it now.
    AlertWebhook,
}

impl Channel {
    fn key(&self) -> String {
        match self {
            Channel::Email(to) => format!("email:{to}"),
            Channel::Webhook { .. } | Channel::AlertWebhook => "webhook".into(),
        }
    }
}

/// The channels of `n`. Alerts: the rule's addresses (its webhook is sent by the alerts
/// module itself). Everything else: the tenant's `notification_email` (else its contact
/// e-mail), the platform's `notification_emails`, and the platform webhook.
fn channels(general: &GeneralSettings, n: &Notification, tenant: Option<&Tenant>) -> Vec<Channel> {
    if n.kind == ALERT_WEBHOOK_KIND {
        return vec![Channel::AlertWebhook];
    }
    let mut emails: Vec<String> = Vec::new();
    if n.kind == ALERT_KIND {
        if let Some(list) = n.payload["emails"].as_array() {
            emails.extend(list.iter().filter_map(|v| v.as_str().map(str::to_owned)));
        }
    } else {
        if let Some(t) = tenant {
            if let Some(e) = t
                .config
                .notification_email
                .clone()
                .or(t.contact.email.clone())
            {
                emails.push(e);
            }
        }
        emails.extend(general.notification_emails.iter().cloned());
    }
    let mut out: Vec<Channel> = Vec::new();
    for e in emails {
        if !out
            .iter()
            .any(|c| matches!(c, Channel::Email(x) if x.eq_ignore_ascii_case(&e)))
        {
            out.push(Channel::Email(e));
        }
    }
    if n.kind != ALERT_KIND {
        if let Some(url) = &general.notification_webhook_url {
            out.push(Channel::Webhook {
                url: url.clone(),
                sealed_secret: general.notification_webhook_secret.clone(),
            });
        }
    }
    out
}

/// One attempt at `n`, holding the lease `token`. Returns the row's new status, or None when
/// the lease was lost.
async fn deliver_one(
    ctx: &Context<'_>,
    n: &Notification,
    token: &str,
) -> ApiResult<Option<Status>> {
    let store = ctx.state.store();
    let tenant = match &n.tenant_id {
        Some(id) => resource::load::<Tenant>(store, id).await?.map(|s| s.value),
        None => None,
    };
    let attempt = n.attempts + 1;
    let last_allowed = attempt >= MAX_ATTEMPTS;
    let mut outcomes = n.channels.clone();
    let mut errors: Vec<String> = Vec::new();
    let targets = channels(&ctx.general, n, tenant.as_ref());
    if targets.is_empty() {
        errors.push(no_recipient(n));
    }
    for channel in targets {
        let key = channel.key();
        if outcomes
            .iter()
            .any(|o| o.channel == key && o.status == "delivered")
        {
            continue;
        }
        let result = send(ctx, n, tenant.as_ref(), &channel).await;
        let stamp = ctx.stamp();
        let index = match outcomes.iter().position(|o| o.channel == key) {
            Some(i) => i,
            None => {
                outcomes.push(ChannelOutcome {
                    channel: key.clone(),
                    status: String::new(),
                    attempts: 0,
                    error: None,
                    at: stamp.clone(),
                });
                outcomes.len() - 1
            }
        };
        let o = &mut outcomes[index];
        o.attempts += 1;
        o.at = stamp.clone();
        match &result {
            Ok(()) => {
                o.status = "delivered".into();
                o.error = None;
            }
            Err(e) => {
                o.status = "failed".into();
                o.error = Some(e.clone());
                errors.push(format!("{key}: {e}"));
            }
        }
        if n.kind == ALERT_KIND || n.kind == ALERT_WEBHOOK_KIND {
            // A webhook's count includes the alerts module's immediate attempts.
            let earlier = n.payload["immediate_attempts"].as_u64().unwrap_or(0);
            let attempts = o
                .attempts
                .saturating_add(u32::try_from(earlier).unwrap_or(0));
            record_alert_delivery(ctx, n, &key, attempts, &result, last_allowed).await;
        }
        if !outbox::save_progress(store, &n.id, token, &outcomes, &ctx.lease_end(), &stamp).await? {
            return Ok(None);
        }
    }
    let stamp = ctx.stamp();
    let finish = if errors.is_empty() {
        Finish {
            status: Status::Delivered,
            attempts: attempt,
            last_error: None,
            next_attempt_at: None,
            delivered_at: Some(stamp.clone()),
            channels: &outcomes,
            now: &stamp,
        }
    } else {
        let last_error = Some(errors.join("; "));
        if last_allowed {
            tracing::warn!(id = %n.id, kind = %n.kind, error = ?last_error, "notification failed for good");
            Finish {
                status: Status::Failed,
                attempts: attempt,
                last_error,
                next_attempt_at: None,
                delivered_at: None,
                channels: &outcomes,
                now: &stamp,
            }
        } else {
            let wait = chrono::Duration::from_std(backoff(attempt)).unwrap_or_default();
            tracing::info!(id = %n.id, kind = %n.kind, attempt, error = ?last_error, "notification attempt failed; retrying later");
            Finish {
                status: Status::Pending,
                attempts: attempt,
                last_error,
                next_attempt_at: Some(store::timestamp(ctx.now + wait)),
                delivered_at: None,
                channels: &outcomes,
                now: &stamp,
            }
        }
    };
    let status = finish.status;
    Ok(outbox::finish(store, &n.id, token, finish)
        .await?
        .then_some(status))
}

fn no_recipient(n: &Notification) -> String {
    if n.kind == ALERT_KIND {
        "no recipient: the alert rule has no e-mail address".into()
    } else {
        "no recipient: set the tenant's notification_email (or contact e-mail), or \
         notification_emails / notification_webhook_url in PUT /api/settings"
            .into()
    }
}

/// Sends `n` on one channel.
async fn send(
    ctx: &Context<'_>,
    n: &Notification,
    tenant: Option<&Tenant>,
    channel: &Channel,
) -> Result<(), String> {
    match channel {
        Channel::Email(to) => {
            let content = render::email(&ctx.general.platform_name, n, tenant);
            let mail = Mail {
                to: to.clone(),
                subject: content.subject,
                body: content.body,
            };
            email::send(ctx.state.settings(), &ctx.smtp, &mail)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
        Channel::Webhook { url, sealed_secret } => {
            let key = SealKey::from_settings(ctx.state.settings(), "notification_webhook_secret")
                .map_err(|e| e.to_string())?;
            let secret = sealed_secret
                .as_deref()
                .and_then(|s| key.unseal(s))
                .ok_or_else(|| {
                    "the webhook secret cannot be decrypted (the server secret changed?): set \
                     notification_webhook_secret again"
                        .to_owned()
                })?;
            let attempt = webhook::post(url, Some(&secret), &n.id, &render::webhook_body(n)).await;
            if attempt.delivered {
                Ok(())
            } else {
                Err(attempt.error.unwrap_or_else(|| "not delivered".into()))
            }
        }
        Channel::AlertWebhook => {
            let rule_id = n.payload["alert_id"].as_str().unwrap_or_default();
            let rule = resource::load::<AlertRule>(ctx.state.store(), rule_id)
                .await
                .map_err(|e| e.to_string())?
                .map(|s| s.value)
                .ok_or_else(|| format!("alert rule {rule_id} no longer exists"))?;
            let url = rule
                .webhook_url
                .ok_or_else(|| format!("alert rule {rule_id} has no webhook any more"))?;
            let event_id = n.payload["event_id"].as_str().unwrap_or(&n.id);
            let body = serde_json::to_vec(&n.payload["body"]).unwrap_or_default();
            let attempt =
                webhook::post(&url, rule.webhook_secret.as_deref(), event_id, &body).await;
            if attempt.delivered {
                Ok(())
            } else {
                Err(attempt.error.unwrap_or_else(|| {
                    attempt
                        .status
                        .map_or_else(|| "not delivered".into(), |s| format!("HTTP {s}"))
                }))
            }
        }
    }
}

/// Appends the outcome of an alert e-mail to the alert's history (best effort: the outbox row
/// keeps the outcome whatever happens here).
async fn record_alert_delivery(
    ctx: &Context<'_>,
    n: &Notification,
    channel: &str,
    attempts: u32,
    result: &Result<(), String>,
    last_allowed: bool,
) {
    let Some(event_id) = n.payload["event_id"].as_str() else {
        return;
    };
    let (outcome, error) = match result {
        Ok(()) => ("delivered", None),
        Err(e) if last_allowed => ("failed", Some(e.clone())),
        Err(e) => ("retrying", Some(e.clone())),
    };
    if let Err(e) = crate::alerts::record_delivery(
        ctx.state.store(),
        event_id,
        channel,
        outcome,
        attempts,
        None,
        error,
    )
    .await
    {
        tracing::error!(event_id, error = %e, "alert e-mail outcome could not be stored");
    }
}

/// Runs [`deliver_due`] every `every` (first run one interval after the start) until the task
/// is aborted; a pass that took a full batch is followed by another at once. Failures are
/// logged and the next tick tries again.
pub fn spawn_notifier(state: AppState, every: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            loop {
                match deliver_due(&state).await {
                    Ok(r) => {
                        if r.attempted > 0 {
                            tracing::debug!(
                                attempted = r.attempted,
                                delivered = r.delivered,
                                retrying = r.retrying,
                                failed = r.failed,
                                "notifications processed"
                            );
                        }
                        if r.attempted < usize::try_from(BATCH).unwrap_or(usize::MAX) {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "notification delivery failed");
                        break;
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let secs: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(backoff(0).as_secs(), 30);
        assert_eq!(backoff(i64::MAX).as_secs(), 3600);
    }
}
