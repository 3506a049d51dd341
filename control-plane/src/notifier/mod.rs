//! The one notifier of the product (issue 7): every notification (low balance, overage,
//! alert e-mails) is a row of the `notifications` outbox, written in the transaction of the
//! event that causes it ([`enqueue`], unique by a dedup key), and delivered from there by
//! e-mail (SMTP settings, lettre) and signed webhook.
//!
//! **Recipients.** A tenant's notification goes to its `notification_email` (tenant config),
//! else its contact e-mail; the platform's `notification_emails` (general settings) get a
//! copy of every notification, and the platform's `notification_webhook_url` a signed POST
//! (`X-Medgate-Signature`, see [`webhook`]) of `{id, kind, tenant_id, created_at, payload}`
//! with `X-Medgate-Event-Id: <notification id>`. Alert e-mails go to the rule's addresses
//! only. An alert's webhook is first tried at once by the alerts module (3 attempts within
//! about a second, for latency); when those fail it becomes an outbox row of kind
//! [`ALERT_WEBHOOK_KIND`], retried here like every other notification to the rule's webhook
//! in force, with the same body and event id.
//!
//! **Delivery.** [`spawn_notifier`] runs [`deliver_due`] every [`DELIVERY_INTERVAL`]. A due
//! row is leased with a conditional UPDATE (`claimed_by`, `claimed_until`), so two control
//! planes never send it at the same time; each channel's outcome is stored as it happens, so
//! a retry skips channels already delivered. A failed attempt schedules the next one after
//! [`backoff`] (30 s, doubling, at most 1 h); after [`MAX_ATTEMPTS`] the row is `failed`.
//! Rows are never deleted: `GET /api/notifications` shows every one with its attempts, last
//! error and next attempt, and `POST /api/notifications/{id}/retry` queues a failed one again.

mod deliver;
pub mod email;
pub mod outbox;
pub mod render;
mod routes;
pub mod sealed;
pub mod webhook;

pub use deliver::{
    backoff, deliver_due, deliver_due_at, spawn_notifier, DeliveryReport, BACKOFF_BASE,
    BACKOFF_CAP, DELIVERY_INTERVAL, LEASE,
};
pub use outbox::{ChannelOutcome, Notification, NotificationQuery, Status};
pub use routes::routes;

/// Writes a notification to the outbox in the caller's transaction, unless one with the same
/// dedup key exists; true when this call created it.
pub use crate::billing::notify::enqueue;

/// Attempts before a notification is marked failed.
pub const MAX_ATTEMPTS: i64 = 8;
/// The outbox kind of alert e-mails.
pub const ALERT_KIND: &str = "alert";
/// The outbox kind of alert webhooks whose immediate attempts failed.
pub const ALERT_WEBHOOK_KIND: &str = "alert_webhook";
