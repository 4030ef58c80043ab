//! Snapshot files in `version-2`: `snapshot.<hex zxid>`, written to a temporary name,
//! synced and renamed, so a crash never leaves a half-written snapshot under the real
//! name. Also the purge of old snapshots and of log segments no snapshot needs.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::recovery::segment_files;
use crate::tree::snapshot;
use crate::tree::DataTree;

const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// Snapshots of this process and a leader's snapshot installed over them (SNAP) take
/// turns: a snapshot of a tree from before an install must never land after it, where
/// recovery would take it for the newest state.
static SNAPSHOT_FILES: std::sync::Mutex<()> = std::sync::Mutex::new(());
/// How many leader snapshots this process installed.
static INSTALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The number of installs so far: a snapshot of a tree taken now is written only if no
/// install comes between.
pub fn installs() -> u64 {
    INSTALLS.load(std::sync::atomic::Ordering::Acquire)
}

pub fn file_name(zxid: i64) -> String {
    format!("snapshot.{zxid:x}")
}

fn parse_file_name(name: &str) -> Option<i64> {
    i64::from_str_radix(name.strip_prefix("snapshot.")?, 16).ok()
}

/// The snapshots in `dir`, oldest first.
pub fn snapshot_files(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(zxid) = entry.file_name().to_str().and_then(parse_file_name) {
            files.push((zxid, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Writes a snapshot of `tree`, a version taken when `installs()` was `installs_then`, and
/// returns its path and size; None if a leader's snapshot was installed since (the tree
/// is history). The image is this process's own: written as encoded, without the copy a
/// check would take.
pub fn write(dir: &Path, tree: &DataTree, installs_then: u64) -> std::io::Result<Option<(PathBuf, usize)>> {
    let bytes = snapshot::encode(tree);
    let _turn = SNAPSHOT_FILES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if installs() != installs_then {
        return Ok(None);
    }
    let path = write_file(dir, tree.last_zxid(), &bytes)?;
    Ok(Some((path, bytes.len())))
}

/// Installs a snapshot image a leader sent (SNAP) for `zxid`, checked before it is
/// written, and removes what it replaces: every log segment and every newer snapshot.
/// Returns the tree it holds.
pub fn install(dir: &Path, zxid: i64, bytes: &[u8]) -> std::io::Result<DataTree> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    let image = match snapshot::access(&aligned) {
        Ok(image) if image.zxid.to_native() == zxid => image,
        _ => return Err(std::io::Error::other(format!("a snapshot image for {zxid:#x} that does not check out"))),
    };
    // Loaded before anything on disk changes: an image that is not a tree replaces nothing.
    let tree = snapshot::load(image)
        .map_err(|error| std::io::Error::other(format!("a snapshot image for {zxid:#x}: {error:?}")))?;
    let _turn = SNAPSHOT_FILES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    INSTALLS.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    write_file(dir, zxid, bytes)?;
    for (_, path) in segment_files(dir).map_err(|error| std::io::Error::other(error.to_string()))? {
        std::fs::remove_file(path)?;
    }
    remove_snapshots_after(dir, zxid);
    File::open(dir)?.sync_all()?;
    Ok(tree)
}

/// Snapshots after a cut may hold records the ensemble never committed.
pub fn remove_snapshots_after(dir: &Path, zxid: i64) {
    if let Ok(snapshots) = snapshot_files(dir) {
        for (_, path) in snapshots.into_iter().filter(|(snapshot_zxid, _)| *snapshot_zxid > zxid) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes snapshot bytes under a temporary name, syncs and renames them into place.
fn write_file(dir: &Path, zxid: i64, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(file_name(zxid));
    let temporary = dir.join(format!("{}.tmp", file_name(zxid)));
    let mut file = File::create(&temporary)?;
    // Written and flushed a slice at a time, so the device never holds a long queue of
    // snapshot pages in front of the log's fdatasync, which every write waits for.
    for chunk in bytes.chunks(WRITE_CHUNK_BYTES) {
        file.write_all(chunk)?;
        file.sync_data()?;
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(path)
}

/// A mapped, verified snapshot.
pub struct LoadedSnapshot {
    pub path: PathBuf,
    pub zxid: i64,
    pub map: Mmap,
}

impl LoadedSnapshot {
    pub fn tree(&self) -> Result<DataTree, snapshot::SnapshotError> {
        snapshot::load(snapshot::access_verified(&self.map))
    }
}

/// The newest snapshot whose checksum holds; damaged ones are skipped with a warning (the
/// log still holds what they held, as long as purge kept it).
pub fn newest_valid(dir: &Path) -> std::io::Result<Option<LoadedSnapshot>> {
    for (zxid, path) in snapshot_files(dir)?.into_iter().rev() {
        let file = File::open(&path)?;
        // SAFETY: read-only map of a file this process renamed into place and never modifies.
        let map = unsafe { Mmap::map(&file) }?;
        match snapshot::access(&map) {
            Ok(image) if image.zxid.to_native() == zxid => return Ok(Some(LoadedSnapshot { path, zxid, map })),
            Ok(_) => tracing::warn!(path = %path.display(), "snapshot zxid does not match its name; skipping"),
            Err(error) => tracing::warn!(path = %path.display(), ?error, "damaged snapshot; skipping"),
        }
    }
    Ok(None)
}

/// Keeps the newest `retain_count` snapshots and the log segments needed to replay from
/// the oldest of them; removes the rest (autopurge.snapRetainCount).
pub fn purge(dir: &Path, retain_count: usize) -> std::io::Result<usize> {
    assert!(retain_count >= 1);
    let snapshots = snapshot_files(dir)?;
    if snapshots.len() <= retain_count {
        return Ok(0);
    }
    let (old, kept) = snapshots.split_at(snapshots.len() - retain_count);
    let oldest_kept_zxid = kept[0].0;
    let mut removed = 0;
    for (_, path) in old {
        std::fs::remove_file(path)?;
        removed += 1;
    }
    let segments = segment_files(dir).map_err(|error| std::io::Error::other(error.to_string()))?;
    // A segment can go when the next one starts at or before the oldest kept snapshot's
    // next zxid: every record it holds is in that snapshot. The last segment always stays.
    for window in segments.windows(2) {
        let (_, path) = &window[0];
        let (next_first_zxid, _) = window[1];
        if next_first_zxid <= oldest_kept_zxid + 1 {
            std::fs::remove_file(path)?;
            removed += 1;
        }
    }
    Ok(removed)
}
