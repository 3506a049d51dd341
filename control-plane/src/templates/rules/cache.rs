//! Compiled versions by (template, version, content hash). Published content never changes,
//! so an entry never goes stale; the hash in the key guards against a deleted template's
//! id coming back with other content. Bounded: when full, the cache starts over (versions
//! in use are recompiled on their next record, which costs one compile each).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::compiled::CompiledVersion;
use crate::templates::versions::TemplateVersion;

/// Most compiled versions kept.
pub const CAPACITY: usize = 512;

type Key = (String, i64, String);

fn cache() -> &'static Mutex<HashMap<Key, Arc<CompiledVersion>>> {
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<CompiledVersion>>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The compiled form of a published version, compiling it on first use.
pub fn compiled(version: &TemplateVersion) -> Arc<CompiledVersion> {
    let key = (
        version.template_id.clone(),
        version.version,
        version.content_sha256.clone(),
    );
    // A panic while holding the lock leaves the map consistent (inserts are single calls).
    let lock = || cache().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hit) = lock().get(&key) {
        return hit.clone();
    }
    // Compiled outside the lock: two requests may both compile, and either result is right.
    let compiled = Arc::new(CompiledVersion::new(&version.content));
    let mut map = lock();
    if map.len() >= CAPACITY {
        map.clear();
    }
    map.insert(key, compiled.clone());
    compiled
}
