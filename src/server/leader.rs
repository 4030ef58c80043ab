//! The ordering point, on core 0: it validates every write against the tree plus the
//! writes ordered before it, gives it the next zxid, frames it into the current batch,
//! and publishes batches to every core. It also keeps the global session table and
//! expires sessions. In a standalone server a transaction commits when its batch is
//! published; the ensemble's broadcaster will commit on a quorum of durable acks instead.

use super::core_state::wall_clock_ms;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use glommio::channels::local_channel::LocalSender;
use rkyv::util::AlignedVec;

use super::core_state::CoreState;
use super::messages::{Control, PlacedControl, RemoteControl, ToLeader, EVERY_CORE};
use super::shared::{SessionListing, Shared};
use super::snapshotter::SnapshotSchedule;
use crate::consensus::zxid::{counter, epoch, ZxidCounter};
use crate::log::record;
use crate::proto::request::{Request, WriteOp};
use crate::proto::ErrorCode;
use crate::session::SessionTable;
use crate::tree::{prepare, Caller, PendingChanges};
use crate::txn::{Step, Txn, TxnOp};

/// A batch is sealed once it holds this many bytes, and the next record starts a new one:
/// one log write, one proposal and one peer frame stay about this size (plus one record)
/// however far the publisher falls behind. How many batches wait is bounded by
/// globalOutstandingLimit on every member (which gives way only to a server stalled for
/// seconds).
pub const BATCH_BYTES_MAX: usize = 4 * 1024 * 1024;

pub struct Leader {
    shared: Arc<Shared>,
    /// This server's ensemble member id (0 standalone): messages from other members are
    /// answered through `remote_controls`.
    member: u64,
    /// Controls for other members' cores, taken by the ensemble to send.
    remote_controls: Vec<RemoteControl>,
    /// In an ensemble, the counter at which ordering pauses until the next epoch opens
    /// (the consensus core opens it without an election); u32::MAX standalone.
    counter_limit: u32,
    /// Messages that arrived while ordering was paused, in order.
    held: VecDeque<ToLeader>,
    /// Core 0's state: its tree is the base that pending changes are layered on.
    core0: Rc<RefCell<CoreState>>,
    pending: PendingChanges,
    zxids: ZxidCounter,
    sessions: SessionTable,
    /// Full batches waiting for the publisher, in zxid order, before `batch`.
    sealed: VecDeque<Published>,
    batch: AlignedVec<16>,
    batch_first_zxid: i64,
    batch_last_zxid: i64,
    controls: Vec<Vec<PlacedControl>>,
    publisher_wake: Rc<LocalSender<()>>,
    /// Transactions ordered since the last snapshot request, and the count that triggers
    /// the next one.
    snapshots: SnapshotSchedule,
    /// A snapshot is due after the current batch.
    snapshot_due: bool,
}

/// A batch ready to publish: the records every core applies and each core's controls.
pub struct Published {
    pub records: Arc<AlignedVec<16>>,
    /// The zxid of the first record, when there are records.
    pub first_zxid: i64,
    pub controls: Vec<Vec<PlacedControl>>,
    pub last_zxid: i64,
    /// Whether the snapshotter should take a snapshot after this batch.
    pub snapshot_due: bool,
}

impl Leader {
    pub fn new(
        shared: Arc<Shared>,
        member: u64,
        core0: Rc<RefCell<CoreState>>,
        publisher_wake: Rc<LocalSender<()>>,
    ) -> Leader {
        let cores = shared.cores;
        let snap_count = shared.config.snap_count;
        let tick_ms = shared.config.tick_time_ms as u64;
        let now_ms = wall_clock_ms() as u64;
        // Session ids carry the id of the server that made them in their top byte, as
        // ZooKeeper's do, so a new leader never hands out an id an earlier one did.
        let server_id = u8::try_from(member).unwrap_or(u8::MAX);
        Leader {
            shared,
            member,
            remote_controls: Vec::new(),
            counter_limit: u32::MAX,
            held: VecDeque::new(),
            core0,
            pending: PendingChanges::default(),
            zxids: ZxidCounter::new(0, 0),
            sessions: SessionTable::new(server_id, now_ms, tick_ms),
            sealed: VecDeque::new(),
            batch: AlignedVec::new(),
            batch_first_zxid: 0,
            batch_last_zxid: 0,
            controls: (0..cores).map(|_| Vec::new()).collect(),
            publisher_wake,
            snapshots: SnapshotSchedule::new(snap_count),
            snapshot_due: false,
        }
    }

