//! `ringkeeper import --from-zookeeper DIR --data-dir OUT`: a ZooKeeper data directory
//! (3.5 to 3.9: the newest valid snapshot, then the transaction logs after it) becomes a
//! Ringkeeper data directory holding the same tree, every Stat field, ACL and sequence
//! counter, TTL and container nodes, quotas and sessions (whose passwords ZooKeeper
//! derives from their ids, so clients keep them). The result is one Ringkeeper snapshot
//! at ZooKeeper's last zxid: a server started on it continues from there.

pub mod compressed;
pub mod error;
pub mod java;
pub mod replay;
pub mod zookeeper_log;
pub mod zookeeper_snapshot;

use std::path::{Path, PathBuf};

pub use error::ImportError;
use replay::Replay;
use zookeeper_snapshot::ZookeeperSnapshot;

use crate::tree::snapshot::{SnapshotImage, SnapshotSession};
use crate::tree::DataTree;

/// What to import and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// ZooKeeper's dataDir (or its `version-2` folder).
    pub zookeeper_dir: PathBuf,
    /// ZooKeeper's dataLogDir, where it is not the dataDir.
    pub zookeeper_log_dir: Option<PathBuf>,
    /// Ringkeeper's dataDir; its `version-2` must hold no snapshot or log yet.
    pub data_dir: PathBuf,
    /// Close every session at the end (their ephemeral nodes go with them) instead of
    /// keeping them to expire as they would have.
    pub drop_sessions: bool,
}

/// What an import read and wrote.
#[derive(Debug)]
pub struct Report {
    pub snapshot: Option<PathBuf>,
    pub logs: Vec<PathBuf>,
    /// Logs whose last record a crash cut short, and where: ZooKeeper's reader stops
    /// there too.
    pub cuts: Vec<(PathBuf, usize)>,
    pub transactions: u64,
    /// Logged changes a fuzzy snapshot already held, failed as in ZooKeeper's replay.
    pub failed: u64,
    pub last_zxid: i64,
    pub nodes: usize,
    pub sessions: usize,
    pub digests_checked: u64,
    pub digest_mismatches: Vec<i64>,
    /// Whether the tree after the last transaction has the digest ZooKeeper logged there.
    pub last_digest_equal: Option<bool>,
    pub written: PathBuf,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.snapshot {
            Some(snapshot) => writeln!(f, "snapshot: {}", snapshot.display())?,
            None => writeln!(f, "snapshot: none (the logs from the start)")?,
        }
        writeln!(f, "logs: {}", self.logs.len())?;
        for (log, offset) in &self.cuts {
            writeln!(
                f,
                "cut short: {} at offset {offset} (a record a crash interrupted; the rest is not read)",
                log.display()
            )?;
        }
        writeln!(f, "transactions replayed: {} ({} already in the snapshot)", self.transactions, self.failed)?;
        writeln!(f, "last zxid: {:#x}", self.last_zxid)?;
        writeln!(f, "znodes: {}, sessions: {}", self.nodes, self.sessions)?;
        writeln!(
            f,
            "tree digests equal to ZooKeeper's: {} of {} (inside the snapshot's fuzzy region they may differ)",
            self.digests_checked - self.digest_mismatches.len() as u64,
            self.digests_checked
        )?;
        let last = match self.last_digest_equal {
            Some(true) => "equal to ZooKeeper's",
            Some(false) => "DIFFERENT from ZooKeeper's",
            None => "not logged by ZooKeeper",
        };
        writeln!(f, "tree digest after the last transaction: {last}")?;
        write!(f, "written: {}", self.written.display())
    }
}

