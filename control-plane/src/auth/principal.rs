//! Roles, the authenticated caller, and what each endpoint lets through.

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};

/// The roles of the management API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Operates the whole platform.
    PlatformAdmin,
    /// Manages one tenant.
    TenantAdmin,
    /// Reads one tenant.
    TenantViewer,
    /// Reads everything (or one tenant when the token names it), writes nothing.
    Auditor,
    /// A data-plane node fetching snapshots and posting usage; no management rights.
    Node,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::TenantAdmin => "tenant_admin",
            Role::TenantViewer => "tenant_viewer",
            Role::Auditor => "auditor",
            Role::Node => "node",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "platform_admin" => Some(Role::PlatformAdmin),
            "tenant_admin" => Some(Role::TenantAdmin),
            "tenant_viewer" => Some(Role::TenantViewer),
            "auditor" => Some(Role::Auditor),
            "node" => Some(Role::Node),
            _ => None,
        }
    }

    /// Roles that only make sense bound to one tenant.
    pub fn requires_tenant(self) -> bool {
        matches!(self, Role::TenantAdmin | Role::TenantViewer)
    }
}

/// The caller of one request, from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    /// Set for tenant-scoped callers; None means platform-wide.
    pub tenant_id: Option<String>,
}

/// Which callers an endpoint admits, checked before the handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed (health, OpenAPI, docs).
    Public,
    /// Any management role; tenant-scoped callers see their tenant only.
    Read,
    /// Platform admins, and tenant admins within their tenant.
    TenantWrite,
    /// Platform admins only.
    PlatformAdmin,
    /// Audit trails: platform admins and auditors; tenant admins for their own tenant.
    AuditRead,
    /// Platform internals (gateway settings, proxy instances): platform admins and auditors.
    /// A tenant-bound auditor is refused too: none of it belongs to one tenant.
    PlatformRead,
    /// Data-plane nodes (and platform admins, for debugging).
    Node,
}

impl Access {
    /// Whether `role` may call an endpoint with this access at all.
    pub fn admits(self, role: Role) -> bool {
        use Role::*;
        match self {
            Access::Public => true,
            Access::Read => matches!(role, PlatformAdmin | TenantAdmin | TenantViewer | Auditor),
            Access::TenantWrite => matches!(role, PlatformAdmin | TenantAdmin),
            Access::PlatformAdmin => role == PlatformAdmin,
            Access::AuditRead => matches!(role, PlatformAdmin | Auditor | TenantAdmin),
            Access::PlatformRead => matches!(role, PlatformAdmin | Auditor),
            Access::Node => matches!(role, Node | PlatformAdmin),
        }
    }

    /// The roles admitted, for the OpenAPI description.
    pub fn describe(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Read => "platform_admin, tenant_admin, tenant_viewer, auditor (tenant roles see their own tenant only)",
            Access::TenantWrite => "platform_admin, tenant_admin (own tenant only)",
            Access::PlatformAdmin => "platform_admin",
            Access::AuditRead => "platform_admin, auditor, tenant_admin (own tenant only)",
            Access::PlatformRead => "platform_admin, auditor (not bound to a tenant)",
            Access::Node => "node, platform_admin",
        }
    }
}

impl Principal {
    /// The tenant this caller is confined to, if any.
    pub fn tenant_scope(&self) -> Option<&str> {
        self.tenant_id.as_deref()
    }

    /// Whether the caller may see `tenant_id`'s data.
    pub fn sees_tenant(&self, tenant_id: &str) -> bool {
        self.tenant_scope().is_none_or(|own| own == tenant_id)
    }

    /// 404 (not 403) when a tenant-scoped caller names another tenant's resource.
    /// The tenant filter of a list: a tenant-scoped caller is confined to its own tenant
    /// whatever it asks for, and naming another tenant is a 404.
    pub fn tenant_filter(&self, requested: Option<String>) -> ApiResult<Option<String>> {
        match (self.tenant_scope(), requested) {
            (Some(own), Some(t)) if t != own => Err(ApiError::not_found("tenant", t)),
            (Some(own), _) => Ok(Some(own.to_owned())),
            (None, requested) => Ok(requested),
        }
    }

    pub fn check_tenant(
        &self,
        tenant_id: Option<&str>,
        resource: &'static str,
        id: &str,
    ) -> ApiResult<()> {
        match (self.tenant_scope(), tenant_id) {
            (None, _) => Ok(()),
            (Some(own), Some(t)) if own == t => Ok(()),
            _ => Err(ApiError::not_found(resource, id)),
        }
    }

    pub fn is_platform_admin(&self) -> bool {
        self.role == Role::PlatformAdmin
    }

    /// Platform-level writes (platform resources, lifecycle, plans).
    pub fn require_platform_admin(&self) -> ApiResult<()> {
        if self.is_platform_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                "this action needs the platform_admin role",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_admin_writes_but_viewer_and_auditor_do_not() {
        assert!(Access::TenantWrite.admits(Role::TenantAdmin));
        assert!(!Access::TenantWrite.admits(Role::TenantViewer));
        assert!(!Access::TenantWrite.admits(Role::Auditor));
        assert!(!Access::PlatformAdmin.admits(Role::TenantAdmin));
    }

    #[test]
    fn node_tokens_cannot_manage() {
        for access in [
            Access::Read,
            Access::TenantWrite,
            Access::PlatformAdmin,
            Access::AuditRead,
            Access::PlatformRead,
        ] {
            assert!(!access.admits(Role::Node), "{access:?}");
        }
        assert!(Access::Node.admits(Role::Node));
    }

    #[test]
    fn scoped_callers_get_404_for_other_tenants() {
        let p = Principal {
            subject: "u".into(),
            role: Role::TenantAdmin,
            tenant_id: Some("a".into()),
        };
        assert!(p.check_tenant(Some("a"), "tenant", "a").is_ok());
        let err = p
            .check_tenant(Some("b"), "tenant", "b")
            .expect_err("other tenant");
        assert_eq!(err.status(), axum::http::StatusCode::NOT_FOUND);
        let err = p
            .check_tenant(None, "plan", "p")
            .expect_err("platform resource");
        assert_eq!(err.status(), axum::http::StatusCode::NOT_FOUND);
    }
}