    fn monotonic_ms(&self) -> u64 {
        self.shared.started.elapsed().as_millis() as u64
    }

    /// Rebuilds the ordering point's state after recovery: the zxid counter continues
    /// from core 0's tree, and the sessions it holds are open again, each with a whole
    /// timeout to reconnect.
    pub fn restore(&mut self) {
        let now_ms = self.monotonic_ms();
        let (last_zxid, sessions) = {
            let core0 = self.core0.borrow();
            (core0.tree.last_zxid(), core0.tree.sessions().collect::<Vec<_>>())
        };
        for (session_id, timeout_ms, password) in sessions {
            self.sessions.restore(session_id, timeout_ms, password, now_ms);
        }
        self.zxids = ZxidCounter::new(epoch(last_zxid), last_zxid as u32);
        self.batch_last_zxid = last_zxid;
        self.shared.committed_zxid.store(last_zxid, Ordering::Release);
        self.shared.session_count.store(self.sessions.len() as u64, Ordering::Relaxed);
        tracing::info!(last_zxid = format_args!("{last_zxid:#x}"), sessions = self.sessions.len(), "recovered");
    }

    /// An ensemble leader pauses ordering when its counter reaches `limit`, until
    /// `open_epoch` gives it the next epoch.
    pub fn set_counter_limit(&mut self, limit: u32) {
        self.counter_limit = limit;
    }

    fn paused_at_limit(&self) -> bool {
        counter(self.zxids.last()) >= self.counter_limit
    }

    /// The next epoch is open (its marker applied): ordering resumes with its zxids.
    pub fn open_epoch(&mut self, new_epoch: u32) {
        assert!(new_epoch > epoch(self.zxids.last()), "epochs only grow");
        self.zxids = ZxidCounter::new(new_epoch, 0);
        tracing::info!(epoch = new_epoch, held = self.held.len(), "ordering in the new epoch");
        for message in std::mem::take(&mut self.held) {
            self.handle(message);
        }
    }

    /// Every open session with its deadline, for `dump` (deadlines are kept on the
    /// monotonic clock; the listing shows them on the wall clock).
    pub fn publish_sessions(&self) {
        let now_ms = self.monotonic_ms();
        let wall_ms = wall_clock_ms() as u64;
        let listing = self
            .sessions
            .iter()
            .map(|(session_id, entry)| SessionListing {
                session_id,
                timeout_ms: entry.timeout_ms,
                expires_at_ms: Some(wall_ms + entry.expires_at_ms.saturating_sub(now_ms)),
            })
            .collect();
        *self.shared.session_listing.lock().expect("not poisoned") = listing;
    }

    pub fn handle(&mut self, message: ToLeader) {
        if let ToLeader::PublishListings = message {
            if self.shared.take_session_listing_request() {
                self.publish_sessions();
            }
            // Not ordered: every core publishes when its committed stream gets this.
            for core in 0..self.controls.len() {
                self.place(self.member, core, Control::PublishListings);
            }
            self.wake_publisher();
            return;
        }
        if self.paused_at_limit() && !matches!(message, ToLeader::Touch { .. }) {
            self.held.push_back(message);
            return;
        }
        if self.shared.log_failed.load(Ordering::Acquire) && !matches!(message, ToLeader::Touch { .. }) {
            // The log stopped: nothing more can be made durable, so nothing more is ordered.
            return;
        }
        match message {
            ToLeader::Connect { member, core, connection, session_id, password, timeout_ms } => {
                self.connect(member, core, connection, session_id, &password, timeout_ms)
            }
            ToLeader::Write { member, connection, session_id, identities, xid, request, .. } => {
                if let Err((owner_member, owner_connection)) = self.sessions.claim(session_id, (member, connection)) {
                    // ZooKeeper's checkSession throws SessionMovedException for a request
                    // through a connection that no longer owns the session, and the server
                    // closes that connection (FinalRequestProcessor): it is not ordered.
                    tracing::info!(
                        session = format_args!("{session_id:#x}"),
                        member,
                        "a write through a connection the session moved away from; closing it"
                    );
                    let keep = (owner_member == member).then_some(owner_connection);
                    self.close_on(session_id, member, keep);
                    self.wake_publisher();
                    return;
                }
                let extended_types = self.shared.config.extended_types_enabled;
                let enforce_quota = self.shared.config.enforce_quota;
                let x509_acls = self.shared.config.x509_auth;
                let caller = Caller { session_id, identities: &identities, extended_types, enforce_quota, x509_acls };
                self.write(caller, xid, &request)
            }
            ToLeader::Sync { member, core, connection, xid } => {
                self.place(member, core, Control::Synced { connection, xid });
                self.wake_publisher();
            }
            ToLeader::PublishListings => unreachable!("handled above"),
            ToLeader::Touch { sessions } => {
                let now_ms = self.monotonic_ms();
                for session_id in sessions {
                    self.sessions.touch(session_id, now_ms);
                }
            }
        }
    }

