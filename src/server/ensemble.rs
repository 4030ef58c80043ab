//! An ensemble member's driver, on core 0: it moves bytes between the consensus core
//! (`consensus::core`), the peer links, the log and this server's cores, and nothing else.
//!
//! - Leading (once its epoch is established): the ordering point (`leader::Leader`)
//!   orders this member's and the followers' writes; each batch it makes is proposed to
//!   the core, which streams it to the followers while the log task writes it here.
//! - Following: writes, syncs, connects and touches are forwarded to the leader; the
//!   controls it places for our cores come back over the link and take effect once we
//!   have applied what was ordered before them.
//! - Whatever the role, committed records are applied on core 0 and sent to every other
//!   core, with their controls, exactly as a standalone server publishes them.
//! - A member serves clients only while it leads an established epoch or follows a leader
//!   and holds everything it applied at start as committed; otherwise it holds new
//!   sessions until it does and closes the connections it had (as ZooKeeper closes them
//!   when a server leaves its quorum).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use glommio::channels::local_channel::LocalSender;

use super::core_state::CoreState;
use super::ensemble_log::LogQueue;
use super::leader::Leader;
use super::messages::{AppliedBatch, CommittedBatch, Control, PlacedControl, ToLeader, EVERY_CORE};
use super::peer_codec::{Forwarded, PeerFrame};
use super::shared::{EnsembleStatus, Shared};
use super::snapshotter::{SnapshotSchedule, Snapshotter};
use crate::consensus::core::{Core, HardState, Output, Role};
use crate::consensus::message::MemberId;
use crate::consensus::record_batch::RecordBatch;
use crate::proto::request::decode_request;

/// Connect requests held while there is no leader to send them to (and followers'
/// requests held by a leader until its epoch is established).
const HELD_CONNECTS_MAX: usize = 100_000;
/// Rounds of outputs carried out per input before giving the executor back.
const OUTPUT_ROUNDS_MAX: usize = 64;

/// What the log task does, in order; each reports its sequence number once durable.
#[derive(Debug)]
pub enum LogOp {
    Append {
        seq: u64,
        batch: RecordBatch,
    },
    /// Cut the log after `after_zxid`; `restart` when the trees already hold records
    /// after it (they are rebuilt from the log by restarting the process).
    Truncate {
        seq: u64,
        after_zxid: i64,
        restart: bool,
    },
    /// Replace the state with a leader's snapshot; the trees are replaced with it.
    Install {
        seq: u64,
        zxid: i64,
        image: Arc<Vec<u8>>,
    },
}

/// Sends encoded peer frames; implemented by `peer_links`.
pub trait PeerSender {
    fn send(&self, to: MemberId, frame: &PeerFrame);
}

pub struct Ensemble {
    pub(crate) shared: Arc<Shared>,
    my_id: MemberId,
    core: Core<RecordBatch>,
    /// Core 0's state: the tree the ordering point validates against.
    state: Rc<RefCell<CoreState>>,
    /// The ordering point while leading an established epoch.
    ordering: Option<Rc<RefCell<Leader>>>,
    publisher_wake: Rc<LocalSender<()>>,
    links: Rc<dyn PeerSender>,
    log_ops: Rc<LogQueue>,
    /// Log appends handed to the log task and not yet durable: the publisher takes the
    /// next batch when there are none (group commit).
    appends_in_flight: usize,
    /// Committed batches for the other cores, sent by the distributor task.
    distribute: LocalSender<Vec<CommittedBatch>>,
    snapshotter: Snapshotter,
    snapshot_requests: LocalSender<SnapshotRequest>,
    /// Hard states to make durable, written off the executor (`server::persist_hard_states`):
    /// a member whose disk stalls goes on answering its clients' four-letter words and its
    /// peers' heartbeats.
    hard_state_writes: LocalSender<HardState>,
    /// While a hard state is being written, the outputs that came after it, in order:
    /// nothing after a vote or a new epoch may reach a peer or the log before it is
    /// durable (etcd's raft: persist before send).
    after_hard_state: Option<VecDeque<Output<RecordBatch>>>,
    /// Controls for this member's cores, in order, waiting for their zxid to be applied.
    pending_controls: Vec<VecDeque<PlacedControl>>,
    held_connects: VecDeque<ToLeader>,
    /// Followers' traffic that reached this leader before its epoch was established.
    held_forwarded: VecDeque<(MemberId, Forwarded)>,
    /// What the trees held when the process started: the member serves once this is known
    /// to be committed.
    startup_zxid: i64,
    /// The leader this member serves under, if it serves.
    serving: Option<MemberId>,
    established: bool,
    /// The epoch a leader opened while leading, waiting for its marker to be applied.
    renewed_epoch: Option<u32>,
    /// A TRUNC below the trees (the process restarts once it is durable) or a SNAP (the
    /// trees are replaced once it is installed) is on its way: serve nobody meanwhile.
    restarting: bool,
    snapshots: SnapshotSchedule,
    last_proposal_bytes: usize,
}

