//! The spool files: events as JSON lines, appended and synced. In static mode (no control
//! plane) the spool is where events end up, so it is rotated: when the file reaches its size
//! limit it is renamed with a UTC timestamp (`usage-spool.20261130T122233.123456Z.jsonl`), and
//! the oldest rotated files beyond the kept count are deleted.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// When a static-mode spool is rotated, and how many rotated files stay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// The active file is rotated once it holds at least this many bytes.
    pub max_bytes: u64,
    /// Rotated files kept (the newest); 0 keeps them all.
    pub keep: usize,
}

/// Appends events as JSON lines and syncs the file.
pub fn append<E: Serialize>(path: &Path, events: &[E]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let mut text = String::new();
    for e in events {
        text.push_str(&serde_json::to_string(e).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    file.write_all(text.as_bytes())?;
    file.sync_data()
}

/// Rotates `path` when it reached `rotation.max_bytes`, then prunes the oldest rotated
/// files; returns the rotated file's path, if it rotated.
pub fn rotate_if_full(path: &Path, rotation: Rotation) -> std::io::Result<Option<PathBuf>> {
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if size < rotation.max_bytes {
        return Ok(None);
    }
    let (stem, dir) = parts(path)?;
    // Names sort by time; two rotations within one microsecond wait for the next.
    let target = loop {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
        let target = dir.join(format!("{stem}.{stamp}.jsonl"));
        if !target.exists() {
            break target;
        }
        std::thread::sleep(std::time::Duration::from_micros(1));
    };
    std::fs::rename(path, &target)?;
    prune(path, rotation.keep)?;
    Ok(Some(target))
}

/// The rotated files of `path`, oldest first.
pub fn rotated(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    let (stem, dir) = parts(path)?;
    let prefix = format!("{stem}.");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            // `<stem>.<timestamp>.jsonl`: a digit after the dot, which also leaves out the
            // active file and `<stem>.rejected.jsonl`.
            name.strip_prefix(&prefix)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
                && name.ends_with(".jsonl")
        })
        .map(|entry| entry.path())
        .collect();
    files.sort();
    Ok(files)
}

/// Deletes the oldest rotated files of `path` beyond `keep` (0: none).
fn prune(path: &Path, keep: usize) -> std::io::Result<()> {
    if keep == 0 {
        return Ok(());
    }
    let files = rotated(path)?;
    let excess = files.len().saturating_sub(keep);
    for old in &files[..excess] {
        tracing::info!(file = %old.display(), "rotated spool file deleted (spool keep_files)");
        std::fs::remove_file(old)?;
    }
    Ok(())
}

/// The file name without `.jsonl`, and the directory.
fn parts(path: &Path) -> std::io::Result<(String, &Path)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| std::io::Error::other(format!("bad spool path {}", path.display())))?;
    let stem = name.strip_suffix(".jsonl").unwrap_or(name).to_owned();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Ok((stem, dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line_count(path: &Path) -> usize {
        std::fs::read_to_string(path)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    #[test]
    fn a_full_spool_is_rotated_and_only_the_newest_rotated_files_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("usage-spool.jsonl");
        std::fs::write(dir.path().join("usage-spool.rejected.jsonl"), "{}\n").expect("write");
        let rotation = Rotation {
            max_bytes: 1_000,
            keep: 3,
        };
        let event = |seq: u64| json!({ "request_id": format!("r{seq}"), "seq": seq, "padding": "x".repeat(80) });
        let mut seq = 0;
        let mut rotations = 0;
        for _ in 0..100 {
            append(&path, &[event(seq), event(seq + 1)]).expect("append");
            seq += 2;
            if rotate_if_full(&path, rotation).expect("rotate").is_some() {
                rotations += 1;
            }
            assert!(
                std::fs::metadata(&path).map_or(0, |m| m.len()) < rotation.max_bytes,
                "the active file never stays above the limit"
            );
        }
        assert!(rotations >= 10, "{rotations} rotations");
        let mut files = rotated(&path).expect("list");
        assert_eq!(files.len(), 3, "{files:?}");
        // The kept files are the newest: with the active file they hold the last events
        // written, in order, with none missing between them.
        files.push(path.clone());
        let seqs: Vec<u64> = files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<serde_json::Value>(l).expect("json")["seq"]
                            .as_u64()
                            .expect("seq")
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        let first = seqs[0];
        assert!(first > 0, "the oldest files were pruned");
        assert_eq!(seqs, (first..seq).collect::<Vec<_>>());
        assert!(
            dir.path().join("usage-spool.rejected.jsonl").exists(),
            "other files are left alone"
        );
    }

    #[test]
    fn keep_zero_keeps_every_rotated_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("access-log-spool.jsonl");
        let rotation = Rotation {
            max_bytes: 10,
            keep: 0,
        };
        for i in 0..5 {
            append(&path, &[json!({ "request_id": format!("r{i}") })]).expect("append");
            let rotated_to = rotate_if_full(&path, rotation).expect("rotate");
            assert!(rotated_to.is_some());
        }
        let files = rotated(&path).expect("list");
        assert_eq!(files.len(), 5);
        let ids: Vec<String> = files
            .iter()
            .map(|f| std::fs::read_to_string(f).expect("read"))
            .collect();
        for (i, text) in ids.iter().enumerate() {
            assert!(text.contains(&format!("\"r{i}\"")), "oldest first: {ids:?}");
        }
        assert!(!path.exists(), "the next append starts a new file");
    }

    #[test]
    fn a_small_or_missing_spool_is_left_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("usage-spool.jsonl");
        let rotation = Rotation {
            max_bytes: 1 << 20,
            keep: 2,
        };
        assert_eq!(rotate_if_full(&path, rotation).expect("missing"), None);
        append(&path, &[json!({ "request_id": "r" })]).expect("append");
        assert_eq!(rotate_if_full(&path, rotation).expect("small"), None);
        assert_eq!(line_count(&path), 1);
    }
}
