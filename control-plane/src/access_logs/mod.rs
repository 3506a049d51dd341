//! Access logs (API §7.3, access part): one entry per request the proxies handled, shipped in
//! batches like usage events and ingested idempotently by request id; listed newest first,
//! filtered, paginated and tenant-scoped. Entries never hold bodies, keys or query strings.

mod ingest;
mod query;
mod routes;

pub use ingest::MAX_BATCH;
pub use query::AccessLogQuery;
pub use routes::routes;
