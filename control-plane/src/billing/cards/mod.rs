//! Recharge cards (API §5.1-§5.3; billing-medical.md §2.5-§2.6; DESIGN.md §7).
//!
//! * [`code`]: the code format (80 CSPRNG/PRF bits, Crockford base32, mod-37 check symbol).
//! * [`keys`]: the server secret, code hashes, per-batch seeds and their sealing; why batch
//!   codes are derived rather than stored encrypted.
//! * [`single`]: single cards: create (code shown once), list, read, enable/disable, expiry,
//!   delete (unredeemed only).
//! * [`batches`]: all-or-nothing, idempotent generation of up to 100,000 cards;
//!   [`batch_reads`]: the batch list and per-batch counts by status.
//! * [`export`]: CSV export of one batch, audited, [`batches::EXPORT_LIMIT`] times.
//! * [`redeem`] and [`limiter`]: exactly-once redemption into the ledger, uniform errors,
//!   and the database-backed brute-force limit.
//! * [`history`]: the recharge history.
//!
//! Storage (migration 0009): no code is ever stored or logged in clear, only
//! `HMAC-SHA256(server key, code)` and a 4-symbol hint. Status is stored as `active`,
//! `disabled` or `redeemed`; `expired` is derived when reading (an active card past its
//! `expires_at`), so expiry needs no job and redemption checks the time in its claim.

pub mod batch_reads;
pub mod batches;
pub mod code;
pub mod export;
pub mod history;
pub mod keys;
pub mod limiter;
pub mod model;
pub mod recharge;
pub mod redeem;
pub mod routes;
pub mod single;

pub use code::Code;
pub use keys::{CardKeys, Seed};

/// Resource type of card endpoints in audit entries.
pub const RESOURCE: &str = "recharge_card";

/// Every route of the recharge-card API (§5.1-§5.3 but the balance endpoint).
pub fn routes(api: crate::api::ApiBuilder) -> crate::api::ApiBuilder {
    recharge::routes(routes::routes(api))
}