pub struct EnsembleParts {
    pub shared: Arc<Shared>,
    pub core: Core<RecordBatch>,
    pub state: Rc<RefCell<CoreState>>,
    pub publisher_wake: Rc<LocalSender<()>>,
    pub links: Rc<dyn PeerSender>,
    pub log_ops: Rc<LogQueue>,
    pub distribute: LocalSender<Vec<CommittedBatch>>,
    pub snapshotter: Snapshotter,
    pub snapshot_requests: LocalSender<SnapshotRequest>,
    pub hard_state_writes: LocalSender<HardState>,
}

/// A snapshot (SNAP) to encode for a follower, off the executor
/// (`server::encode_snapshots`): the follower, and the tree version at the leader's
/// applied zxid.
pub struct SnapshotRequest {
    pub to: MemberId,
    pub tree: Arc<crate::tree::DataTree>,
}

impl Ensemble {
    pub fn new(parts: EnsembleParts) -> Ensemble {
        let cores = parts.shared.cores;
        let startup_zxid = parts.state.borrow().tree.last_zxid();
        let my_id = parts.core.id();
        let snap_count = parts.shared.config.snap_count;
        let ensemble = Ensemble {
            shared: parts.shared,
            my_id,
            core: parts.core,
            state: parts.state,
            ordering: None,
            publisher_wake: parts.publisher_wake,
            links: parts.links,
            log_ops: parts.log_ops,
            appends_in_flight: 0,
            distribute: parts.distribute,
            snapshotter: parts.snapshotter,
            snapshot_requests: parts.snapshot_requests,
            hard_state_writes: parts.hard_state_writes,
            after_hard_state: None,
            pending_controls: (0..cores).map(|_| VecDeque::new()).collect(),
            held_connects: VecDeque::new(),
            held_forwarded: VecDeque::new(),
            startup_zxid,
            serving: None,
            established: false,
            renewed_epoch: None,
            restarting: false,
            snapshots: SnapshotSchedule::new(snap_count),
            last_proposal_bytes: 0,
        };
        ensemble.publish_status();
        ensemble
    }

    fn now_ms(&self) -> u64 {
        self.shared.started.elapsed().as_millis() as u64
    }

    // ---- inputs

    /// Time passes; the four-letter words' view of the member is refreshed here rather
    /// than on every message.
    pub fn tick(&mut self) {
        let now_ms = self.now_ms();
        self.core.tick(now_ms);
        self.process();
        self.publish_status();
    }

    pub fn durable(&mut self, seq: u64, appends: usize) {
        self.appends_in_flight -= appends;
        self.core.durable(seq);
        self.process();
        if self.appends_in_flight == 0 && self.ordering.as_ref().is_some_and(|ordering| ordering.borrow().has_batch()) {
            let _ = self.publisher_wake.try_send(());
        }
    }

    /// The leader's snapshot is installed and loaded: every core reads it from now on,
    /// and the clients that were connected reconnect (as after a restart).
    pub fn installed(&mut self, seq: u64, mut tree: crate::tree::DataTree) {
        super::core_state::set_membership(&mut tree, &self.shared.config);
        self.startup_zxid = tree.last_zxid();
        let version = self.state.borrow_mut().publish(Arc::new(tree), Vec::new());
        self.deliver_everywhere(version, Control::Replaced);
        self.restarting = false;
        self.durable(seq, 0);
    }

    /// A snapshot encoded for `to` (`SnapshotRequest`): sent if this member still leads
    /// and its window still continues the snapshot; otherwise the core asks again.
    pub fn snapshot_encoded(&mut self, to: MemberId, zxid: i64, image: Vec<u8>) {
        tracing::info!(
            to,
            zxid = format_args!("{zxid:#x}"),
            bytes = image.len(),
            "a snapshot (SNAP) for a follower is ready"
        );
        self.core.send_snapshot(to, zxid, Arc::new(image));
        self.process();
    }