    fn connect(
        &mut self,
        member: u64,
        core: usize,
        connection: u64,
        session_id: i64,
        password: &[u8],
        timeout_ms: i32,
    ) {
        let now_ms = self.monotonic_ms();
        if session_id == 0 {
            let (session_id, password) = self.sessions.create(timeout_ms, now_ms, (member, connection));
            self.shared.session_count.store(self.sessions.len() as u64, Ordering::Relaxed);
            self.order(session_id, 0, TxnOp::CreateSession { timeout_ms, password });
            self.place(member, core, Control::Connected { connection, session: Some((session_id, password)) });
            tracing::debug!(session = format_args!("{session_id:#x}"), timeout_ms, "session created");
        } else {
            let session = if self.sessions.reattach(session_id, password, now_ms, (member, connection)) {
                self.close_on(session_id, member, Some(connection));
                let password = self.sessions.get(session_id).expect("just re-attached").password;
                Some((session_id, password))
            } else {
                // A wrong password also ends the session's live connection, though the
                // session itself lives on (as ZooKeeper does).
                if self.sessions.get(session_id).is_some_and(|entry| !entry.closing) {
                    self.close_on(session_id, member, None);
                }
                None
            };
            self.place(member, core, Control::Connected { connection, session });
        }
        self.wake_publisher();
    }

    /// Closes the session's connection on `member`, every core of it, except `keep` (the
    /// connection taking the session over). Only there, as ZooKeeper's server closes the
    /// session's old connection only if it holds it (`processConnectRequest`): an old
    /// connection on another member stays open until it writes, and that write closes it
    /// (the owner check in `handle`). Closing it at once would let two clients sharing a
    /// session (kazoo's client_id) take it from each other in turn.
    fn close_on(&mut self, session_id: i64, member: u64, keep: Option<u64>) {
        if member == self.member {
            for core in 0..self.controls.len() {
                self.place(member, core, Control::SessionMoved { session_id, keep });
            }
        } else {
            self.place_remote(member, EVERY_CORE, Control::SessionMoved { session_id, keep });
        }
    }

    fn write(&mut self, caller: Caller<'_>, xid: i32, request: &Request) {
        let session_id = caller.session_id;
        let known = self.sessions.get(session_id).is_some_and(|entry| !entry.closing);
        if !known {
            // The session expired or closed while this request was on its way; it still
            // takes its place in the order so the session's replies stay in order.
            self.order(session_id, xid, TxnOp::Single(Step::Error { code: ErrorCode::SessionExpired.code() }));
            return;
        }
        if matches!(request, Request::CloseSession) {
            self.close_session(session_id, xid);
            return;
        }
        self.prepare_and_append(caller, xid, request);
    }

    /// Validates a write against the tree and pending changes, and orders the result.
    fn prepare_and_append(&mut self, caller: Caller<'_>, xid: i32, request: &Request) {
        let zxid = self.zxids.next_zxid();
        let op = {
            let core0 = self.core0.borrow();
            prepare(&core0.tree, &mut self.pending, caller, zxid, request)
        };
        for exceeded in self.pending.take_quota_exceeded() {
            self.shared.note_quota_exceeded(&exceeded);
        }
        self.append(Txn { session_id: caller.session_id, cxid: xid, zxid, time_ms: wall_clock_ms(), op });
    }

