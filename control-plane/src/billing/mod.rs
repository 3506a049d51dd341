//! Money (API §2, §5; issue 5): rates, priced usage, the balance ledger, recharge cards,
//! invoices and overage.
//!
//! Conventions every money module follows (billing-medical.md §2.5):
//! * Amounts are integers, never floats: minor units (fen, cents) for balances, ledger
//!   entries, cards and invoices; micros (millionths of a minor unit) for rates and the exact
//!   cost of a usage event. Conversions round explicitly ([`money`]).
//! * The ledger is append-only (database triggers refuse UPDATE and DELETE). A tenant's
//!   balance is `SUM(ledger_entries.amount_minor) - SUM(usage_events.debit_minor)`; the
//!   `tenant_balances` row caches it and is updated in the same transaction as every entry.
//!   A usage row is its own debit: it is inserted once per request id, priced and debited in
//!   the same transaction ([`ledger::split_debits`], [`ledger::apply_usage_debits`]).
//! * Every mutation is idempotent by a key unique per tenant (`redeem:<card>`,
//!   `adjust:<Idempotency-Key>`, ...): a replay returns the stored result.
//! * Money events that notify (low balance, overage) go through [`notify::enqueue`], unique by
//!   a dedup key, so each notification exists once however many requests race.

pub mod balance;
pub mod balance_routes;
pub mod cards;
pub mod feed;
pub mod invoices;
pub mod ledger;
pub mod money;
pub mod notify;
pub mod overage;
pub mod pricing;
pub mod rates;
pub mod routes;
pub mod thresholds;
pub mod transactions;
pub mod usage;