pub fn run(options: &Options) -> Result<Report, ImportError> {
    let snapshot_dir = version_dir(&options.zookeeper_dir);
    let log_dir = version_dir(options.zookeeper_log_dir.as_deref().unwrap_or(&options.zookeeper_dir));
    let out_dir = options.data_dir.join("version-2");
    refuse_occupied(&out_dir)?;
    let (snapshot_path, snapshot) = newest_valid_snapshot(&snapshot_dir)?;
    let tree = match &snapshot {
        Some(snapshot) => tree_of(snapshot_path.as_deref().expect("a snapshot has a path"), snapshot)?,
        None => DataTree::new(),
    };
    let mut replay = Replay::new(tree);
    // ZooKeeper's snapshot digest is of the tree at its zxid: checked when the replay
    // gets there (or now, for a snapshot that is not fuzzy).
    replay.expect_digest(snapshot.as_ref().and_then(|snapshot| snapshot.digest));
    let logs = logs_after(&log_dir, replay.tree.last_zxid())?;
    let mut cuts = Vec::new();
    for log in &logs {
        let bytes = read_file(log)?;
        let file = zookeeper_log::read(log, &bytes)?;
        for txn in &file.txns {
            replay.apply(txn).map_err(|reason| ImportError::new(log, txn.offset, reason))?;
        }
        if let Some(offset) = file.cut_at {
            tracing::warn!(log = %log.display(), offset, "a record cut short (a crash while ZooKeeper wrote it): the rest of this log is not read, as ZooKeeper does");
            cuts.push((log.clone(), offset));
        }
    }
    delete_orphan_ephemerals(&mut replay.tree);
    if options.drop_sessions {
        close_every_session(&mut replay.tree);
    }
    std::fs::create_dir_all(&out_dir).map_err(|error| ImportError::new(&out_dir, 0, error.to_string()))?;
    let tree = &replay.tree;
    let written = crate::log::snapshot_file::write(&out_dir, tree, crate::log::snapshot_file::installs())
        .map_err(|error| ImportError::new(&out_dir, 0, format!("cannot write the snapshot: {error}")))?
        .map(|(path, _)| path)
        .expect("no snapshot is installed in this process");
    Ok(Report {
        snapshot: snapshot_path,
        logs,
        cuts,
        transactions: replay.applied,
        failed: replay.failed,
        last_zxid: tree.last_zxid(),
        nodes: tree.node_count(),
        sessions: tree.sessions().count(),
        digests_checked: replay.digests_checked,
        digest_mismatches: replay.digest_mismatches.clone(),
        last_digest_equal: replay.last_digest_equal,
        written,
    })
}

/// ZooKeeper keeps its files in `version-2` below the configured directory.
fn version_dir(dir: &Path) -> PathBuf {
    let inner = dir.join("version-2");
    if inner.is_dir() {
        inner
    } else {
        dir.to_owned()
    }
}

fn refuse_occupied(out_dir: &Path) -> Result<(), ImportError> {
    let Ok(entries) = std::fs::read_dir(out_dir) else { return Ok(()) };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("log.") || name.starts_with("snapshot.") {
            return Err(ImportError::new(
                &entry.path(),
                0,
                "the target data directory already holds data; import into an empty one",
            ));
        }
    }
    Ok(())
}

fn read_file(path: &Path) -> Result<Vec<u8>, ImportError> {
    std::fs::read(path).map_err(|error| ImportError::new(path, 0, error.to_string()))
}

