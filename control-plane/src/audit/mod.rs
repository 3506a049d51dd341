//! The audit trail (API §7.3, audit part): an append-only, hash-chained log of every mutating
//! call. Each entry stores the hash of the previous one, so editing, deleting or reordering
//! rows breaks the chain at that position, which `medgate audit verify` reports.

mod chain;
mod query;
mod routes;

pub use chain::{append, verify, AuditEntry, NewEntry, VerifyReport};
pub use routes::routes;