    fn close_session(&mut self, session_id: i64, xid: i32) {
        let began = self.sessions.begin_close(session_id);
        assert!(began, "closing a session that is not open");
        self.prepare_and_append(
            Caller { session_id, identities: &[], extended_types: false, enforce_quota: false, x509_acls: false },
            xid,
            &Request::CloseSession,
        );
        self.sessions.remove(session_id);
        self.shared.session_count.store(self.sessions.len() as u64, Ordering::Relaxed);
    }

    /// Deletes empty containers and expired TTL nodes through ordinary transactions, so
    /// every server agrees (ZooKeeper's ContainerManager). At most `limit` per call.
    pub fn reap_containers(&mut self, limit: usize) {
        if self.shared.log_failed.load(Ordering::Acquire) || self.paused_at_limit() {
            return;
        }
        let candidates = self.core0.borrow().tree.reapable(wall_clock_ms(), limit);
        for path in candidates {
            let caller = Caller {
                session_id: 0,
                identities: &[],
                extended_types: false,
                enforce_quota: false,
                x509_acls: false,
            };
            self.prepare_and_append(caller, 0, &Request::Write(WriteOp::DeleteContainer { path }));
        }
    }

    /// Core 0 was held `held` in log writes on its own thread (`WritePath::Executor`),
    /// one publishing round's: the other cores' touches waited in its channels meanwhile,
    /// and expiry may run before they are read. A hold longer than expiry's period (half
    /// a tick) therefore counts against no session; ZooKeeper's sessions live through a
    /// stalled disk too.
    pub fn held_in_write(&mut self, held: std::time::Duration) {
        let held_ms = held.as_millis() as u64;
        if held_ms >= (self.shared.config.tick_time_ms as u64 / 2).max(1) {
            tracing::warn!(held_ms, "a log write held core 0; every session's deadline moves as far");
            self.sessions.postpone_all(held_ms);
        }
    }

    /// Closes every session whose timeout passed without a touch.
    pub fn expire_sessions(&mut self) {
        if self.shared.log_failed.load(Ordering::Acquire) || self.paused_at_limit() {
            return;
        }
        let now_ms = self.monotonic_ms();
        for session_id in self.sessions.expired(now_ms) {
            let timeout_ms = self.sessions.get(session_id).map_or(0, |entry| entry.timeout_ms);
            tracing::info!(session = format_args!("{session_id:#x}"), timeout_ms, "expiring session, timeout exceeded");
            self.close_session(session_id, 0);
        }
    }

    fn order(&mut self, session_id: i64, xid: i32, op: TxnOp) {
        let zxid = self.zxids.next_zxid();
        self.append(Txn { session_id, cxid: xid, zxid, time_ms: wall_clock_ms(), op });
    }

    fn append(&mut self, txn: Txn) {
        assert!(txn.zxid > self.batch_last_zxid, "zxids are appended in order");
        if self.batch.len() >= BATCH_BYTES_MAX {
            let full = self.take_open_batch().expect("a full batch holds records");
            self.sealed.push_back(full);
        }
        if self.batch.is_empty() {
            self.batch_first_zxid = txn.zxid;
        }
        record::append(&mut self.batch, &txn);
        if self.snapshots.counted(1) {
            // The snapshotter takes it after applying this batch.
            self.snapshot_due = true;
        }
        self.batch_last_zxid = txn.zxid;
        self.wake_publisher();
    }

    /// Queues a control for `core` of `member` after everything ordered so far.
    fn place(&mut self, member: u64, core: usize, control: Control) {
        if member == self.member {
            self.controls[core].push((self.zxids.last(), control));
        } else {
            self.place_remote(member, core as u32, control);
        }
    }

    fn place_remote(&mut self, member: u64, core: u32, control: Control) {
        let after_zxid = self.zxids.last();
        self.remote_controls.push(RemoteControl { member, core, after_zxid, control });
    }

    /// The controls for other members placed since the last call.
    pub fn take_remote_controls(&mut self) -> Vec<RemoteControl> {
        std::mem::take(&mut self.remote_controls)
    }

    fn wake_publisher(&self) {
        let _ = self.publisher_wake.try_send(());
    }

    /// Takes the oldest batch for publication, if there is anything to publish.
    pub fn take_batch(&mut self) -> Option<Published> {
        self.sealed.pop_front().or_else(|| self.take_open_batch())
    }

