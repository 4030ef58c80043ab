//! An ensemble member's log task, on core 0: carries out the consensus core's log
//! operations in order and reports each one durable. Appends queued together are written
//! with one O_DSYNC write (group commit, for a follower as for a leader).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use glommio::channels::local_channel::{LocalReceiver, LocalSender};
use rkyv::util::AlignedVec;

use super::ensemble::{Ensemble, LogOp};
use super::log_writer::{LogWriter, WritePath};
use crate::consensus::history::History;
use crate::consensus::record_batch::RecordBatch;
use crate::consensus::zxid::epoch;
use crate::log::record::frame_spans;
use crate::log::recovery::RecoveredLog;
use crate::log::segment::SEGMENT_HEADER_BYTES;

/// The most bytes written in one go when several appends are queued.
const COALESCED_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Records per batch when the recovered log is cut into batches for the window.
const RECOVERED_BATCH_BYTES_MAX: usize = 1024 * 1024;

/// The log operations waiting for the log task.
pub struct LogQueue {
    ops: RefCell<VecDeque<LogOp>>,
    wake: LocalSender<()>,
}

impl LogQueue {
    pub fn new(wake: LocalSender<()>) -> LogQueue {
        LogQueue { ops: RefCell::new(VecDeque::new()), wake }
    }

    pub fn push(&self, op: LogOp) {
        self.ops.borrow_mut().push_back(op);
        let _ = self.wake.try_send(());
    }

    /// The next operation, with the appends queued right after it when it is one (and
    /// the last of their sequence numbers).
    fn take(&self) -> Option<(LogOp, Vec<RecordBatch>, u64)> {
        let mut ops = self.ops.borrow_mut();
        let first = ops.pop_front()?;
        let mut more = Vec::new();
        let mut last_seq = 0;
        if let LogOp::Append { batch, seq } = &first {
            last_seq = *seq;
            let mut bytes = batch.bytes.len();
            while let Some(LogOp::Append { batch, .. }) = ops.front() {
                if bytes + batch.bytes.len() > COALESCED_BYTES_MAX {
                    break;
                }
                bytes += batch.bytes.len();
                let Some(LogOp::Append { seq, batch }) = ops.pop_front() else { unreachable!() };
                assert!(seq > last_seq, "log operations queue in order");
                last_seq = seq;
                more.push(batch);
            }
        }
        Some((first, more, last_seq))
    }
}

/// The log writer opened again after `tail` (a cut's, or none once a snapshot is
/// installed). A member that cannot write its log stops; `after` says after what.
async fn reopen(
    log_dir: &Path,
    tail: Option<(&Path, u64)>,
    segment_size_bytes: u64,
    force_sync: bool,
    after: &str,
) -> LogWriter {
    match LogWriter::open(log_dir, tail, segment_size_bytes, force_sync, WritePath::Ring).await {
        Ok(writer) => writer,
        Err(error) => {
            tracing::error!(%error, "cannot reopen the log {after}");
            std::process::exit(1);
        }
    }
}

