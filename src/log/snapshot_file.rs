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
/// is history). The archive goes to the file as it is encoded; the header, which holds its
/// length and checksum, last.
pub fn write(dir: &Path, tree: &DataTree, installs_then: u64) -> std::io::Result<Option<(PathBuf, usize)>> {
    let zxid = tree.last_zxid();
    let temporary = temporary_path(dir, zxid, OWN_SUFFIX);
    let written = write_temporary(&temporary, tree);
    let archive = match written {
        Ok(archive) => archive,
        Err(error) => {
            // A partial snapshot of a large tree is hundreds of megabytes: on a full disk,
            // leaving each attempt's would keep it full.
            let _ = std::fs::remove_file(&temporary);
            return Err(error);
        }
    };
    let _turn = SNAPSHOT_FILES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if installs() != installs_then {
        std::fs::remove_file(&temporary)?;
        return Ok(None);
    }
    let path = rename_into_place(dir, zxid, &temporary)?;
    Ok(Some((path, snapshot::HEADER_BYTES + archive.length as usize)))
}

fn write_temporary(temporary: &Path, tree: &DataTree) -> std::io::Result<snapshot::ArchiveSummary> {
    let mut file = File::create(temporary)?;
    file.write_all(&[0; snapshot::HEADER_BYTES])?;
    let archive = snapshot::encode_archive(tree, SyncedInChunks { file: &file, unsynced_bytes: 0 })?;
    std::os::unix::fs::FileExt::write_all_at(&file, &archive.header(), 0)?;
    file.sync_all()?;
    Ok(archive)
}

/// A file written through, and synced every `WRITE_CHUNK_BYTES`, so the device never
/// holds a long queue of snapshot pages in front of the log's fdatasync, which every
/// write waits for.
struct SyncedInChunks<'a> {
    file: &'a File,
    unsynced_bytes: usize,
}

impl Write for SyncedInChunks<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.unsynced_bytes += written;
        if self.unsynced_bytes >= WRITE_CHUNK_BYTES {
            self.file.sync_data()?;
            self.unsynced_bytes = 0;
        }
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
    let temporary = temporary_path(dir, zxid, INSTALL_SUFFIX);
    let file = File::create(&temporary)?;
    SyncedInChunks { file: &file, unsynced_bytes: 0 }.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    rename_into_place(dir, zxid, &temporary)
}

/// Temporary names: this process's own snapshots are written outside the turn that
/// installs take, so the two never share a name.
const OWN_SUFFIX: &str = "tmp";
const INSTALL_SUFFIX: &str = "installing";

fn temporary_path(dir: &Path, zxid: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{}.{suffix}", file_name(zxid)))
}

/// Renames a synced temporary file to the snapshot's name and syncs the directory.
fn rename_into_place(dir: &Path, zxid: i64, temporary: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join(file_name(zxid));
    std::fs::rename(temporary, &path)?;
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

/// Removes the temporaries of snapshots a crash cut short, this process's own and
/// installs'. Run when the snapshotter starts: neither kind is being written then, and
/// the installs' turn is held.
pub fn remove_temporaries(dir: &Path) -> std::io::Result<usize> {
    let _turn = SNAPSHOT_FILES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        let temporary = [OWN_SUFFIX, INSTALL_SUFFIX]
            .iter()
            .any(|suffix| name.strip_prefix("snapshot.").is_some_and(|rest| rest.ends_with(&format!(".{suffix}"))));
        if !temporary {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(error) => tracing::warn!(path = %path.display(), %error, "cannot remove a snapshot's temporary file"),
        }
    }
    Ok(removed)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{AclEntry, CreateTxn, Step, Txn, TxnOp};

    fn tree_of(node_count: usize) -> DataTree {
        let mut tree = DataTree::new();
        for index in 0..node_count {
            let op = TxnOp::Single(Step::Create(CreateTxn {
                path: format!("/n{index:06}"),
                data: Some(vec![index as u8; 100]),
                acl: vec![AclEntry { perms: 31, scheme: "world".into(), id: "anyone".into() }],
                ephemeral_owner: 0,
                parent_cversion: index as i32 + 1,
            }));
            let zxid = index as i64 + 1;
            let bytes = Txn { session_id: 1, cxid: 0, zxid, time_ms: zxid, op }.to_bytes();
            tree.apply(crate::txn::access_written(&bytes), &mut Vec::new());
        }
        tree
    }

    #[test]
    fn a_snapshot_streamed_to_its_file_is_the_image_encoded_in_memory() {
        // Thousands of nodes: the archive passes through the checksum in many slices.
        let dir = std::env::temp_dir().join(format!("ringkeeper-snapshot-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tree = tree_of(3000);
        let (path, size_bytes) = write(&dir, &tree, installs()).unwrap().expect("no install came between");
        let written = std::fs::read(&path).unwrap();
        assert_eq!(size_bytes, written.len());
        assert!(written == snapshot::encode(&tree), "the same bytes, header included");
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(&written);
        let loaded = snapshot::load(snapshot::access(&aligned).unwrap()).unwrap();
        assert_eq!(loaded.digest(), tree.digest());
        assert!(!temporary_path(&dir, tree.last_zxid(), OWN_SUFFIX).exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_temporaries_of_snapshots_a_crash_cut_short_are_removed_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("ringkeeper-snapshot-temporaries-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let own = temporary_path(&dir, 0x42, OWN_SUFFIX);
        let installing = temporary_path(&dir, 0x43, INSTALL_SUFFIX);
        std::fs::write(&own, [0; 100]).unwrap();
        std::fs::write(&installing, [0; 100]).unwrap();
        std::fs::write(dir.join("notes.tmp"), [0; 1]).unwrap();
        write(&dir, &tree_of(3), installs()).unwrap().expect("no install came between");
        assert_eq!(remove_temporaries(&dir).unwrap(), 2);
        assert!(!own.exists() && !installing.exists());
        assert!(dir.join("notes.tmp").exists(), "only snapshots' temporaries");
        assert_eq!(snapshot_files(&dir).unwrap().len(), 1, "the snapshot itself is kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
