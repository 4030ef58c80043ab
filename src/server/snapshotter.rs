//! The snapshotter: a thread of its own (not a serving core) that writes snapshots of
//! the versions of the tree it is handed, so a snapshot of a large tree never stalls a
//! core's sessions. A version shares its nodes with the live tree: while a snapshot is
//! written, only the nodes changed meanwhile exist twice.

use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::{Receiver, Sender};

use super::shared::Shared;
use crate::tree::DataTree;

enum SnapshotWork {
    /// Write a snapshot of this version, taken when `installs` leader snapshots had
    /// been installed (`log::snapshot_file::installs`).
    Take { tree: Arc<DataTree>, installs: u64 },
}

pub struct Snapshotter {
    sender: Sender<SnapshotWork>,
}

/// When the next snapshot is due: after between half and all of snapCount transactions,
/// at random, so servers of an ensemble do not all snapshot at once (ZooKeeper's
/// SyncRequestProcessor does the same).
pub struct SnapshotSchedule {
    snap_count: u64,
    since: u64,
    next_at: u64,
    random: std::collections::hash_map::RandomState,
}

impl SnapshotSchedule {
    pub fn new(snap_count: u64) -> SnapshotSchedule {
        let mut schedule =
            SnapshotSchedule { snap_count: snap_count.max(2), since: 0, next_at: 0, random: Default::default() };
        schedule.next_at = schedule.threshold();
        schedule
    }

    fn threshold(&self) -> u64 {
        let jitter = std::hash::BuildHasher::hash_one(&self.random, self.next_at) % (self.snap_count / 2).max(1);
        self.snap_count / 2 + jitter
    }

    /// Counts `transactions` more; true when a snapshot is due (and starts counting anew).
    pub fn counted(&mut self, transactions: u64) -> bool {
        self.since += transactions;
        if self.since < self.next_at {
            return false;
        }
        self.since = 0;
        self.next_at = self.threshold();
        true
    }
}

impl Snapshotter {
    /// Starts the thread. `last_snapshot_zxid` is where the recovered tree ends.
    pub fn start(last_snapshot_zxid: i64, shared: Arc<Shared>) -> Snapshotter {
        let (sender, receiver) = crossbeam::channel::unbounded();
        std::thread::Builder::new()
            .name("snapshotter".into())
            .spawn(move || {
                super::placement::run_in_background();
                run(last_snapshot_zxid, &shared, &receiver)
            })
            .expect("the snapshotter thread starts");
        Snapshotter { sender }
    }

    /// Asks for a snapshot of `tree`, the current version.
    pub fn take(&self, tree: Arc<DataTree>) {
        let installs = crate::log::snapshot_file::installs();
        // The thread only stops with the process.
        let _ = self.sender.send(SnapshotWork::Take { tree, installs });
    }
}

fn run(mut last_snapshot_zxid: i64, shared: &Shared, receiver: &Receiver<SnapshotWork>) {
    let config = &shared.config;
    match crate::log::snapshot_file::remove_temporaries(&config.log_dir()) {
        Ok(removed) if removed > 0 => tracing::info!(removed, "removed snapshots a crash cut short"),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot list the snapshots' directory"),
    }
    while let Ok(SnapshotWork::Take { tree, installs }) = receiver.recv() {
        // Requests that queued up while the previous snapshot was written are skipped
        // until half a snapCount has passed (ZooKeeper skips when busy).
        let applied_since = (tree.last_zxid() - last_snapshot_zxid) as u64;
        if applied_since < config.snap_count / 2 {
            continue;
        }
        take(&tree, installs, shared);
        last_snapshot_zxid = tree.last_zxid();
    }
}

fn take(tree: &DataTree, installs: u64, shared: &Shared) {
    let config = &shared.config;
    let dir = config.log_dir();
    let started = Instant::now();
    match crate::log::snapshot_file::write(&dir, tree, installs) {
        Ok(None) => {
            tracing::info!("a leader's snapshot was installed meanwhile: this one is history, not written");
            return;
        }
        Ok(Some((path, size_bytes))) => {
            let elapsed = started.elapsed();
            shared.histograms.snapshot_us.record(elapsed.as_micros() as u64);
            shared.note_snapshot(tree.last_zxid(), size_bytes as u64, std::time::SystemTime::now());
            tracing::info!(
                path = %path.display(),
                size_bytes,
                nodes = tree.node_count(),
                elapsed_ms = elapsed.as_millis() as u64,
                "snapshot written"
            )
        }
        Err(error) => {
            // The log still holds everything: a missing snapshot costs restart time only.
            tracing::error!(%error, "snapshot failed");
            return;
        }
    }
    if config.purge_interval_hours > 0 {
        match crate::log::snapshot_file::purge(&dir, config.snap_retain_count) {
            Ok(removed) if removed > 0 => tracing::info!(removed, "purged old snapshots and log segments"),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "purge failed"),
        }
    }
}