    /// The batch being filled, with the controls placed since the last one.
    fn take_open_batch(&mut self) -> Option<Published> {
        if self.batch.is_empty() && self.controls.iter().all(Vec::is_empty) {
            return None;
        }
        let records = Arc::new(std::mem::take(&mut self.batch));
        let controls = self.controls.iter_mut().map(std::mem::take).collect();
        let snapshot_due = std::mem::take(&mut self.snapshot_due);
        Some(Published {
            records,
            first_zxid: self.batch_first_zxid,
            controls,
            last_zxid: self.batch_last_zxid,
            snapshot_due,
        })
    }

    /// Core 0 applied everything up to `zxid`: its tree now holds those changes.
    pub fn applied_through(&mut self, zxid: i64) {
        self.pending.applied_through(zxid);
        self.shared.committed_zxid.fetch_max(zxid, Ordering::AcqRel);
    }

    /// Whether ordered records wait to be published.
    pub fn has_batch(&self) -> bool {
        !self.sealed.is_empty() || !self.batch.is_empty() || self.controls.iter().any(|controls| !controls.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::proto::connect::PASSWORD_SIZE_BYTES;
    use crate::txn::CreateTxn;

    fn leader() -> Leader {
        let shared = Arc::new(Shared::new(Config::default(), 1));
        let core0 = Rc::new(RefCell::new(CoreState::new(0, shared.clone())));
        let (wake, _woken) = glommio::channels::local_channel::new_bounded(1);
        Leader::new(shared, 0, core0, Rc::new(wake))
    }

    #[test]
    fn a_batch_is_sealed_at_its_size_bound_and_the_next_record_starts_another() {
        // However long the publisher takes, no batch it is handed grows past the bound by
        // more than one record, and the batches together hold every record in order.
        let mut leader = leader();
        let data = vec![7u8; 100 * 1024];
        let records = 3 * BATCH_BYTES_MAX / data.len();
        for index in 0..records {
            let create = CreateTxn {
                path: format!("/n{index}"),
                data: Some(data.clone()),
                acl: Vec::new(),
                ephemeral_owner: 0,
                parent_cversion: index as i32 + 1,
            };
            leader.order(1, index as i32, TxnOp::Single(Step::Create(create)));
        }
        let mut next_zxid = 1;
        let mut batches = 0;
        while let Some(batch) = leader.take_batch() {
            assert!(batch.records.len() < BATCH_BYTES_MAX + data.len() + 1024);
            let zxids: Vec<i64> = record::Records::written(&batch.records).map(|r| r.unwrap().0).collect();
            assert_eq!((batch.first_zxid, batch.last_zxid), (zxids[0], *zxids.last().unwrap()));
            assert_eq!(zxids, (next_zxid..next_zxid + zxids.len() as i64).collect::<Vec<_>>());
            next_zxid += zxids.len() as i64;
            batches += 1;
        }
        assert_eq!(next_zxid - 1, records as i64);
        assert!(batches >= 3, "{batches} batches for {records} records of 100 KiB");
        assert!(!leader.has_batch());
    }

    #[test]
    fn a_write_that_held_core_0_half_a_tick_or_longer_moves_every_deadline_and_a_shorter_one_none() {
        // While a write holds core 0, the sessions' touches wait in its channels; expiry
        // runs every half tick, so only a hold that long could expire a live session.
        let mut leader = leader();
        let half_tick_ms = u64::from(leader.shared.config.tick_time_ms) / 2;
        leader.sessions.restore(0x11, 30_000, [0; PASSWORD_SIZE_BYTES], 0);
        leader.sessions.restore(0x12, 4_000, [0; PASSWORD_SIZE_BYTES], 0);
        let deadlines =
            |leader: &Leader| [0x11, 0x12].map(|id| leader.sessions.get(id).expect("restored").expires_at_ms);
        let before = deadlines(&leader);
        leader.held_in_write(std::time::Duration::from_millis(half_tick_ms - 1));
        assert_eq!(deadlines(&leader), before, "a hold shorter than expiry's period moves nothing");
        leader.held_in_write(std::time::Duration::from_millis(half_tick_ms));
        assert_eq!(deadlines(&leader), before.map(|deadline| deadline + half_tick_ms));
    }
}
