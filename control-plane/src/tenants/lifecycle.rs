//! Tenant lifecycle (API §1.2): `pending -> active <-> suspended -> terminated`.
//!
//! Transitions are checked against the current state inside the write, so two concurrent
//! calls cannot both apply; an invalid transition is a 409 and changes nothing.

use medgate_config::TenantStatus;

use super::Tenant;
use crate::error::{ApiError, ApiResult};

/// The lifecycle actions of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Activate,
    Suspend,
    Terminate,
}

impl Transition {
    pub fn name(self) -> &'static str {
        match self {
            Transition::Activate => "activate",
            Transition::Suspend => "suspend",
            Transition::Terminate => "terminate",
        }
    }

    /// The state after this transition from `from`, or a 409.
    pub fn target(self, from: TenantStatus) -> ApiResult<TenantStatus> {
        use TenantStatus::*;
        let to = match (self, from) {
            (Transition::Activate, Pending | Suspended) => Active,
            (Transition::Suspend, Active) => Suspended,
            (Transition::Terminate, Active | Suspended) => Terminated,
            _ => {
                return Err(ApiError::conflict(
                    "invalid_transition",
                    format!("cannot {} a tenant that is {}", self.name(), from.as_str()),
                ))
            }
        };
        Ok(to)
    }

    /// Moves `tenant` to the target state, stamping the time; returns the state it left.
    pub fn apply(self, tenant: &mut Tenant) -> ApiResult<TenantStatus> {
        let from = tenant.status;
        let to = self.target(from)?;
        let now = crate::store::now();
        match to {
            TenantStatus::Active => {
                tenant.activated_at.get_or_insert(now);
                tenant.suspended_at = None;
            }
            TenantStatus::Suspended => tenant.suspended_at = Some(now),
            TenantStatus::Terminated => tenant.terminated_at = Some(now),
            TenantStatus::Pending => {}
        }
        tenant.status = to;
        Ok(from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TenantStatus::*;

    #[test]
    fn allowed_transitions() {
        assert_eq!(Transition::Activate.target(Pending).ok(), Some(Active));
        assert_eq!(Transition::Activate.target(Suspended).ok(), Some(Active));
        assert_eq!(Transition::Suspend.target(Active).ok(), Some(Suspended));
        assert_eq!(Transition::Terminate.target(Active).ok(), Some(Terminated));
        assert_eq!(
            Transition::Terminate.target(Suspended).ok(),
            Some(Terminated)
        );
    }

    #[test]
    fn everything_else_is_refused() {
        let all = [Pending, Active, Suspended, Terminated];
        let allowed = [
            (Transition::Activate, Pending),
            (Transition::Activate, Suspended),
            (Transition::Suspend, Active),
            (Transition::Terminate, Active),
            (Transition::Terminate, Suspended),
        ];
        for t in [
            Transition::Activate,
            Transition::Suspend,
            Transition::Terminate,
        ] {
            for from in all {
                if !allowed.contains(&(t, from)) {
                    assert!(
                        t.target(from).is_err(),
                        "{t:?} from {from:?} must be refused"
                    );
                }
            }
        }
    }
}