    /// The hard state handed to `hard_state_writes` is durable: what followed it is
    /// carried out, up to the next hard state if there is one.
    pub fn hard_state_persisted(&mut self) {
        let mut deferred = self.after_hard_state.take().expect("a hard state was being written");
        while let Some(output) = deferred.pop_front() {
            self.carry_out(output);
            if let Some(after_next) = &mut self.after_hard_state {
                after_next.extend(deferred.drain(..));
                return;
            }
        }
        self.process();
    }

    pub fn leads(&self) -> bool {
        self.core.role() == Role::Leader
    }

    pub fn link_lost(&mut self, peer: MemberId) {
        self.core.link_lost(peer);
        self.process();
    }

    pub fn on_frame(&mut self, from: MemberId, frame: PeerFrame) {
        match frame {
            PeerFrame::Hello { .. } => tracing::warn!(from, "a second hello on a peer link; ignored"),
            PeerFrame::Consensus(message) => {
                let now_ms = self.now_ms();
                self.core.tick(now_ms);
                self.core.step(from, message);
                self.process();
            }
            PeerFrame::Forward(forwarded) => self.on_forwarded(from, forwarded),
            PeerFrame::Routed { core, after_zxid, control } => {
                if self.core.leader() != Some(from) || self.serving.is_none() {
                    return;
                }
                if core == EVERY_CORE {
                    for queue in &mut self.pending_controls {
                        queue.push_back((after_zxid, control.clone()));
                    }
                } else if let Some(queue) = self.pending_controls.get_mut(core as usize) {
                    queue.push_back((after_zxid, control));
                } else {
                    tracing::warn!(from, core, "a control for a core this member does not have");
                }
                self.deliver_ready_controls();
            }
        }
    }

    /// A message from one of this member's cores for the ordering point.
    pub fn handle(&mut self, message: ToLeader) {
        if let ToLeader::PublishListings = message {
            // This member's own business, serving or not. Only a leader keeps the
            // session table; other members list the sessions they hold.
            match &self.ordering {
                Some(ordering) if self.shared.take_session_listing_request() => ordering.borrow().publish_sessions(),
                Some(_) => {}
                None => self.shared.session_listing.lock().expect("not poisoned").clear(),
            }
            self.broadcast_control(Control::PublishListings);
            return;
        }
        if self.serving.is_none() {
            // Sessions wait for a leader; everything else belonged to connections that
            // are being closed.
            if matches!(message, ToLeader::Connect { .. }) && self.held_connects.len() < HELD_CONNECTS_MAX {
                self.held_connects.push_back(message);
            }
            return;
        }
        if let Some(ordering) = self.ordering.clone() {
            ordering.borrow_mut().handle(message);
            self.send_remote_controls();
            return;
        }
        let Some(leader) = self.core.leader() else { return };
        let forwarded = match message {
            ToLeader::Connect { core, connection, session_id, password, timeout_ms, .. } => {
                Forwarded::Connect { core: core as u32, connection, session_id, timeout_ms, password }
            }
            ToLeader::Write { connection, session_id, identities, xid, frame, .. } => {
                Forwarded::Write { connection, session_id, xid, identities, request: frame }
            }
            ToLeader::Sync { core, connection, xid, .. } => Forwarded::Sync { core: core as u32, connection, xid },
            ToLeader::Touch { sessions } => Forwarded::Touch { sessions },
            ToLeader::PublishListings => unreachable!("handled above"),
        };
        self.links.send(leader, &PeerFrame::Forward(forwarded));
    }

    fn on_forwarded(&mut self, from: MemberId, forwarded: Forwarded) {
        let Some(ordering) = self.ordering.clone() else {
            if self.core.role() == Role::Leader && self.held_forwarded.len() < HELD_CONNECTS_MAX {
                // Leading, but the ordering point opens once the epoch is established.
                self.held_forwarded.push_back((from, forwarded));
            }
            // Otherwise not the leader (any more): the follower finds the new one and its
            // clients reconnect.
            return;
        };
        let message = match forwarded {
            Forwarded::Connect { core, connection, session_id, timeout_ms, password } => {
                ToLeader::Connect { member: from, core: core as usize, connection, session_id, password, timeout_ms }
            }
            Forwarded::Write { connection, session_id, xid, identities, request } => match decode_request(&request) {
                Ok((_, decoded)) if decoded.is_write() => ToLeader::Write {
                    member: from,
                    connection,
                    session_id,
                    identities,
                    xid,
                    request: decoded,
                    frame: request,
                },
                _ => {
                    tracing::warn!(
                        from,
                        session = format_args!("{session_id:#x}"),
                        "a forwarded write that is not one; dropped"
                    );
                    return;
                }
            },
            Forwarded::Sync { core, connection, xid } => {
                ToLeader::Sync { member: from, core: core as usize, connection, xid }
            }
            Forwarded::Touch { sessions } => ToLeader::Touch { sessions },
        };
        ordering.borrow_mut().handle(message);
        self.send_remote_controls();
    }

