//! Who is calling: JWT bearer tokens (DESIGN.md §5), roles, and tenant scoping.
//!
//! Tenant-scoped callers see only their tenant: another tenant's resource is a 404, never a
//! 403, so existence does not leak. A wrong role is a 403 whatever the resource.

mod jwt;
mod principal;

pub use jwt::{Claims, JwtError, JwtKeys};
pub use principal::{Access, Principal, Role};
