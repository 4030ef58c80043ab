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

/// Writes a snapshot of `tree` and returns its path and size. The image is this
/// process's own: written as encoded, without the copy a check would take.
pub fn write(dir: &Path, tree: &DataTree) -> std::io::Result<(PathBuf, usize)> {
    let bytes = snapshot::encode(tree);
    let path = write_file(dir, tree.last_zxid(), &bytes)?;
    Ok((path, bytes.len()))
}

/// Writes a snapshot image a leader sent (SNAP) for `zxid`, checked before it is written.
pub fn write_image(dir: &Path, zxid: i64, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    match snapshot::access(&aligned) {
        Ok(image) if image.zxid.to_native() == zxid => {}
        _ => return Err(std::io::Error::other(format!("a snapshot image for {zxid:#x} that does not check out"))),
    }
    drop(aligned);
    write_file(dir, zxid, bytes)
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
    pub fn tree(&self) -> DataTree {
        snapshot::load(snapshot::access(&self.map).expect("verified when found"))
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