    /// The publisher: proposes what the ordering point ordered, a batch at a time while
    /// the log is idle (what arrives meanwhile makes the next batch).
    pub fn publish(&mut self) {
        let Some(ordering) = self.ordering.clone() else { return };
        while self.appends_in_flight == 0 && self.core.accepts_proposals() {
            let Some(published) = ordering.borrow_mut().take_batch() else { break };
            for (core, controls) in published.controls.into_iter().enumerate() {
                self.pending_controls[core].extend(controls);
            }
            if !published.records.is_empty() {
                self.last_proposal_bytes = published.records.len();
                let batch = RecordBatch::new(published.records, published.first_zxid, published.last_zxid);
                self.core.propose(batch).expect("a leader that accepts proposals");
            }
            self.process();
            self.deliver_ready_controls();
        }
        self.send_remote_controls();
    }

    pub fn expire_sessions(&mut self) {
        if let Some(ordering) = self.ordering.clone() {
            ordering.borrow_mut().expire_sessions();
            self.send_remote_controls();
        }
    }

    pub fn reap_containers(&mut self, limit: usize) {
        if let Some(ordering) = self.ordering.clone() {
            ordering.borrow_mut().reap_containers(limit);
        }
    }

    // ---- outputs

    fn process(&mut self) {
        for _ in 0..OUTPUT_ROUNDS_MAX {
            let outputs = self.core.take_outputs();
            if outputs.is_empty() {
                break;
            }
            for output in outputs {
                match &mut self.after_hard_state {
                    Some(deferred) => deferred.push_back(output),
                    None => self.carry_out(output),
                }
            }
        }
        self.update_serving();
    }

    fn carry_out(&mut self, output: Output<RecordBatch>) {
        match output {
            Output::PersistHardState(hard) => {
                assert!(self.after_hard_state.is_none(), "one hard state write at a time");
                self.after_hard_state = Some(VecDeque::new());
                self.hard_state_writes.try_send(hard).expect("the hard state queue is unbounded");
            }
            Output::Append { seq, batch } => {
                self.appends_in_flight += 1;
                self.send_log(LogOp::Append { seq, batch });
            }
            Output::Truncate { seq, after_zxid } => {
                let restart = after_zxid < self.state.borrow().tree.last_zxid();
                self.restarting |= restart;
                tracing::info!(after = format_args!("{after_zxid:#x}"), restart, "truncating the log (TRUNC)");
                self.send_log(LogOp::Truncate { seq, after_zxid, restart });
            }
            Output::InstallSnapshot { seq, zxid, data } => {
                tracing::info!(
                    zxid = format_args!("{zxid:#x}"),
                    bytes = data.len(),
                    "installing the leader's snapshot (SNAP)"
                );
                // The trees hold the old state until the snapshot is loaded: serve nobody.
                self.restarting = true;
                self.send_log(LogOp::Install { seq, zxid, image: data });
            }
            Output::Send { to, message } => self.links.send(to, &PeerFrame::Consensus(message)),
            Output::Apply { batches } => {
                for batch in batches {
                    self.apply(batch);
                }
                self.deliver_ready_controls();
                self.finish_establishing();
            }
            Output::RoleChanged(role) => {
                tracing::info!(member = self.my_id, ?role, epoch = self.core.epoch(), "role");
                if role != Role::Leader {
                    self.ordering = None;
                    self.established = false;
                    self.renewed_epoch = None;
                    self.held_forwarded.clear();
                }
            }
            Output::Established { epoch } => {
                self.established = true;
                if self.ordering.is_some() {
                    // A new epoch opened while leading (the counter ran out): ordering
                    // resumes in it once its marker is applied.
                    self.renewed_epoch = Some(epoch);
                }
                self.finish_establishing();
            }
            Output::SnapshotWanted { to } => {
                // Encoding a large tree takes seconds: a version of it goes to a blocking
                // thread, and the executor keeps serving and heartbeating meanwhile.
                let tree = self.state.borrow().tree.clone();
                let request = SnapshotRequest { to, tree };
                self.snapshot_requests.try_send(request).expect("the snapshot queue is unbounded");
            }
        }
    }

