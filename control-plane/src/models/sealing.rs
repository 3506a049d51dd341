//! Upgrading rows written before upstream keys were sealed: at start, the control plane
//! seals every key still stored in plaintext.

use medgate_config::Settings;

use super::Model;
use crate::error::ApiResult;
use crate::notifier::sealed::SealKey;
use crate::resource::{self, Resource};
use crate::store::Store;

/// Seals the plaintext upstream keys of every model; returns how many models it rewrote.
/// Without a server secret nothing can be sealed: the keys stay as they are, with a warning.
pub async fn seal_plaintext_keys(store: &Store, settings: &Settings) -> ApiResult<usize> {
    let pending: Vec<String> = resource::load_all::<Model>(store)
        .await?
        .into_iter()
        .filter(Model::has_plaintext_keys)
        .map(|m| m.id)
        .collect();
    if pending.is_empty() {
        return Ok(0);
    }
    if SealKey::from_settings(settings, "").is_err() {
        tracing::warn!(
            models = pending.len(),
            "upstream API keys are stored in plaintext: set MEDGATE_HMAC_SECRET to have them sealed"
        );
        return Ok(0);
    }
    let mut rewritten = 0;
    for id in &pending {
        let changed = resource::retrying(Model::LABEL, || async {
            let mut tx = store.begin().await?;
            let Some(mut stored) = resource::load_tx::<Model>(&mut tx, id).await? else {
                return Ok(false);
            };
            if !stored.value.has_plaintext_keys() {
                return Ok(false);
            }
            stored.value.seal_upstream_keys(settings)?;
            resource::replace(&mut tx, &mut stored).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await?;
        rewritten += usize::from(changed);
    }
    tracing::info!(
        models = rewritten,
        "sealed upstream API keys stored in plaintext"
    );
    Ok(rewritten)
}
