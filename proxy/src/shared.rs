//! The configuration in force, swapped whole with `arc-swap` (DESIGN.md §3.1).

use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use medgate_config::{Snapshot, SnapshotError};

use crate::catalog::Catalog;
use crate::protection::Protection;

/// Shared by every request and the watcher.
#[derive(Debug, Default)]
pub struct Shared {
    catalog: ArcSwapOption<Catalog>,
    /// Where the last good snapshot is kept, to start from when the control plane is down.
    persist_to: Option<PathBuf>,
    /// Live protection state (limiters, breakers, bulkheads), fed each snapshot's rules.
    pub protection: Arc<Protection>,
}

impl Shared {
    pub fn new(persist_to: Option<PathBuf>) -> Self {
        Self::with_protection(persist_to, Arc::new(Protection::default()))
    }

    pub fn with_protection(persist_to: Option<PathBuf>, protection: Arc<Protection>) -> Self {
        Self {
            catalog: ArcSwapOption::empty(),
            persist_to,
            protection,
        }
    }

    /// The catalog in force, None before the first snapshot.
    pub fn catalog(&self) -> Option<Arc<Catalog>> {
        self.catalog.load_full()
    }

    pub fn version(&self) -> Option<u64> {
        self.catalog.load().as_ref().map(|c| c.version())
    }

    /// Validates, indexes and swaps in a snapshot; an invalid one leaves the current in force.
    pub fn install(&self, snapshot: Snapshot) -> Result<(), SnapshotError> {
        snapshot.validate()?;
        let text = self
            .persist_to
            .as_ref()
            .map(|_| serde_json::to_vec(&snapshot));
        let version = snapshot.version;
        let previous = self.catalog.load_full();
        let catalog = Catalog::new_after(snapshot, previous.as_deref());
        self.protection.apply(&catalog.snapshot);
        self.catalog.store(Some(Arc::new(catalog)));
        if let (Some(path), Some(Ok(text))) = (&self.persist_to, text) {
            if let Err(e) = write_atomically(path, &text) {
                tracing::warn!(error = %e, path = %path.display(), "last good snapshot could not be saved");
            }
        }
        tracing::info!(version, "snapshot applied");
        Ok(())
    }

    /// Starts from the snapshot saved by an earlier run, if any and valid.
    pub fn load_persisted(&self) -> bool {
        let Some(path) = &self.persist_to else {
            return false;
        };
        let Ok(text) = std::fs::read(path) else {
            return false;
        };
        match serde_json::from_slice::<Snapshot>(&text)
            .map_err(|e| e.to_string())
            .and_then(|s| {
                s.validate().map_err(|e| e.to_string())?;
                Ok(s)
            }) {
            Ok(snapshot) => {
                let version = snapshot.version;
                let catalog = Catalog::new(snapshot);
                self.protection.apply(&catalog.snapshot);
                self.catalog.store(Some(Arc::new(catalog)));
                tracing::info!(version, path = %path.display(), "started from the last good snapshot");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %path.display(), "saved snapshot ignored");
                false
            }
        }
    }
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create(true).truncate(true);
    // The snapshot holds upstream credentials and domains' private keys: owner only.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    std::io::Write::write_all(&mut file.open(&tmp)?, bytes)?;
    std::fs::rename(tmp, path)
}
