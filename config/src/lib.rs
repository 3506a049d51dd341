//! The contract between medgate's planes.
//!
//! * [`settings`]: the process configuration (YAML file plus `MEDGATE_*` environment overrides)
//!   shared by `medgate serve`, `medgate control-plane` and `medgate proxy`.
//! * [`snapshot`]: the compiled, versioned, immutable value the control plane hands to the data
//!   plane (DESIGN.md §3.1). The proxy validates a snapshot whole before swapping it in.
//! * [`tls`]: certificate chains, keys and CA bundles, checked the same way by both planes.
//! * [`usage`], [`access_log`], [`node`]: what the data plane reports back (usage events,
//!   access-log entries, heartbeats).
#![forbid(unsafe_code)]

pub mod access_log;
pub mod funds;
pub mod node;
pub mod protection;
pub mod routing;
pub mod settings;
pub mod snapshot;
pub mod tls;
pub mod usage;

pub use access_log::{AccessLogBatch, AccessLogEntry};
pub use funds::{rate_at, FundsEntry, FundsFeed, RateEntry};
pub use node::{BreakerReport, BreakerState, Heartbeat, HeartbeatAck, ServiceReport};
pub use protection::{
    BreakerEntry, BreakerStrategy, BreakerTarget, BreakerTargetKind, DegradationEntry,
    DegradationTrigger, FinalAction, LimitMetric, LimitMode, LimitScope, LimitWindow,
    ProtectionEntry, RateLimitEntry, RuleError, StoreFailureMode,
};
pub use routing::{
    DomainCertificate, DomainEntry, HealthCheck, LoadBalancing, RouteEntry, RouteMatch,
    RouteTarget, RouteTimeouts, RoutingError,
};
pub use settings::{ProxyTlsSettings, Settings, SettingsError, SpoolSettings, TlsListenerMaterial};
pub use snapshot::{
    ApiKeyEntry, GatewayEntry, IsolationEntry, KeySecret, ModelEntry, OnViolation, ParameterRule,
    PlanQuotas, Snapshot, SnapshotError, TenantEntry, TenantModelEntry, TenantStatus,
    UpstreamEntry,
};
pub use usage::{UsageAck, UsageBatch, UsageEvent};
