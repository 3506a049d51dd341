//! `GET /api/health/services` and `GET /api/health/services/{service}`: every upstream service
//! (`model:<name>`, `upstream:<url>`) as the live proxies report it in their latest heartbeat,
//! merged over instances.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use medgate_config::{BreakerState, ServiceReport};
use serde::Serialize;

use crate::api::extract::ApiPath;
use crate::api::{ApiBuilder, Endpoint};
use crate::auth::Access;
use crate::error::{ApiError, ApiResult};
use crate::gateway::{self, InstanceReport};
use crate::state::AppState;

/// Every service the live proxies report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ServicesHealth {
    /// Sorted by service id.
    pub services: Vec<ServiceHealth>,
    /// Proxy instances whose reports were merged (heartbeat within 30 s).
    pub live_instances: u64,
}

/// One service merged over the instances that report it. Counts cover each instance's last
/// heartbeat interval (about 5 s), not a longer window.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ServiceHealth {
    /// `model:<name>` or `upstream:<url>`.
    pub service: String,
    pub calls: u64,
    pub failures: u64,
    /// failures / calls; 0 without calls.
    pub error_rate: f64,
    /// Mean latency weighted by each instance's calls; 0 without calls.
    pub mean_latency_ms: f64,
    pub max_latency_ms: u64,
    /// false when any instance's active health check says unhealthy, true when at least one
    /// checks and none says unhealthy, null when no instance runs a check.
    pub healthy: Option<bool>,
    /// The worst over instances: `open` > `half_open` > `closed`.
    pub breaker_state: BreakerState,
    /// What each instance reports, oldest instance first.
    pub instances: Vec<ServiceInstance>,
}

/// One instance's report of one service.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct ServiceInstance {
    pub instance_id: String,
    pub last_heartbeat_at: String,
    pub calls: u64,
    pub failures: u64,
    pub mean_latency_ms: f64,
    pub max_latency_ms: u64,
    pub healthy: Option<bool>,
    pub breaker_state: BreakerState,
}

impl ServiceHealth {
    /// Down for alerting: an active check says unhealthy, or a breaker in front of it is open.
    pub fn is_down(&self) -> bool {
        self.healthy == Some(false) || self.breaker_state == BreakerState::Open
    }
}

pub(super) fn routes(api: ApiBuilder) -> ApiBuilder {
    api.add(
        Endpoint::get(
            "/api/health/services",
            "health.services",
            "Health of every upstream service the live proxies report",
        )
        .access(Access::PlatformRead)
        .response::<ServicesHealth>(),
        list,
    )
    .add(
        Endpoint::get(
            "/api/health/services/{service}",
            "health.service",
            "Health of one upstream service (its id percent-encoded, e.g. model%3Agpt-4o)",
        )
        .access(Access::PlatformRead)
        .response::<ServiceHealth>(),
        get,
    )
}

async fn list(State(state): State<AppState>) -> ApiResult<Json<ServicesHealth>> {
    let reports = gateway::live_reports(state.store()).await?;
    Ok(Json(ServicesHealth {
        live_instances: reports.len() as u64,
        services: aggregate(&reports),
    }))
}

async fn get(
    State(state): State<AppState>,
    ApiPath(service): ApiPath<String>,
) -> ApiResult<Json<ServiceHealth>> {
    let reports = gateway::live_reports(state.store()).await?;
    aggregate(&reports)
        .into_iter()
        .find(|s| s.service == service)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("service", service))
}

/// Merges the services of `reports` (one entry per service id, sorted by id). An instance
/// reporting the same service twice contributes both entries.
pub fn aggregate(reports: &[InstanceReport]) -> Vec<ServiceHealth> {
    let mut by_service: BTreeMap<&str, Vec<ServiceInstance>> = BTreeMap::new();
    for r in reports {
        for s in &r.report.services {
            by_service
                .entry(s.service.as_str())
                .or_default()
                .push(instance(r, s));
        }
    }
    by_service
        .into_iter()
        .map(|(service, instances)| merge(service, instances))
        .collect()
}

