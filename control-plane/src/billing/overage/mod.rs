//! Overage (API §2.4; billing-medical.md §6.1 O1): rules per tenant or platform default,
//! threshold crossings recorded once each with one notification, and hard caps.
//!
//! Entry points for other modules:
//! * [`evaluate_tenant`]`(tx, tenant_id, now, None)`: records (and notifies) the crossings
//!   of the tenant's current month. Call it after usage ingest, once per tenant of a batch,
//!   in the ingest transaction or a new one; it is idempotent and safe under any
//!   concurrency. `POST /api/billing/overages/notify` runs it for one or every tenant.
//! * [`hard_capped_tenants`]`(store, now)`: the tenants a `hard` rule stops until the end of
//!   their period, for the data-plane feed.
//! * Invoices read the tenant's token allowance and overage rate through
//!   [`rules::effective`] (see `invoices::content::terms`).

pub mod after_ingest;
pub mod caps;
pub mod evaluate;
pub mod routes;
pub mod rules;

pub use caps::{hard_capped_tenants, snapshot_caps, HardCap};
pub use evaluate::{evaluate_tenant, OverageRecord};
pub use routes::routes;
pub use rules::{Metric, Mode, OverageRule, OverageRuleInput};