pub async fn run(
    queue: Rc<LogQueue>,
    woken: LocalReceiver<()>,
    mut writer: LogWriter,
    driver: Rc<RefCell<Ensemble>>,
    log_dir: PathBuf,
    segment_size_bytes: u64,
    force_sync: bool,
) {
    while woken.recv().await.is_some() {
        while let Some((op, more, last_seq)) = queue.take() {
            match op {
                LogOp::Append { batch, .. } => {
                    let appends = 1 + more.len();
                    // Counted per batch: a group of batches may span an epoch change.
                    let records: i64 = std::iter::once(&batch)
                        .chain(more.iter())
                        .map(|part| part.last_zxid - part.first_zxid + 1)
                        .sum();
                    let started = std::time::Instant::now();
                    let result = if more.is_empty() {
                        writer.append(&batch.bytes, batch.first_zxid).await
                    } else {
                        let mut bytes = AlignedVec::<16>::new();
                        for part in std::iter::once(&batch).chain(more.iter()) {
                            bytes.extend_from_slice(&part.bytes);
                        }
                        writer.append(&bytes, batch.first_zxid).await
                    };
                    super::note_log_write(&driver.borrow().shared, started, records);
                    if let Err(error) = result {
                        // Nothing more can be made durable: this member must not
                        // acknowledge anything again. Restarting recovers from the log.
                        tracing::error!(%error, "the transaction log failed; stopping this member");
                        std::process::exit(1);
                    }
                    driver.borrow_mut().durable(last_seq, appends);
                }
                LogOp::Truncate { seq, after_zxid, restart } => {
                    if let Err(error) = writer.close().await {
                        tracing::error!(%error, "cannot close the log to cut it");
                        std::process::exit(1);
                    }
                    // Off the executor: on a slow disk the cut waits, and core 0 goes on
                    // answering its peers and clients meanwhile.
                    let cutting_dir = log_dir.clone();
                    let cut = glommio::executor()
                        .spawn_blocking(move || crate::log::truncate::truncate_after(&cutting_dir, after_zxid))
                        .await;
                    let tail = match cut {
                        Ok(tail) => tail,
                        Err(error) => {
                            tracing::error!(%error, "cannot cut the log");
                            std::process::exit(1);
                        }
                    };
                    if restart {
                        crate::log::snapshot_file::remove_snapshots_after(&log_dir, after_zxid);
                        tracing::info!(
                            after = format_args!("{after_zxid:#x}"),
                            "the trees hold records the log no longer has: restarting to rebuild them"
                        );
                        super::restart_process();
                    }
                    let tail = tail.as_ref().map(|(path, end)| (path.as_path(), *end));
                    writer = reopen(&log_dir, tail, segment_size_bytes, force_sync, "after cutting it").await;
                    driver.borrow_mut().durable(seq, 0);
                }
                LogOp::Install { seq, zxid, image } => {
                    let _ = writer.close().await;
                    // Writing and loading a large snapshot take a while: off the executor,
                    // which keeps the peer links and their timers going meanwhile.
                    let installing_dir = log_dir.clone();
                    let size_bytes = image.len() as u64;
                    let installed = glommio::executor()
                        .spawn_blocking(move || crate::log::snapshot_file::install(&installing_dir, zxid, &image))
                        .await;
                    let tree = installed.unwrap_or_else(|error| {
                        tracing::error!(%error, "cannot install the leader's snapshot");
                        std::process::exit(1);
                    });
                    assert_eq!(tree.last_zxid(), zxid, "the installed snapshot ends where the leader's does");
                    writer =
                        reopen(&log_dir, None, segment_size_bytes, force_sync, "after installing a snapshot").await;
                    tracing::info!(
                        zxid = format_args!("{zxid:#x}"),
                        nodes = tree.node_count(),
                        "installed the leader's snapshot"
                    );
                    driver.borrow().shared.note_snapshot(zxid, size_bytes, std::time::SystemTime::now());
                    driver.borrow_mut().installed(seq, tree);
                }
            }
        }
    }
}

/// The shape of the recovered log after the snapshot at `base`, and its newest batches
/// (up to `retained_bytes_max`) for DIFFs to lagging followers.
pub fn recovered_history(log: &RecoveredLog, base: i64, retained_bytes_max: usize) -> (History, Vec<RecordBatch>) {
    let mut history = History::new(base);
    let mut batches: VecDeque<RecordBatch> = VecDeque::new();
    let mut retained = 0;
    let mut current = AlignedVec::<16>::new();
    let mut current_zxids: Option<(i64, i64)> = None;
    let mut finish =
        |current: &mut AlignedVec<16>, zxids: &mut Option<(i64, i64)>, batches: &mut VecDeque<RecordBatch>| {
            if let Some((first, last)) = zxids.take() {
                retained += current.len();
                batches.push_back(RecordBatch::new(Arc::new(std::mem::take(current)), first, last));
                while retained > retained_bytes_max && batches.len() > 1 {
                    retained -= batches.pop_front().expect("more than one").bytes.len();
                }
            }
        };
    for segment in &log.segments {
        let frames = &segment.map[SEGMENT_HEADER_BYTES..segment.valid_end];
        for (zxid, span) in frame_spans(frames).filter(|(zxid, _)| *zxid > base) {
            let starts_epoch = current_zxids.is_some_and(|(first, _)| epoch(first) != epoch(zxid));
            if starts_epoch || current.len() + span.len() > RECOVERED_BATCH_BYTES_MAX {
                finish(&mut current, &mut current_zxids, &mut batches);
            }
            current.extend_from_slice(&frames[span]);
            current_zxids = Some((current_zxids.map_or(zxid, |(first, _)| first), zxid));
            history.append(zxid, zxid);
        }
    }
    finish(&mut current, &mut current_zxids, &mut batches);
    (history, batches.into())
}
