//! medgate's data plane: a Pingora proxy that authenticates tenants' API keys, resolves
//! models, rewrites and forwards inference requests with streaming, meters tokens (also for
//! streams) and emits one usage event per request. Configuration is a snapshot from the
//! control plane (or a static file), swapped atomically.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod auth;
pub mod catalog;
pub mod control_plane;
pub mod funds;
pub mod gateway;
pub mod heartbeat;
pub mod inference;
pub mod instance;
pub mod metrics;
pub mod openai_error;
pub mod protection;
mod redis_link;
pub mod routing;
pub mod server;
pub mod shared;
pub mod sink;
pub mod static_config;
pub mod tls;
pub mod upstream;
pub mod watcher;

pub use server::{start, ConfigSource, ProxyHandle, ProxyOptions};
