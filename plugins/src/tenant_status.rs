//! Refuses traffic of tenants that are not active (DESIGN.md §4 step 2).

use medgate_config::{Snapshot, TenantStatus};

use crate::{Decision, Plugin, Rejection, RequestView};

/// Lets only requests of active tenants through.
#[derive(Debug, Default)]
pub struct TenantStatusGate;

impl Plugin for TenantStatusGate {
    fn name(&self) -> &'static str {
        "tenant-status"
    }

    fn on_request(&self, request: &RequestView, snapshot: &Snapshot) -> Decision {
        let Some(tenant_id) = request.tenant_id.as_deref() else {
            return Decision::Reject(Rejection {
                status: 401,
                kind: "authentication_error",
                code: "tenant_unresolved",
                message: "no tenant could be resolved from the credentials".into(),
            });
        };
        let Some(tenant) = snapshot.tenant(tenant_id) else {
            return Decision::Reject(Rejection {
                status: 401,
                kind: "authentication_error",
                code: "tenant_unknown",
                message: "the credentials belong to no known tenant".into(),
            });
        };
        match tenant.status {
            TenantStatus::Active => Decision::Continue,
            TenantStatus::Suspended => Decision::Reject(Rejection {
                status: 403,
                kind: "permission_error",
                code: "tenant_suspended",
                message: "this tenant is suspended; contact the platform operator".into(),
            }),
            TenantStatus::Pending => Decision::Reject(Rejection {
                status: 403,
                kind: "permission_error",
                code: "tenant_not_active",
                message: "this tenant has not been activated yet".into(),
            }),
            TenantStatus::Terminated => Decision::Reject(Rejection {
                status: 403,
                kind: "permission_error",
                code: "tenant_terminated",
                message: "this tenant has been terminated".into(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medgate_config::TenantEntry;

    fn snapshot(status: TenantStatus) -> Snapshot {
        Snapshot::new(
            1,
            vec![TenantEntry {
                id: "t1".into(),
                code: "clinic".into(),
                status,
                quotas: None,
                allowed_models: vec![],
                log_request_payloads: false,
                cors_allowed_origins: vec![],
                isolation: None,
            }],
        )
    }

    fn request(tenant: Option<&str>) -> RequestView {
        RequestView {
            tenant_id: tenant.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn active_tenant_continues() {
        let d = TenantStatusGate.on_request(&request(Some("t1")), &snapshot(TenantStatus::Active));
        assert_eq!(d, Decision::Continue);
    }

    #[test]
    fn suspended_and_terminated_tenants_are_refused_with_403() {
        for (status, code) in [
            (TenantStatus::Suspended, "tenant_suspended"),
            (TenantStatus::Terminated, "tenant_terminated"),
            (TenantStatus::Pending, "tenant_not_active"),
        ] {
            match TenantStatusGate.on_request(&request(Some("t1")), &snapshot(status)) {
                Decision::Reject(r) => {
                    assert_eq!(r.status, 403);
                    assert_eq!(r.code, code);
                }
                Decision::Continue => panic!("{status:?} must be refused"),
            }
        }
    }

    #[test]
    fn unknown_or_missing_tenant_is_401() {
        let s = snapshot(TenantStatus::Active);
        for req in [request(None), request(Some("other"))] {
            match TenantStatusGate.on_request(&req, &s) {
                Decision::Reject(r) => assert_eq!(r.status, 401),
                Decision::Continue => panic!("must be refused"),
            }
        }
    }
}
