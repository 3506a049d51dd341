//! The model registry (API §3.1) and model parameter rules (API §3.3, model part): which
//! models clients can name, where the gateway forwards them, and how request parameters are
//! bounded. Upstream API keys are write-only: stored sealed for the snapshot, never returned.

mod input;
mod model;
pub mod parameters;
mod routes;
mod sealing;

pub use input::{ModelInput, UpstreamInput};
pub use model::{Model, ModelView, Pricing, Provider, Upstream, UpstreamView};
pub use parameters::ParameterRules;
pub use routes::routes;
pub use sealing::seal_plaintext_keys;
