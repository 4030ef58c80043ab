//! The snapshotter: a thread of its own (not a serving core) that writes snapshots of
//! the versions of the tree it is handed, so a snapshot of a large tree never stalls a
//! core's sessions. A version shares its nodes with the live tree: while a snapshot is
//! written, only the nodes changed meanwhile exist twice.

use std::sync::atomic::{AtomicBool, Ordering};
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
    /// A snapshot is being written (or asked for): a snapshot due meanwhile is skipped.
    busy: Arc<AtomicBool>,
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
    /// Starts the thread.
    pub fn start(shared: Arc<Shared>) -> Snapshotter {
        let (sender, receiver) = crossbeam::channel::unbounded();
        let busy = Arc::new(AtomicBool::new(false));
        let idle = busy.clone();
        std::thread::Builder::new()
            .name("snapshotter".into())
            .spawn(move || {
                super::placement::run_in_background();
                run(&shared, &receiver, &idle)
            })
            .expect("the snapshotter thread starts");
        Snapshotter { sender, busy }
    }

    /// Asks for a snapshot of `tree`, the current version, unless one is still being
    /// written: then this one is skipped and the schedule counts anew, as ZooKeeper's
    /// SyncRequestProcessor does ("Too busy to snap, skipping"). Queueing it instead would
    /// keep its version alive until its turn, and with it every node changed meanwhile,
    /// and on a large tree under heavy writes the snapshots would run back to back.
    pub fn take(&self, tree: Arc<DataTree>) {
        if self.busy.swap(true, Ordering::AcqRel) {
            tracing::warn!(zxid = tree.last_zxid(), "too busy to snapshot, skipping");
            return;
        }
        let installs = crate::log::snapshot_file::installs();
        // The thread only stops with the process.
        let _ = self.sender.send(SnapshotWork::Take { tree, installs });
    }
}

fn run(shared: &Shared, receiver: &Receiver<SnapshotWork>, busy: &AtomicBool) {
    let config = &shared.config;
    match crate::log::snapshot_file::remove_temporaries(&config.log_dir()) {
        Ok(removed) if removed > 0 => tracing::info!(removed, "removed snapshots a crash cut short"),
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "cannot list the snapshots' directory"),
    }
    while let Ok(SnapshotWork::Take { tree, installs }) = receiver.recv() {
        take(&tree, installs, shared);
        // The version goes before the next request can come.
        drop(tree);
        busy.store(false, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_due_while_one_is_written_is_skipped_and_its_version_let_go() {
        let (sender, receiver) = crossbeam::channel::unbounded();
        let snapshotter = Snapshotter { sender, busy: Arc::new(AtomicBool::new(false)) };
        let (first, second) = (Arc::new(DataTree::new()), Arc::new(DataTree::new()));
        snapshotter.take(first.clone());
        snapshotter.take(second.clone());
        let SnapshotWork::Take { tree, .. } = receiver.try_recv().expect("the first is asked for");
        assert!(Arc::ptr_eq(&tree, &first));
        assert!(receiver.try_recv().is_err(), "the second came while the first was written");
        assert_eq!(Arc::strong_count(&second), 1, "nothing keeps the skipped version");
        // Once the thread is done with the first, the next one due is written.
        snapshotter.busy.store(false, Ordering::Release);
        snapshotter.take(second.clone());
        let SnapshotWork::Take { tree, .. } = receiver.try_recv().expect("asked for once idle");
        assert!(Arc::ptr_eq(&tree, &second));
    }
}