    fn send_log(&self, op: LogOp) {
        self.log_ops.push(op);
    }

    /// Applies one committed batch on core 0 and hands it to every other core, each with
    /// the controls that fall inside or before it.
    fn apply(&mut self, batch: RecordBatch) {
        let last_zxid = batch.last_zxid;
        let per_core = self.take_ready_controls(last_zxid);
        // Committed before anyone hears of it: reads on any core wait until their core has
        // applied this far, so no client of this member reads older state than a write it
        // was already told of.
        self.shared.committed_zxid.fetch_max(last_zxid, Ordering::AcqRel);
        let applied = self.state.borrow_mut().apply_records(&batch.bytes);
        self.state.borrow_mut().deliver(&applied, &per_core[0]);
        let others: Vec<CommittedBatch> = per_core
            .into_iter()
            .skip(1)
            .map(|controls| CommittedBatch { applied: applied.clone(), controls })
            .collect();
        if !others.is_empty() {
            self.distribute.try_send(others).expect("the distributor's queue is unbounded");
        }
        if let Some(ordering) = &self.ordering {
            ordering.borrow_mut().applied_through(last_zxid);
        }
        // A batch holds consecutive zxids of one epoch.
        let records = (batch.last_zxid - batch.first_zxid + 1) as u64;
        if self.snapshots.counted(records) {
            self.snapshotter.take(applied.version.clone());
        }
    }

    /// Hands each core the controls whose place in the stream it has already applied.
    fn deliver_ready_controls(&mut self) {
        let applied = self.state.borrow().tree.last_zxid();
        let mut per_core = self.take_ready_controls(applied);
        if per_core.iter().all(Vec::is_empty) {
            return;
        }
        let unchanged = self.state.borrow().unchanged();
        let without_records = |controls| CommittedBatch { applied: unchanged.clone(), controls };
        let local = without_records(std::mem::take(&mut per_core[0]));
        if !local.controls.is_empty() {
            self.state.borrow_mut().deliver(&local.applied, &local.controls);
        }
        let others: Vec<CommittedBatch> = per_core.into_iter().skip(1).map(without_records).collect();
        if others.iter().any(|batch| !batch.controls.is_empty()) {
            self.distribute.try_send(others).expect("the distributor's queue is unbounded");
        }
    }

    /// Each core's controls placed at or before `zxid`, in order, taken from the queues.
    fn take_ready_controls(&mut self, zxid: i64) -> Vec<Vec<PlacedControl>> {
        let take = |queue: &mut VecDeque<PlacedControl>| {
            let ready = queue.iter().take_while(|(after_zxid, _)| *after_zxid <= zxid).count();
            queue.drain(..ready).collect()
        };
        self.pending_controls.iter_mut().map(take).collect()
    }

    /// The leader opens for business once its epoch is established and its trees hold
    /// everything up to the epoch's marker: the ordering point starts afresh from the tree
    /// (every live session gets a whole timeout to reconnect, as ZooKeeper's new leader
    /// gives them).
    fn finish_establishing(&mut self) {
        let marker = (self.core.epoch() as i64) << 32;
        if let (Some(epoch), Some(ordering)) = (self.renewed_epoch, &self.ordering) {
            if self.state.borrow().tree.last_zxid() >= marker {
                self.renewed_epoch = None;
                ordering.borrow_mut().open_epoch(epoch);
                self.send_remote_controls();
            }
            return;
        }
        if !self.established || self.ordering.is_some() || self.core.role() != Role::Leader {
            return;
        }
        if self.state.borrow().tree.last_zxid() < marker {
            return;
        }
        let mut ordering =
            Leader::new(self.shared.clone(), self.my_id, self.state.clone(), self.publisher_wake.clone());
        ordering.set_counter_limit(self.shared.config.zxid_counter_limit);
        let ordering = Rc::new(RefCell::new(ordering));
        ordering.borrow_mut().restore();
        self.ordering = Some(ordering);
        for (from, forwarded) in std::mem::take(&mut self.held_forwarded) {
            self.on_forwarded(from, forwarded);
        }
    }

    fn send_remote_controls(&mut self) {
        let Some(ordering) = &self.ordering else { return };
        let controls = ordering.borrow_mut().take_remote_controls();
        for remote in controls {
            let frame = PeerFrame::Routed { core: remote.core, after_zxid: remote.after_zxid, control: remote.control };
            self.links.send(remote.member, &frame);
        }
    }