fn instance(r: &InstanceReport, s: &ServiceReport) -> ServiceInstance {
    ServiceInstance {
        instance_id: r.instance_id.clone(),
        last_heartbeat_at: r.last_heartbeat_at.clone(),
        calls: s.calls,
        failures: s.failures,
        mean_latency_ms: s.mean_latency_ms,
        max_latency_ms: s.max_latency_ms,
        healthy: s.healthy,
        breaker_state: s.breaker_state,
    }
}

fn merge(service: &str, instances: Vec<ServiceInstance>) -> ServiceHealth {
    let calls: u64 = instances
        .iter()
        .map(|i| i.calls)
        .fold(0, u64::saturating_add);
    let failures: u64 = instances
        .iter()
        .map(|i| i.failures)
        .fold(0, u64::saturating_add);
    let weighted: f64 = instances
        .iter()
        .map(|i| i.mean_latency_ms * i.calls as f64)
        .sum();
    let ratio = |n: f64| if calls == 0 { 0.0 } else { n / calls as f64 };
    let checks = instances.iter().filter_map(|i| i.healthy);
    let healthy = checks.fold(None, |acc: Option<bool>, h| Some(acc.unwrap_or(true) && h));
    ServiceHealth {
        service: service.to_owned(),
        calls,
        failures,
        error_rate: ratio(failures as f64),
        mean_latency_ms: ratio(weighted),
        max_latency_ms: instances
            .iter()
            .map(|i| i.max_latency_ms)
            .max()
            .unwrap_or(0),
        healthy,
        breaker_state: instances
            .iter()
            .map(|i| i.breaker_state)
            .max_by_key(|s| severity(*s))
            .unwrap_or(BreakerState::Closed),
        instances,
    }
}

/// Order of breaker states from best to worst.
pub(crate) fn severity(state: BreakerState) -> u8 {
    match state {
        BreakerState::Closed => 0,
        BreakerState::HalfOpen => 1,
        BreakerState::Open => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::ProtectionReport;

    fn report(id: &str, services: Vec<ServiceReport>) -> InstanceReport {
        InstanceReport {
            instance_id: id.into(),
            last_heartbeat_at: "2026-03-01T10:00:00.000000Z".into(),
            report: ProtectionReport {
                services,
                ..ProtectionReport::default()
            },
        }
    }

    fn svc(calls: u64, failures: u64, mean: f64, healthy: Option<bool>) -> ServiceReport {
        ServiceReport {
            service: "model:m".into(),
            calls,
            failures,
            mean_latency_ms: mean,
            max_latency_ms: mean as u64 * 2,
            healthy,
            breaker_state: BreakerState::Closed,
        }
    }

    #[test]
    fn merges_weighted_by_calls_and_takes_the_worst() {
        let mut open = svc(30, 3, 200.0, None);
        open.breaker_state = BreakerState::HalfOpen;
        let merged = aggregate(&[
            report("a", vec![svc(10, 1, 100.0, Some(true))]),
            report("b", vec![open]),
        ]);
        assert_eq!(merged.len(), 1);
        let m = &merged[0];
        assert_eq!((m.calls, m.failures), (40, 4));
        assert!((m.error_rate - 0.1).abs() < 1e-9);
        assert!((m.mean_latency_ms - 175.0).abs() < 1e-9);
        assert_eq!(m.max_latency_ms, 400);
        assert_eq!(m.healthy, Some(true));
        assert_eq!(m.breaker_state, BreakerState::HalfOpen);
    }

    #[test]
    fn no_calls_and_no_checks() {
        let merged = aggregate(&[report("a", vec![svc(0, 0, 0.0, None)])]);
        assert_eq!(merged[0].error_rate, 0.0);
        assert_eq!(merged[0].mean_latency_ms, 0.0);
        assert_eq!(merged[0].healthy, None);
        let merged = aggregate(&[
            report("a", vec![svc(1, 0, 1.0, Some(true))]),
            report("b", vec![svc(1, 0, 1.0, Some(false))]),
        ]);
        assert_eq!(merged[0].healthy, Some(false));
        assert!(merged[0].is_down());
    }
}