/// Files of `dir` whose names `zxid_of` reads, by zxid.
fn files_by_zxid(dir: &Path, zxid_of: fn(&str) -> Option<i64>) -> Result<Vec<(i64, PathBuf)>, ImportError> {
    let entries = std::fs::read_dir(dir).map_err(|error| ImportError::new(dir, 0, error.to_string()))?;
    let mut files: Vec<(i64, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            // A compressed snapshot's zxid is the part before its extension.
            let (_, stem) = compressed::Compression::of_name(&name);
            zxid_of(stem).map(|zxid| (zxid, entry.path()))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// The newest snapshot that reads whole, as ZooKeeper picks it: one a crash cut short
/// (it does not end with its seal) is passed over for an older one. A complete snapshot
/// that does not read (damage, an unsupported format) stops the import: going back to an
/// older one could miss transactions the logs no longer hold.
fn newest_valid_snapshot(dir: &Path) -> Result<(Option<PathBuf>, Option<ZookeeperSnapshot>), ImportError> {
    for (_, path) in files_by_zxid(dir, zookeeper_snapshot::zxid_of_name)?.into_iter().rev() {
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        let bytes = match compressed::decompress(compressed::Compression::of_name(name).0, &read_file(&path)?) {
            Ok(bytes) => bytes,
            Err(error) if error.cut_short => {
                tracing::warn!(path = %path.display(), reason = %error.reason, "a compressed snapshot cut short; taking an older one");
                continue;
            }
            Err(error) => return Err(ImportError::new(&path, error.offset, error.reason)),
        };
        if !zookeeper_snapshot::looks_complete(&bytes) {
            tracing::warn!(path = %path.display(), "a snapshot cut short; taking an older one");
            continue;
        }
        let snapshot = zookeeper_snapshot::read(&path, &bytes)?;
        return Ok((Some(path), Some(snapshot)));
    }
    Ok((None, None))
}

/// The logs that can hold transactions after `zxid`, oldest first: every log named after
/// a later zxid, and the newest one named at or before it (`FileTxnLog.getLogFiles`).
fn logs_after(dir: &Path, zxid: i64) -> Result<Vec<PathBuf>, ImportError> {
    let logs = files_by_zxid(dir, zookeeper_log::zxid_of_name)?;
    let first = logs.iter().rposition(|(start, _)| *start <= zxid).unwrap_or(0);
    Ok(logs.into_iter().skip(first).map(|(_, path)| path).collect())
}

/// The snapshot's tree, through Ringkeeper's own snapshot loading (which checks that
/// the nodes make a tree).
pub fn tree_of(path: &Path, snapshot: &ZookeeperSnapshot) -> Result<DataTree, ImportError> {
    // `load` refuses a path twice too, but without naming it.
    if let Some(pair) = snapshot.nodes.windows(2).find(|pair| pair[0].path == pair[1].path) {
        return Err(ImportError::new(path, 0, format!("{} appears twice", pair[0].path)));
    }
    let image = SnapshotImage {
        zxid: snapshot.zxid,
        nodes: snapshot.nodes.clone(),
        sessions: snapshot
            .sessions
            .iter()
            .map(|&(session_id, timeout_ms)| SnapshotSession {
                session_id,
                timeout_ms,
                password: java::session_password(session_id),
            })
            .collect(),
    };
    let mut bytes = rkyv::util::AlignedVec::<16>::new();
    bytes.extend_from_slice(&crate::tree::snapshot::encode_image(&image));
    let archived = crate::tree::snapshot::access(&bytes).expect("an image just encoded reads back");
    crate::tree::snapshot::load(archived).map_err(|error| ImportError::new(path, 0, format!("not a tree: {error:?}")))
}

/// Ephemeral nodes whose session the snapshot and logs no longer hold (a fuzzy snapshot
/// can keep a node its session's close already deleted) go, as ZooKeeper deletes them
/// when it loads its data.
fn delete_orphan_ephemerals(tree: &mut DataTree) {
    let sessions: std::collections::HashSet<i64> = tree.sessions().map(|(session_id, _, _)| session_id).collect();
    let mut orphans: Vec<i64> =
        tree.ephemerals_by_session().map(|(owner, _)| owner).filter(|owner| !sessions.contains(owner)).collect();
    orphans.sort_unstable();
    let zxid = tree.last_zxid();
    for owner in orphans {
        tracing::warn!(
            session = format_args!("{owner:#x}"),
            "ephemeral nodes of a closed session; deleted, as ZooKeeper does on load"
        );
        tree.delete_orphan_ephemerals(owner, zxid);
    }
}

/// `--drop-sessions`: every session closes, with its ephemeral nodes, as if it expired
/// right after ZooKeeper's last transaction.
fn close_every_session(tree: &mut DataTree) {
    let mut sessions: Vec<i64> = tree.sessions().map(|(session_id, _, _)| session_id).collect();
    sessions.sort_unstable();
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let time_ms = since_epoch.as_millis() as i64;
    for session_id in sessions {
        let mut ephemerals: Vec<String> = tree.ephemerals_of(session_id).map(str::to_owned).collect();
        ephemerals.sort_unstable();
        let zxid = tree.last_zxid().wrapping_add(1);
        let op = crate::txn::TxnOp::CloseSession { ephemerals };
        let bytes = crate::txn::Txn { session_id, cxid: 0, zxid, time_ms, op }.to_bytes();
        tree.apply(crate::txn::access_written(&bytes), &mut Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{CreateTxn, Step, Txn, TxnOp};

    #[test]
    fn ephemerals_of_a_session_the_tree_no_longer_holds_are_deleted_as_zookeeper_loads() {
        let mut tree = DataTree::new();
        let create = |path: &str, owner: i64, parent_cversion: i32| {
            TxnOp::Single(Step::Create(CreateTxn {
                path: path.into(),
                data: None,
                acl: vec![],
                ephemeral_owner: owner,
                parent_cversion,
            }))
        };
        for (zxid, op) in [
            (1, TxnOp::CreateSession { timeout_ms: 30_000, password: [0; 16] }),
            (2, create("/live", 7, 1)),
            (3, create("/orphan", 9, 2)),
        ] {
            let bytes = Txn { session_id: 7, cxid: 0, zxid, time_ms: 0, op }.to_bytes();
            tree.apply(crate::txn::access_written(&bytes), &mut Vec::new());
        }
        delete_orphan_ephemerals(&mut tree);
        assert!(tree.node("/live").is_some(), "session 7 is open");
        assert!(tree.node("/orphan").is_none(), "session 9 is not");
        assert_eq!(
            (tree.last_zxid(), tree.node("/").unwrap().pzxid),
            (3, 3),
            "no transaction; the parent's pzxid is the last zxid"
        );
        tree.check_invariants();
    }
}
