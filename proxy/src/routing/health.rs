//! The health task: one background loop for every route with a health check. Each round
//! probes a route's targets on its own interval; the routes come from the catalog in force,
//! so removed routes stop being probed with the snapshot that removed them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::shared::Shared;

/// Finest interval a health check can have.
const TICK: Duration = Duration::from_millis(50);

/// Runs due health checks until shutdown.
pub struct RouteHealth {
    pub shared: Arc<Shared>,
}

#[async_trait]
impl BackgroundService for RouteHealth {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
            let Some(catalog) = self.shared.catalog() else {
                continue;
            };
            let now = Instant::now();
            for route in catalog.routing.checked_routes() {
                let Some(schedule) = &route.health else {
                    continue;
                };
                if !schedule.start_if_due(now) {
                    continue;
                }
                let route = route.clone();
                tokio::spawn(async move {
                    route.balancer.run_health_check().await;
                    if let Some(s) = &route.health {
                        s.finished();
                    }
                });
            }
        }
    }
}
