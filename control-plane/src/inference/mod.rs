//! Inference records (API §3.4, history part): usage events ingested from the data plane,
//! exactly once per request, and the history lists built on them. The inference calls
//! themselves are served by the data plane.

mod history;
mod ingest;
mod routes;

pub use history::{HistoryQuery, InferenceRecord};
pub use ingest::{MAX_BATCH, MAX_REQUESTED_MODEL};
pub use routes::routes;
