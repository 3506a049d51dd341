//! API keys (API §3.2): created for a tenant, plaintext shown once, stored as SHA-256 hashes,
//! rotated with a grace period for the previous secret, revoked for good.

mod model;
mod routes;
pub mod secret;

pub use model::{
    ApiKey, ApiKeyCreate, ApiKeyIssued, ApiKeyView, KeyStatus, RotateKey, DEFAULT_GRACE_SECS,
    MAX_GRACE_SECS,
};
pub use routes::routes;

use crate::error::ApiResult;
use crate::resource;
use crate::resource::Resource;
use crate::store::{resources, Tx};

/// Revokes every active key of a tenant inside the caller's transaction (tenant
/// termination); returns how many. The caller locks the keys first with [`lock_all`].
pub async fn revoke_all(tx: &mut Tx, tenant_id: &str) -> ApiResult<u64> {
    let active =
        resource::load_for_tenant_tx::<ApiKey>(tx, tenant_id, Some(KeyStatus::Active.as_str()))
            .await?;
    let mut revoked = 0;
    for mut stored in active {
        stored.value.revoke()?;
        resource::replace(tx, &mut stored).await?;
        revoked += 1;
    }
    Ok(revoked)
}

/// Locks the rows of every key of a tenant for the rest of the transaction.
///
/// Writes of one key lock its row, then the snapshot version. A transaction that changes
/// several keys after bumping the version must hold all their rows first, or it can wait on
/// such a write while that write waits on it (a deadlock on PostgreSQL).
pub async fn lock_all(tx: &mut Tx, tenant_id: &str) -> ApiResult<()> {
    resources::lock_by_tenant(tx, ApiKey::KIND, tenant_id).await?;
    Ok(())
}