    /// Starts or stops serving clients as the role and the commit point allow. Only a
    /// change of leader closes the clients' connections: a leader that opens its next epoch
    /// while leading (its counter ran out) keeps its ordering point and its sessions.
    fn update_serving(&mut self) {
        let should = match self.core.role() {
            Role::Leader => self.ordering.is_some().then_some(self.my_id),
            // The trees were rebuilt at start from the whole log, uncommitted tail and all:
            // serve once the record they end with is the leader's and committed (if the
            // leader cut it, TRUNC, the member restarts instead). Forwarded requests must
            // find the leader's ordering point open: wait for the epoch's marker to be
            // committed here too, unless already serving under this leader. (A follower
            // that commits with its leader sees the marker committed a moment before the
            // leader does; its acknowledgement travels ahead of its forwarded requests on
            // the same link, and the leader holds any that come before the ordering point
            // opens, `held_forwarded`.)
            Role::Follower { leader } | Role::Observer { leader: Some(leader) } => {
                let epoch_open =
                    self.core.commit_zxid() >= (self.core.epoch() as i64) << 32 || self.serving == Some(leader);
                (!self.restarting
                    && epoch_open
                    && self.core.commit_zxid() >= self.startup_zxid
                    && self.core.history().contains(self.startup_zxid))
                .then_some(leader)
            }
            _ => None,
        };
        let read_only = should.is_none() && self.shared.config.read_only_mode;
        if self.shared.read_only.swap(read_only, Ordering::AcqRel) && !read_only {
            tracing::info!(member = self.my_id, "a quorum again: ending read-only sessions");
            self.broadcast_control(Control::CloseReadOnly);
        }
        if should == self.serving {
            return;
        }
        if self.serving.is_some() {
            tracing::info!(member = self.my_id, "no longer serving: closing client connections");
            for queue in &mut self.pending_controls {
                queue.clear();
            }
            self.broadcast_control(Control::CloseAll);
        }
        self.serving = should;
        if let Some(leader) = should {
            tracing::info!(member = self.my_id, leader, epoch = self.core.epoch(), "serving");
            for message in std::mem::take(&mut self.held_connects) {
                self.handle(message);
            }
        }
        self.publish_status();
    }

    /// Hands every core a control at once, outside the committed stream's order.
    fn broadcast_control(&mut self, control: Control) {
        let unchanged = self.state.borrow().unchanged();
        self.deliver_everywhere(unchanged, control);
    }

    /// Hands every core `applied` with `control` before it, outside the stream's order.
    fn deliver_everywhere(&mut self, applied: Arc<AppliedBatch>, control: Control) {
        if matches!(control, Control::CloseAll | Control::Replaced) {
            // The marked writes of the closed connections will not be applied here now.
            self.shared.reads_before_writes.lock().expect("not poisoned").clear();
        }
        let batch = || CommittedBatch { applied: applied.clone(), controls: vec![(i64::MIN, control.clone())] };
        let local = batch();
        self.state.borrow_mut().deliver(&local.applied, &local.controls);
        let others: Vec<CommittedBatch> = (1..self.pending_controls.len()).map(|_| batch()).collect();
        if !others.is_empty() {
            self.distribute.try_send(others).expect("the distributor's queue is unbounded");
        }
    }

    fn publish_status(&self) {
        let mode = match (self.core.role(), self.serving.is_some()) {
            (Role::Leader, true) => "leader",
            (Role::Follower { .. }, true) => "follower",
            (Role::Observer { .. }, true) => "observer",
            _ if self.shared.read_only.load(Ordering::Acquire) => "read-only",
            _ => "looking",
        };
        let followers = self.core.followers();
        let last_zxid = self.core.last_zxid();
        let leader_id = match (self.core.role(), self.serving.is_some()) {
            (Role::Leader, true) => Some(self.my_id),
            (Role::Follower { leader }, true) | (Role::Observer { leader: Some(leader) }, true) => Some(leader),
            _ => None,
        };
        let mut status = self.shared.ensemble_status.lock().expect("not poisoned");
        *status = EnsembleStatus {
            mode,
            leader_id,
            epoch: self.core.epoch(),
            followers: followers
                .iter()
                .map(|&(id, acknowledged, synced)| (id, synced, last_zxid.saturating_sub(acknowledged).max(0) as u64))
                .collect(),
            last_proposal_bytes: self.last_proposal_bytes,
            commit_zxid: self.core.commit_zxid(),
            last_zxid,
            durable_zxid: self.core.durable_zxid(),
        };
    }
}
