//! The snapshotter: a thread of its own (not a serving core) that keeps one more copy of
//! the tree from the committed stream and writes snapshots from it, so a snapshot of a
//! large tree never stalls a core's sessions. The publisher hands it every committed batch
//! without waiting (an unbounded queue: batches pile up only while a snapshot is written,
//! and they are the same shared bytes the cores hold anyway).

use std::sync::Arc;
use std::time::Instant;

use crossbeam::channel::{Receiver, Sender};
use rkyv::util::AlignedVec;

use crate::config::Config;
use crate::log::record::Records;
use crate::tree::DataTree;

pub enum SnapshotWork {
    /// Committed records, in order.
    Batch(Arc<AlignedVec<16>>),
    /// Take a snapshot once everything queued before this is applied.
    Take,
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
    /// Starts the thread, which first builds its copy of the recovered tree with `load`
    /// (at idle priority, while the cores already serve; committed batches queue until
    /// it is done). Building it here rather than copying a core's tree keeps the copy off
    /// the restart's critical path.
    pub fn start(load: impl FnOnce() -> DataTree + Send + 'static, config: Config) -> Snapshotter {
        let (sender, receiver) = crossbeam::channel::unbounded();
        std::thread::Builder::new()
            .name("snapshotter".into())
            .spawn(move || {
                super::placement::run_in_background();
                let started = Instant::now();
                let tree = load();
                tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "snapshotter loaded its tree");
                run(tree, &config, &receiver)
            })
            .expect("the snapshotter thread starts");
        Snapshotter { sender }
    }

    pub fn send(&self, work: SnapshotWork) {
        // The thread only stops with the process.
        let _ = self.sender.send(work);
    }
}

/// How long the snapshotter sleeps when it has caught up. It polls rather than blocks on
/// the channel: a blocked receiver must be woken, and that wake-up (a futex call and a
/// context switch) would land on the ordering core's path once per committed batch. A
/// few milliseconds of batches queue instead, and are applied together.
const IDLE_POLL: std::time::Duration = std::time::Duration::from_millis(5);

/// After this many polls in a row find nothing (a second), the snapshotter blocks on the
/// channel instead: an idle server then wakes no thread, and only the first batch after
/// the pause pays the wake-up.
const IDLE_POLLS_BEFORE_BLOCKING: u32 = 200;

fn run(mut tree: DataTree, config: &Config, receiver: &Receiver<SnapshotWork>) {
    let mut triggers = Vec::new();
    let mut last_snapshot_zxid = tree.last_zxid();
    let mut idle_polls = 0;
    loop {
        let work = match receiver.try_recv() {
            Ok(work) => work,
            Err(crossbeam::channel::TryRecvError::Empty) if idle_polls < IDLE_POLLS_BEFORE_BLOCKING => {
                idle_polls += 1;
                std::thread::sleep(IDLE_POLL);
                continue;
            }
            Err(crossbeam::channel::TryRecvError::Empty) => match receiver.recv() {
                Ok(work) => work,
                Err(crossbeam::channel::RecvError) => return,
            },
            Err(crossbeam::channel::TryRecvError::Disconnected) => return,
        };
        idle_polls = 0;
        match work {
            SnapshotWork::Batch(records) => {
                for record in Records::new(&records) {
                    let (_, txn) = record.expect("records from the ordering point are intact");
                    triggers.clear();
                    tree.apply(txn, &mut triggers);
                }
            }
            SnapshotWork::Take => {
                // Requests that queued up while the previous snapshot was written are
                // skipped until half a snapCount has passed (ZooKeeper skips when busy).
                let applied_since = (tree.last_zxid() - last_snapshot_zxid) as u64;
                if applied_since < config.snap_count / 2 {
                    continue;
                }
                take(&tree, config);
                last_snapshot_zxid = tree.last_zxid();
            }
        }
    }
}

fn take(tree: &DataTree, config: &Config) {
    let dir = config.log_dir();
    let started = Instant::now();
    match crate::log::snapshot_file::write(&dir, tree) {
        Ok((path, size_bytes)) => tracing::info!(
            path = %path.display(),
            size_bytes,
            nodes = tree.node_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot written"
        ),
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
