//! The ensemble's consensus core: a pure state machine in the manner of etcd's raft, with
//! ZooKeeper's vocabulary (epochs, zxids, DIFF/TRUNC/SNAP).
//!
//! Inputs: messages from peers (`step`), time (`tick`, a monotonic clock the caller
//! reads), log writes made durable (`durable`), a lost peer link (`link_lost`), and a
//! leader's batches of ordered records (`propose`). Outputs (`take_outputs`), to be
//! carried out in order: persist the hard state before sending anything after it;
//! truncate, append and install snapshots in the log in order and report each one's
//! `seq` through `durable` once it is on disk; send messages; apply committed records.
//!
//! The protocol is ZooKeeper's atomic broadcast reshaped as a replicated log:
//! - Election: a member whose leader is gone asks first whether it would win (pre-vote,
//!   granted only by members that lost their leader too), then asks for votes in a new
//!   epoch, larger than any it has seen. A vote goes only to a candidate whose log ends at
//!   a zxid at least as recent as the voter's: the winner has every committed record.
//! - Establishment: the new leader appends an epoch marker (`epoch << 32`). Once a quorum
//!   holds it durably, every record before it is committed (ZooKeeper's NEWLEADER ack).
//! - Sync: each follower is sent what follows the last zxid both logs hold; a follower
//!   that holds records the leader lacks cuts them first (TRUNC); one too far behind the
//!   leader's in-memory window gets a snapshot (SNAP).
//! - Broadcast: batches stream to followers as they are ordered, within a window of
//!   unacknowledged bytes per follower; a record is committed once a quorum of voters
//!   (the leader counts as one) acknowledged it durable. A slow follower's window fills
//!   and it is resent from its last acknowledgement later; nobody waits for it. Where the
//!   leader and any one follower make a quorum (two or three voters), the leader also
//!   tells its followers how far its own log is durable: a follower durable through the
//!   same records knows them committed (the pair is the quorum the leader would count)
//!   and applies them without waiting a round trip for the leader's commit point.
//! - Liveness: a follower whose leader is silent for the sync limit looks for a new one;
//!   a follower answers records once they are durable, but never stays silent to its
//!   leader for longer than a heartbeat;
//!   a leader that has not heard from a quorum, or whose own disk has stalled, for the
//!   sync limit steps down.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::history::History;
use super::message::{AppendOutcome, MemberId, Message};
use super::payload::Payload;
use super::zxid::{counter, epoch, make_zxid};

/// Who votes and who only follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    pub voters: BTreeSet<MemberId>,
    pub observers: BTreeSet<MemberId>,
}

impl Members {
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    pub fn all(&self) -> impl Iterator<Item = MemberId> + '_ {
        self.voters.iter().chain(self.observers.iter()).copied()
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub id: MemberId,
    pub members: Members,
    /// How often a leader speaks to each follower when it has nothing to send, and the
    /// longest a follower receiving records leaves its leader without an answer.
    pub heartbeat_ms: u64,
    /// ZooKeeper's syncLimit in milliseconds: a follower that has not heard from its
    /// leader for this long looks for another; a leader that has not heard from a quorum
    /// for this long, or whose disk has not finished a write for this long, steps down.
    pub sync_limit_ms: u64,
    /// A failed election round is retried after between one and two of these.
    pub election_timeout_ms: u64,
    /// Bytes sent to one follower and not yet acknowledged before the leader stops sending
    /// to it until it catches up.
    pub window_bytes: usize,
    /// Largest run of batches in one Append message.
    pub frame_bytes_max: usize,
    /// Bytes of applied batches kept in memory for DIFFs; a follower behind them gets a
    /// snapshot.
    pub retained_bytes_max: usize,
    /// The counter at which a leader opens a new epoch instead of running out of zxids
    /// (ZooKeeper re-elects at 0xffffffff, ZOOKEEPER-2789).
    pub counter_limit: u32,
}

/// What must survive a restart besides the log: the epoch and the vote in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HardState {
    pub epoch: u32,
    pub vote: Option<MemberId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Looking,
    Candidate { pre: bool },
    Leader,
    Follower { leader: MemberId },
    Observer { leader: Option<MemberId> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<P: Payload> {
    /// Make this durable before carrying out any later output.
    PersistHardState(HardState),
    /// Drop every record after `after_zxid` from the log.
    Truncate {
        seq: u64,
        after_zxid: i64,
    },
    Append {
        seq: u64,
        batch: P,
    },
    /// Replace the state and the log with this snapshot at `zxid`.
    InstallSnapshot {
        seq: u64,
        zxid: i64,
        data: P::Snapshot,
    },
    Send {
        to: MemberId,
        message: Message<P>,
    },
    /// Apply these committed records, which follow the last ones applied.
    Apply {
        batches: Vec<P>,
    },
    RoleChanged(Role),
    /// A leader's epoch marker is committed: its log is the ensemble's, and it takes
    /// proposals from now on.
    Established {
        epoch: u32,
    },
    /// A follower needs a snapshot: call `send_snapshot` with the state at or below the
    /// last applied zxid.
    SnapshotWanted {
        to: MemberId,
    },
}

/// Why a proposal was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    NotLeader,
    /// Leader, but its epoch is not established yet (or it is opening a new one).
    NotReady,
}

/// A leader's view of one follower.
#[derive(Debug, Clone)]
struct Progress {
    /// The follower's log equals ours and is durable through this.
    match_zxid: i64,
    /// Sent through this (the next Append's prev).
    next_zxid: i64,
    /// Unacknowledged sends: (last zxid, bytes).
    in_flight: VecDeque<(i64, usize)>,
    in_flight_bytes: usize,
    heard_ms: u64,
    match_at_heartbeat: i64,
    snapshot_wanted: bool,
    /// While a snapshot is wanted: the applied zxid it will be taken at. The window keeps
    /// what follows it, so the snapshot still continues the window when it is ready.
    snapshot_floor: i64,
    /// When a snapshot was last sent. Another is made only once the follower has answered
    /// since: one that is down would otherwise cost a snapshot at every heartbeat.
    snapshot_sent_ms: Option<u64>,
    /// The leader's durable point as last sent to this follower (`Message::Durable`).
    durable_told: i64,
}

/// One log operation not yet durable.
#[derive(Debug, Clone, Copy)]
struct PendingOp {
    seq: u64,
    /// The log's last zxid once the operation is done.
    last_zxid: i64,
    issued_ms: u64,
}

pub struct Core<P: Payload> {
    settings: Settings,
    role: Role,
    hard: HardState,
    history: History,
    /// The newest batches of the log, for DIFFs; `window_prev` is the zxid before them.
    window: VecDeque<P>,
    window_bytes: usize,
    window_prev: i64,
    commit_zxid: i64,
    applied_zxid: i64,
    durable_zxid: i64,
    next_seq: u64,
    pending: VecDeque<PendingOp>,
    /// Follower: our log equals the leader's through this.
    leader_match: i64,
    /// Follower: the leader's log is durable through this, as it last told us, in this
    /// epoch (`Message::Durable`).
    leader_durable: i64,
    /// Follower or observer: when we last sent the leader an acknowledgement; None since
    /// we began following it (its first Append is answered at once: a new leader knows
    /// nothing of our log until we answer).
    replied_ms: Option<u64>,
    leader_heard_ms: u64,
    leader_link_up: bool,
    /// Leader: its view of every other member.
    progress: BTreeMap<MemberId, Progress>,
    established: bool,
    /// Leader: opening a new epoch because the counter ran out; proposals wait.
    renewing: bool,
    renew_started_ms: u64,
    votes: BTreeSet<MemberId>,
    now_ms: u64,
    election_deadline_ms: u64,
    heartbeat_due_ms: u64,
    rng: u64,
    outputs: Vec<Output<P>>,
}

/// The most a follower that saw its leader's link close waits before standing: enough to
/// keep the followers, who all see it at once, from splitting the vote, and small next to
/// the failover time users expect.
const STAGGER_MS_MAX: u64 = 20;

/// Members' messages held per output batch.
const OUTPUTS_MAX: usize = 1 << 20;

impl<P: Payload> Core<P> {
    /// A member starting with what its disk holds: the hard state, the shape of its log,
    /// its newest batches (for DIFFs) and the zxid its state machine has applied.
    pub fn new(
        settings: Settings,
        hard: HardState,
        history: History,
        window: Vec<P>,
        applied_zxid: i64,
        seed: u64,
        now_ms: u64,
    ) -> Core<P> {
        assert!(settings.members.voters.contains(&settings.id) || settings.members.observers.contains(&settings.id));
        assert!(settings.members.voters.is_disjoint(&settings.members.observers));
        assert!(epoch(history.last()) <= hard.epoch || hard.epoch == 0, "the log is ahead of the accepted epoch");
        let window_prev = window.first().map_or(history.last(), |batch| history.before(batch.first_zxid()));
        let window_bytes = window.iter().map(Payload::size_bytes).sum();
        assert!(window.last().is_none_or(|batch| batch.last_zxid() == history.last()));
        assert!(window_prev <= applied_zxid, "the window holds every record not yet applied");
        let is_observer = settings.members.observers.contains(&settings.id);
        let last = history.last();
        let mut core = Core {
            settings,
            role: if is_observer { Role::Observer { leader: None } } else { Role::Looking },
            hard: HardState { epoch: hard.epoch.max(epoch(last)), vote: hard.vote },
            history,
            window: window.into(),
            window_bytes,
            window_prev,
            commit_zxid: 0,
            applied_zxid,
            durable_zxid: last,
            next_seq: 1,
            pending: VecDeque::new(),
            leader_match: 0,
            leader_durable: 0,
            replied_ms: None,
            leader_heard_ms: now_ms,
            leader_link_up: false,
            progress: BTreeMap::new(),
            established: false,
            renewing: false,
            renew_started_ms: 0,
            votes: BTreeSet::new(),
            now_ms,
            election_deadline_ms: 0,
            heartbeat_due_ms: now_ms,
            // xorshift needs a non-zero state; mix the seed so that nearby seeds (member
            // ids, say) give unrelated sequences.
            rng: (seed ^ 0x9e37_79b9_7f4a_7c15).wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1,
            outputs: Vec::new(),
        };
        // The first election comes soon after start: with pre-vote a member that joins a
        // working ensemble cannot disturb it, and a new ensemble should not wait a whole
        // election timeout.
        let first_wait_ms = core.random_below(core.settings.election_timeout_ms / 4 + 1);
        core.election_deadline_ms = now_ms + first_wait_ms;
        core
    }

    // ---- queries

    pub fn id(&self) -> MemberId {
        self.settings.id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn epoch(&self) -> u32 {
        self.hard.epoch
    }

    pub fn hard_state(&self) -> HardState {
        self.hard
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn last_zxid(&self) -> i64 {
        self.history.last()
    }

    pub fn commit_zxid(&self) -> i64 {
        self.commit_zxid
    }

    pub fn applied_zxid(&self) -> i64 {
        self.applied_zxid
    }

    pub fn durable_zxid(&self) -> i64 {
        self.durable_zxid
    }

    pub fn leader(&self) -> Option<MemberId> {
        match self.role {
            Role::Leader => Some(self.settings.id),
            Role::Follower { leader } => Some(leader),
            Role::Observer { leader } => leader,
            Role::Looking | Role::Candidate { .. } => None,
        }
    }

    /// A leader whose epoch is established takes proposals.
    pub fn accepts_proposals(&self) -> bool {
        self.role == Role::Leader && self.established && !self.renewing
    }

    /// Leader: each other member's acknowledged zxid, and whether it is in sync (its
    /// window is not full and it needs no snapshot).
    pub fn followers(&self) -> Vec<(MemberId, i64, bool)> {
        self.progress
            .iter()
            .map(|(&id, progress)| {
                let synced = !progress.snapshot_wanted
                    && progress.in_flight_bytes < self.settings.window_bytes
                    && self.now_ms.saturating_sub(progress.heard_ms) < self.settings.sync_limit_ms;
                (id, progress.match_zxid, synced)
            })
            .collect()
    }

    pub fn take_outputs(&mut self) -> Vec<Output<P>> {
        std::mem::take(&mut self.outputs)
    }

    // ---- inputs

    pub fn tick(&mut self, now_ms: u64) {
        // A clock read by the caller may step back (another thread's reading): time here
        // never does.
        self.now_ms = self.now_ms.max(now_ms);
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower { .. } => {
                if self.now_ms.saturating_sub(self.leader_heard_ms) >= self.follower_timeout_ms() {
                    tracing::info!(member = self.settings.id, "leader silent for the sync limit; looking");
                    self.campaign();
                }
            }
            Role::Looking | Role::Candidate { .. } => {
                if self.now_ms >= self.election_deadline_ms {
                    self.campaign();
                }
            }
            Role::Observer { leader: Some(_) } => {
                if self.now_ms.saturating_sub(self.leader_heard_ms) >= self.follower_timeout_ms() {
                    tracing::info!(member = self.settings.id, "leader silent for the sync limit; observing nobody");
                    self.become_role(Role::Observer { leader: None });
                }
            }
            Role::Observer { leader: None } => {}
        }
        self.check_window();
    }

    /// A log operation's `seq` (and every earlier one) is durable.
    pub fn durable(&mut self, seq: u64) {
        let mut advanced = false;
        while let Some(op) = self.pending.front().copied().filter(|op| op.seq <= seq) {
            self.pending.pop_front();
            if op.last_zxid > self.durable_zxid {
                self.durable_zxid = op.last_zxid;
                advanced = true;
            }
        }
        assert!(self.durable_zxid <= self.history.last().max(self.history.base()));
        self.check_window();
        if !advanced {
            return;
        }
        match self.role {
            Role::Leader => {
                self.maybe_commit();
                self.tell_durable();
            }
            Role::Follower { leader } => {
                self.commit_with_leader();
                self.acknowledge(leader);
            }
            Role::Observer { leader: Some(leader) } => self.acknowledge(leader),
            _ => {}
        }
        self.emit_apply();
    }

    /// The link to `peer` broke (its process died or the network cut it). A follower
    /// looks for a new leader at once instead of waiting out the sync limit. A leader
    /// forgets what it told `peer` of its durable point: a `Durable` frame may have been
    /// lost with the link, and a follower that follows again has forgotten it anyway.
    pub fn link_lost(&mut self, peer: MemberId) {
        if let Some(progress) = self.progress.get_mut(&peer) {
            progress.durable_told = 0;
        }
        if self.role == (Role::Follower { leader: peer }) {
            tracing::info!(member = self.settings.id, leader = peer, "lost the leader's link; looking");
            self.leader_link_up = false;
            // Every follower sees the link close at once; a small random wait before
            // standing keeps them from splitting the vote.
            self.become_role(Role::Looking);
            let stagger_ms = self.random_below(STAGGER_MS_MAX.min(self.settings.election_timeout_ms / 4) + 1);
            self.election_deadline_ms = self.now_ms + stagger_ms;
        } else if self.role == (Role::Observer { leader: Some(peer) }) {
            self.leader_link_up = false;
            self.become_role(Role::Observer { leader: None });
        }
    }

    /// Leader: appends a batch of records it ordered (zxids following its last one, in its
    /// epoch) and streams it to every follower.
    pub fn propose(&mut self, batch: P) -> Result<(), Refused> {
        if self.role != Role::Leader {
            return Err(Refused::NotLeader);
        }
        if !self.accepts_proposals() {
            return Err(Refused::NotReady);
        }
        assert_eq!(epoch(batch.first_zxid()), self.hard.epoch, "a proposal is in the leader's epoch");
        assert_eq!(batch.first_zxid(), self.history.last() + 1, "proposals follow the log");
        self.append_local(batch);
        let peers: Vec<MemberId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_appends(peer);
        }
        if counter(self.history.last()) >= self.settings.counter_limit {
            self.renew_epoch();
        }
        self.check_window();
        Ok(())
    }

    /// Sends `to` the snapshot it wanted (`Output::SnapshotWanted`), taken at `zxid`. The
    /// driver may take a while to make it: if the window has moved past `zxid` by then,
    /// the snapshot is dropped and a newer one is asked for.
    pub fn send_snapshot(&mut self, to: MemberId, zxid: i64, data: P::Snapshot) {
        if self.role != Role::Leader {
            return;
        }
        assert!(zxid <= self.applied_zxid, "a snapshot of what was applied");
        let epoch = self.hard.epoch;
        let Some(progress) = self.progress.get_mut(&to) else { return };
        if zxid < self.window_prev {
            progress.snapshot_wanted = true;
            progress.snapshot_floor = self.applied_zxid;
            self.outputs.push(Output::SnapshotWanted { to });
            return;
        }
        progress.snapshot_wanted = false;
        progress.snapshot_sent_ms = Some(self.now_ms);
        progress.next_zxid = zxid;
        progress.in_flight.clear();
        progress.in_flight_bytes = 0;
        self.send(to, Message::Snapshot { epoch, zxid, data });
    }

    pub fn step(&mut self, from: MemberId, message: Message<P>) {
        if from == self.settings.id || !self.settings.members.all().any(|member| member == from) {
            tracing::warn!(member = self.settings.id, from, "message from a stranger dropped");
            return;
        }
        let message_epoch = message.epoch();
        if message_epoch > self.hard.epoch {
            // Any newer epoch ends whatever we were doing in ours; a pre-vote asks about
            // an epoch that does not exist yet, and changes nothing.
            let is_pre_vote = matches!(
                message,
                Message::Vote { pre: true, .. } | Message::VoteReply { pre: true, granted: true, .. }
            );
            // Our own leader asking for the next epoch (its counter ran out) keeps us
            // following it: its log and ours still match, and its clients stay connected.
            let renewal =
                self.role == (Role::Follower { leader: from }) && matches!(message, Message::Vote { pre: false, .. });
            if renewal {
                self.hard = HardState { epoch: message_epoch, vote: None };
                self.outputs.push(Output::PersistHardState(self.hard));
                self.forget_leaders_word();
                // It may also be our leader restarted with a shorter log (the long simulator
                // run found one, seed 501431): what we matched before counts no longer,
                // only what is committed.
                self.leader_match = self.history.base().max(self.commit_zxid);
            } else if !is_pre_vote {
                self.adopt_epoch(message_epoch);
            }
        }
        match message {
            Message::Vote { epoch, last_zxid, pre } => self.on_vote(from, epoch, last_zxid, pre),
            Message::VoteReply { for_epoch, granted, pre, .. } => self.on_vote_reply(from, for_epoch, granted, pre),
            Message::Append { epoch, prev_zxid, batches, commit_zxid } => {
                self.on_append(from, epoch, prev_zxid, batches, commit_zxid)
            }
            Message::AppendReply { epoch, outcome } => self.on_append_reply(from, epoch, outcome),
            Message::Durable { epoch, zxid } => self.on_leader_durable(from, epoch, zxid),
            Message::Snapshot { epoch, zxid, data } => self.on_snapshot(from, epoch, zxid, data),
        }
        assert!(self.outputs.len() < OUTPUTS_MAX, "outputs are taken after every input");
        self.check_window();
    }

    /// The window's byte count matches its batches (a walk of the window: debug builds
    /// only), and it ends where the log ends.
    fn check_window(&self) {
        debug_assert_eq!(self.window.iter().map(Payload::size_bytes).sum::<usize>(), self.window_bytes);
        assert!(self.window.back().is_none_or(|batch| batch.last_zxid() == self.history.last()));
    }

    // ---- elections

    fn random_below(&mut self, bound: u64) -> u64 {
        // xorshift64*: seeded by the caller, so a simulation replays exactly.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }

    fn reset_election_deadline(&mut self) {
        let timeout_ms = self.settings.election_timeout_ms;
        self.election_deadline_ms = self.now_ms + timeout_ms + self.random_below(timeout_ms);
    }

    fn is_voter(&self) -> bool {
        self.settings.members.voters.contains(&self.settings.id)
    }

    fn become_role(&mut self, role: Role) {
        if self.role == role {
            return;
        }
        assert!(
            !(self.role == Role::Leader && matches!(role, Role::Candidate { .. })),
            "a leader never campaigns without stepping down"
        );
        if matches!(role, Role::Follower { .. } | Role::Leader | Role::Candidate { .. }) {
            assert!(self.is_voter(), "an observer takes no part in elections: {role:?}");
        }
        self.role = role;
        self.forget_leaders_word();
        if role != Role::Leader {
            self.progress.clear();
            self.established = false;
            self.renewing = false;
        }
        self.outputs.push(Output::RoleChanged(role));
    }

    /// A new role or epoch: what the leader said of its durable point, and when we last
    /// answered it, speak for the old one.
    fn forget_leaders_word(&mut self) {
        self.leader_durable = 0;
        self.replied_ms = None;
    }

    fn adopt_epoch(&mut self, new_epoch: u32) {
        assert!(new_epoch > self.hard.epoch);
        self.hard = HardState { epoch: new_epoch, vote: None };
        self.outputs.push(Output::PersistHardState(self.hard));
        match self.role {
            Role::Leader | Role::Candidate { .. } | Role::Follower { .. } => {
                self.become_role(Role::Looking);
                self.reset_election_deadline();
            }
            // An observer's leader of the old epoch is no leader in the new one, even if
            // the same member leads it: what matched before must be matched again.
            Role::Observer { .. } => self.become_role(Role::Observer { leader: None }),
            Role::Looking => {}
        }
    }

    /// Starts a round: a pre-vote for the next epoch.
    fn campaign(&mut self) {
        if !self.is_voter() {
            return;
        }
        if self.role == Role::Leader {
            self.become_role(Role::Looking);
        }
        self.become_role(Role::Candidate { pre: true });
        self.reset_election_deadline();
        self.votes.clear();
        self.votes.insert(self.settings.id);
        let message = Message::Vote { epoch: self.hard.epoch + 1, last_zxid: self.history.last(), pre: true };
        self.broadcast_to_voters(message);
        self.maybe_win();
    }

    fn broadcast_to_voters(&mut self, message: Message<P>) {
        let voters: Vec<MemberId> =
            self.settings.members.voters.iter().copied().filter(|&voter| voter != self.settings.id).collect();
        for voter in voters {
            self.send(voter, message.clone());
        }
    }

    /// A follower gives up on a silent leader after three quarters of the sync limit, so
    /// that a leader cut off from its peers is replaced within the sync limit, election
    /// included (the leader itself steps down at the whole limit).
    fn follower_timeout_ms(&self) -> u64 {
        self.settings.sync_limit_ms * 3 / 4
    }

    fn has_live_leader(&self) -> bool {
        match self.role {
            Role::Leader => true,
            Role::Follower { .. } => {
                self.leader_link_up && self.now_ms.saturating_sub(self.leader_heard_ms) < self.follower_timeout_ms()
            }
            _ => false,
        }
    }

    fn on_vote(&mut self, from: MemberId, vote_epoch: u32, last_zxid: i64, pre: bool) {
        if !self.is_voter() || !self.settings.members.voters.contains(&from) {
            return;
        }
        let log_ok = last_zxid >= self.history.last();
        let granted = if pre {
            // Two members that stand at once (both saw the leader's link close) would each
            // pass the pre-vote and split the real one. Between them the more recent log
            // wins, then the larger id, as ZooKeeper's election orders votes.
            let contested = self.role == Role::Candidate { pre: true };
            let ahead_of_us = (last_zxid, from) > (self.history.last(), self.settings.id);
            vote_epoch > self.hard.epoch && log_ok && !self.has_live_leader() && (!contested || ahead_of_us)
        } else {
            let free = self.hard.vote.is_none_or(|vote| vote == from);
            vote_epoch == self.hard.epoch && free && log_ok && !matches!(self.role, Role::Leader)
        };
        if granted && !pre {
            self.hard.vote = Some(from);
            self.outputs.push(Output::PersistHardState(self.hard));
            self.reset_election_deadline();
        }
        if granted && pre && matches!(self.role, Role::Looking | Role::Candidate { pre: true }) {
            // We would vote for it: give it a whole election timeout before standing.
            self.become_role(Role::Looking);
            self.reset_election_deadline();
        }
        let reply = Message::VoteReply { for_epoch: vote_epoch, voter_epoch: self.hard.epoch, granted, pre };
        self.send(from, reply);
        // A member without a leader that refused because its own log is more recent
        // stands itself, rather than wait out a timeout (ZooKeeper's election votes for
        // the most recent log straight away).
        if !granted && !log_ok && matches!(self.role, Role::Looking) && !self.has_live_leader() {
            self.campaign();
        }
    }

    fn on_vote_reply(&mut self, from: MemberId, for_epoch: u32, granted: bool, pre: bool) {
        let expected = match self.role {
            Role::Candidate { pre: true } => pre && for_epoch == self.hard.epoch + 1,
            Role::Candidate { pre: false } => !pre && for_epoch == self.hard.epoch,
            // A leader opening a new epoch collects real votes for it while it leads.
            Role::Leader => self.renewing && !pre && for_epoch == self.hard.epoch,
            _ => false,
        };
        if !expected || !granted || !self.settings.members.voters.contains(&from) {
            return;
        }
        self.votes.insert(from);
        self.maybe_win();
    }

    fn maybe_win(&mut self) {
        if self.votes.len() < self.settings.members.quorum() {
            return;
        }
        match self.role {
            Role::Candidate { pre: true } => {
                self.hard = HardState { epoch: self.hard.epoch + 1, vote: Some(self.settings.id) };
                self.outputs.push(Output::PersistHardState(self.hard));
                self.become_role(Role::Candidate { pre: false });
                self.votes.clear();
                self.votes.insert(self.settings.id);
                let message = Message::Vote { epoch: self.hard.epoch, last_zxid: self.history.last(), pre: false };
                self.broadcast_to_voters(message);
                self.maybe_win();
            }
            Role::Candidate { pre: false } => self.lead(),
            Role::Leader if self.renewing => {
                self.renewing = false;
                self.open_epoch();
            }
            _ => {}
        }
    }

    /// Won the election for the current epoch: lead it.
    fn lead(&mut self) {
        assert_eq!(self.hard.vote, Some(self.settings.id), "a leader voted for itself");
        self.become_role(Role::Leader);
        tracing::info!(
            member = self.settings.id,
            epoch = self.hard.epoch,
            last_zxid = format_args!("{:#x}", self.history.last()),
            "leading"
        );
        self.open_epoch();
    }

    /// Appends the epoch marker and starts syncing every follower from where we think
    /// they are (they correct us with their history).
    fn open_epoch(&mut self) {
        self.established = false;
        let sent_through = self.history.last();
        let members: Vec<MemberId> = self.settings.members.all().filter(|&member| member != self.settings.id).collect();
        let now_ms = self.now_ms;
        for member in members {
            let progress = self.progress.entry(member).or_insert(Progress {
                match_zxid: 0,
                next_zxid: sent_through,
                in_flight: VecDeque::new(),
                in_flight_bytes: 0,
                heard_ms: now_ms,
                match_at_heartbeat: 0,
                snapshot_wanted: false,
                snapshot_floor: 0,
                snapshot_sent_ms: None,
                durable_told: 0,
            });
            progress.next_zxid = progress.next_zxid.min(sent_through).max(progress.match_zxid);
            progress.durable_told = 0;
        }
        self.append_local(P::epoch_marker(make_zxid(self.hard.epoch, 0)));
        let peers: Vec<MemberId> = self.progress.keys().copied().collect();
        for peer in peers {
            self.send_appends(peer);
        }
        self.heartbeat_due_ms = self.now_ms + self.settings.heartbeat_ms;
        self.maybe_commit();
    }

    /// The counter is nearly spent: ask the voters for the next epoch while leading, and
    /// open it once a quorum grants (no election, no outage beyond one round trip).
    fn renew_epoch(&mut self) {
        assert_eq!(self.role, Role::Leader);
        self.renewing = true;
        self.renew_started_ms = self.now_ms;
        self.hard = HardState { epoch: self.hard.epoch + 1, vote: Some(self.settings.id) };
        self.outputs.push(Output::PersistHardState(self.hard));
        self.votes.clear();
        self.votes.insert(self.settings.id);
        tracing::info!(
            member = self.settings.id,
            epoch = self.hard.epoch,
            "zxid counter near its end; opening a new epoch"
        );
        let message = Message::Vote { epoch: self.hard.epoch, last_zxid: self.history.last(), pre: false };
        self.broadcast_to_voters(message);
        self.maybe_win();
    }

    // ---- the log

    fn next_seq(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    fn append_local(&mut self, batch: P) {
        let (first, last) = (batch.first_zxid(), batch.last_zxid());
        self.history.append(first, last);
        self.window_bytes += batch.size_bytes();
        self.window.push_back(batch.clone());
        let seq = self.next_seq();
        self.pending.push_back(PendingOp { seq, last_zxid: last, issued_ms: self.now_ms });
        self.outputs.push(Output::Append { seq, batch });
    }

    fn truncate_local(&mut self, after_zxid: i64) {
        assert!(after_zxid >= self.commit_zxid, "a committed record is never cut");
        self.history.truncate_after(after_zxid);
        while self.window.back().is_some_and(|batch| batch.first_zxid() > after_zxid) {
            let batch = self.window.pop_back().expect("checked");
            self.window_bytes -= batch.size_bytes();
        }
        if let Some(batch) = self.window.back_mut().filter(|batch| batch.last_zxid() > after_zxid) {
            let kept = batch.slice(self.history.before(batch.first_zxid()), after_zxid);
            self.window_bytes = self.window_bytes - batch.size_bytes() + kept.size_bytes();
            *batch = kept;
        }
        self.window_prev = self.window_prev.min(after_zxid);
        self.durable_zxid = self.durable_zxid.min(after_zxid);
        for op in &mut self.pending {
            op.last_zxid = op.last_zxid.min(after_zxid);
        }
        let seq = self.next_seq();
        self.pending.push_back(PendingOp { seq, last_zxid: after_zxid, issued_ms: self.now_ms });
        self.outputs.push(Output::Truncate { seq, after_zxid });
    }

    /// Applies what is committed and durable here, then lets go of applied batches beyond
    /// the retained bytes.
    fn emit_apply(&mut self) {
        let through = self.commit_zxid.min(self.durable_zxid);
        if through > self.applied_zxid {
            let batches = self.window_slice(self.applied_zxid, through);
            self.applied_zxid = through;
            self.outputs.push(Output::Apply { batches });
        }
        // A snapshot being made for a follower holds the window at its zxid, up to four
        // times the retained bytes; past that the snapshot is dropped when it is ready and
        // a newer one is made (`send_snapshot`).
        let floor = self
            .progress
            .values()
            .filter(|progress| progress.snapshot_wanted)
            .map(|progress| progress.snapshot_floor)
            .min();
        let held = |batch: &P, window_bytes: usize| {
            floor.is_some_and(|floor| batch.last_zxid() > floor) && window_bytes <= 4 * self.settings.retained_bytes_max
        };
        while self.window_bytes > self.settings.retained_bytes_max
            && self
                .window
                .front()
                .is_some_and(|batch| batch.last_zxid() <= self.applied_zxid && !held(batch, self.window_bytes))
        {
            let batch = self.window.pop_front().expect("checked");
            self.window_bytes -= batch.size_bytes();
            self.window_prev = batch.last_zxid();
        }
    }

    /// The window's records in `(after, through]`, which it must hold.
    fn window_slice(&self, after: i64, through: i64) -> Vec<P> {
        assert!(after >= self.window_prev, "the window holds everything not yet applied");
        let start = self.window.partition_point(|batch| batch.last_zxid() <= after);
        let mut batches = Vec::new();
        for batch in self.window.iter().skip(start) {
            if batch.first_zxid() > through {
                break;
            }
            let whole = batch.first_zxid() > after && batch.last_zxid() <= through;
            batches.push(if whole {
                batch.clone()
            } else {
                batch.slice(after.max(self.history.before(batch.first_zxid())), through.min(batch.last_zxid()))
            });
        }
        assert_eq!(batches.last().map(Payload::last_zxid), Some(through), "the window ends at the log's end");
        batches
    }

    // ---- leader

    fn tick_leader(&mut self) {
        let sync_limit_ms = self.settings.sync_limit_ms;
        if self.renewing {
            // Nothing is sent in an epoch not yet won; a renewal that cannot gather a
            // quorum within the sync limit ends in an election.
            if self.now_ms.saturating_sub(self.renew_started_ms) >= sync_limit_ms {
                tracing::warn!(member = self.settings.id, "no quorum for the new epoch; stepping down");
                self.step_down();
            }
            return;
        }
        let heard = self.progress.iter().filter(|(id, progress)| {
            self.settings.members.voters.contains(id) && self.now_ms.saturating_sub(progress.heard_ms) < sync_limit_ms
        });
        if heard.count() + 1 < self.settings.members.quorum() {
            tracing::warn!(member = self.settings.id, "no quorum heard within the sync limit; stepping down");
            self.step_down();
            return;
        }
        if self.pending.front().is_some_and(|op| self.now_ms.saturating_sub(op.issued_ms) >= sync_limit_ms) {
            tracing::warn!(
                member = self.settings.id,
                "the log has not finished a write within the sync limit; stepping down"
            );
            self.step_down();
            return;
        }
        if self.now_ms < self.heartbeat_due_ms {
            return;
        }
        self.heartbeat_due_ms = self.now_ms + self.settings.heartbeat_ms;
        let peers: Vec<MemberId> = self.progress.keys().copied().collect();
        for peer in peers {
            let progress = self.progress.get_mut(&peer).expect("listed");
            if progress.match_zxid == progress.match_at_heartbeat && progress.next_zxid > progress.match_zxid {
                // Nothing acknowledged for a whole heartbeat: a send may have been lost;
                // start again from the acknowledgement.
                progress.next_zxid = progress.match_zxid;
                progress.in_flight.clear();
                progress.in_flight_bytes = 0;
            }
            progress.match_at_heartbeat = progress.match_zxid;
            if !self.send_appends(peer) {
                self.send_heartbeat(peer);
            }
        }
    }

    fn step_down(&mut self) {
        self.become_role(Role::Looking);
        self.reset_election_deadline();
    }

    fn send_heartbeat(&mut self, peer: MemberId) {
        if self.renewing {
            return;
        }
        let Some(progress) = self.progress.get(&peer) else { return };
        let message = Message::Append {
            epoch: self.hard.epoch,
            prev_zxid: progress.match_zxid,
            batches: Vec::new(),
            commit_zxid: self.commit_zxid,
        };
        self.send(peer, message);
    }

    /// Sends `peer` what follows what it was sent, within its window. Returns whether
    /// anything was sent.
    fn send_appends(&mut self, peer: MemberId) -> bool {
        let mut sent = false;
        if self.renewing {
            return sent;
        }
        for _ in 0..self.window.len() + 1 {
            let Some(progress) = self.progress.get(&peer) else { return sent };
            let next = progress.next_zxid;
            if progress.snapshot_wanted
                || progress.in_flight_bytes >= self.settings.window_bytes
                || next >= self.history.last()
            {
                return sent;
            }
            if next < self.window_prev {
                if progress.snapshot_sent_ms.is_some_and(|sent_ms| progress.heard_ms <= sent_ms) {
                    // Not heard from since its last snapshot: it may be down.
                    return sent;
                }
                let applied_zxid = self.applied_zxid;
                let progress = self.progress.get_mut(&peer).expect("listed");
                progress.snapshot_wanted = true;
                progress.snapshot_floor = applied_zxid;
                self.outputs.push(Output::SnapshotWanted { to: peer });
                return sent;
            }
            let start = self.window.partition_point(|batch| batch.last_zxid() <= next);
            let mut batches = Vec::new();
            let mut bytes = 0;
            for batch in self.window.iter().skip(start) {
                if !batches.is_empty() && bytes + batch.size_bytes() > self.settings.frame_bytes_max {
                    break;
                }
                let piece =
                    if batch.first_zxid() <= next { batch.slice(next, batch.last_zxid()) } else { batch.clone() };
                bytes += piece.size_bytes();
                batches.push(piece);
            }
            assert!(!batches.is_empty(), "the window holds what follows {next:#x}");
            let last = batches.last().expect("not empty").last_zxid();
            let progress = self.progress.get_mut(&peer).expect("listed");
            progress.next_zxid = last;
            progress.in_flight.push_back((last, bytes));
            progress.in_flight_bytes += bytes;
            let message =
                Message::Append { epoch: self.hard.epoch, prev_zxid: next, batches, commit_zxid: self.commit_zxid };
            self.send(peer, message);
            sent = true;
        }
        sent
    }

    fn on_append_reply(&mut self, from: MemberId, reply_epoch: u32, outcome: AppendOutcome) {
        if self.role != Role::Leader || reply_epoch != self.hard.epoch {
            return;
        }
        let now_ms = self.now_ms;
        let last = self.history.last();
        let Some(progress) = self.progress.get_mut(&from) else { return };
        progress.heard_ms = now_ms;
        match outcome {
            AppendOutcome::Ack { zxid } => {
                // Below our snapshot base we cannot tell the leader's records from a
                // follower's own: such an acknowledgement proves nothing.
                if zxid > last || zxid < self.history.base() || !self.history.contains(zxid) {
                    tracing::warn!(member = self.settings.id, from, zxid, "acknowledgement of a zxid we do not hold");
                    return;
                }
                progress.match_zxid = progress.match_zxid.max(zxid);
                progress.next_zxid = progress.next_zxid.max(progress.match_zxid);
                while progress.in_flight.front().is_some_and(|(sent_last, _)| *sent_last <= progress.match_zxid) {
                    let (_, bytes) = progress.in_flight.pop_front().expect("checked");
                    progress.in_flight_bytes -= bytes;
                }
                self.maybe_commit();
                self.send_appends(from);
            }
            AppendOutcome::Diverged { history } => {
                let common = self.history.common_point(&history);
                progress.next_zxid = common;
                progress.in_flight.clear();
                progress.in_flight_bytes = 0;
                self.send_appends(from);
            }
            AppendOutcome::Stale => {}
        }
    }

    fn maybe_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let mut acknowledged: Vec<i64> = self
            .progress
            .iter()
            .filter(|(id, _)| self.settings.members.voters.contains(id))
            .map(|(_, progress)| progress.match_zxid)
            .collect();
        acknowledged.push(self.durable_zxid);
        acknowledged.sort_unstable_by(|a, b| b.cmp(a));
        let quorum_zxid = acknowledged[self.settings.members.quorum() - 1];
        // Only a record of our own epoch is committed by counting: records of earlier
        // epochs are committed by the marker that follows them (the Raft paper's 5.4.2).
        if quorum_zxid <= self.commit_zxid || epoch(quorum_zxid) != self.hard.epoch {
            return;
        }
        self.commit_zxid = quorum_zxid;
        if !self.established && !self.renewing && quorum_zxid >= make_zxid(self.hard.epoch, 0) {
            self.established = true;
            tracing::info!(member = self.settings.id, epoch = self.hard.epoch, "epoch established");
            self.outputs.push(Output::Established { epoch: self.hard.epoch });
        }
        self.emit_apply();
        let peers: Vec<MemberId> = self.progress.keys().copied().collect();
        for peer in peers {
            if !self.send_appends(peer) && !self.knows_commit(peer) {
                self.send_heartbeat(peer);
            }
        }
    }

    /// Whether the leader and one follower make a quorum: then a follower durable through
    /// what the leader is durable through holds it committed (`commit_with_leader`).
    fn pair_is_quorum(&self) -> bool {
        self.settings.members.quorum() <= 2
    }

    /// Leader, its log durable through a new point: sends that point to each voting
    /// follower that has been sent records it has not yet acknowledged, up to that point.
    fn tell_durable(&mut self) {
        if !self.pair_is_quorum() || self.role != Role::Leader || self.renewing {
            return;
        }
        let (epoch, zxid) = (self.hard.epoch, self.durable_zxid);
        let voters = &self.settings.members.voters;
        let told: Vec<MemberId> = self
            .progress
            .iter_mut()
            .filter(|(id, progress)| {
                voters.contains(id)
                    && !progress.snapshot_wanted
                    && progress.match_zxid < zxid
                    && progress.next_zxid > progress.match_zxid
                    && progress.durable_told < zxid
            })
            .map(|(&id, progress)| {
                progress.durable_told = zxid;
                id
            })
            .collect();
        for peer in told {
            self.send(peer, Message::Durable { epoch, zxid });
        }
    }

    /// Leader: `peer` commits through our commit point on its own, so a heartbeat to carry
    /// it would tell it nothing: it acknowledged durable through it, and was sent a
    /// `Durable` frame that reaches at least as far (`commit_with_leader`). If that frame
    /// was lost, the next heartbeat carries the commit point (and a lost link resets what
    /// was sent, `link_lost`).
    fn knows_commit(&self, peer: MemberId) -> bool {
        let Some(progress) = self.progress.get(&peer) else { return false };
        self.pair_is_quorum()
            && self.settings.members.voters.contains(&peer)
            && progress.match_zxid >= self.commit_zxid
            && progress.durable_told >= self.commit_zxid
    }

    // ---- follower and observer

    fn follow(&mut self, leader: MemberId) {
        let role = if self.is_voter() { Role::Follower { leader } } else { Role::Observer { leader: Some(leader) } };
        if self.role == Role::Leader {
            // A leader opening the next epoch has not won it; another member has.
            assert!(self.renewing, "two leaders in epoch {}: {} and {leader}", self.hard.epoch, self.settings.id);
            self.step_down();
        }
        if self.role != role {
            self.leader_match = self.history.base().max(self.commit_zxid);
            self.become_role(role);
            tracing::info!(member = self.settings.id, leader, epoch = self.hard.epoch, "following");
        }
        self.leader_heard_ms = self.now_ms;
        self.leader_link_up = true;
    }

    fn on_append(&mut self, from: MemberId, append_epoch: u32, prev: i64, batches: Vec<P>, commit: i64) {
        if append_epoch < self.hard.epoch {
            let reply = Message::AppendReply { epoch: self.hard.epoch, outcome: AppendOutcome::Stale };
            self.send(from, reply);
            return;
        }
        assert_eq!(append_epoch, self.hard.epoch);
        self.follow(from);
        if !self.history.contains(prev) {
            let reply = Message::AppendReply {
                epoch: self.hard.epoch,
                outcome: AppendOutcome::Diverged { history: self.history.clone() },
            };
            self.send(from, reply);
            return;
        }
        let mut matched = prev;
        let mut appended = false;
        for batch in batches {
            let (first, last) = (batch.first_zxid(), batch.last_zxid());
            if first <= matched || last < first || epoch(first) != epoch(last) {
                tracing::warn!(member = self.settings.id, from, "an Append out of order dropped");
                break;
            }
            // We hold a prefix of this batch (the leader's records, since we matched it
            // before them), maybe all of it; anything of ours after that prefix is a tail
            // the leader never had: cut it (TRUNC), then append the rest (DIFF).
            let held = self.history.held_prefix(first, last).unwrap_or(matched).max(matched);
            if held < last {
                if self.history.last() > held {
                    self.truncate_local(held);
                }
                let piece = if held >= first { batch.slice(held, last) } else { batch };
                self.append_local(piece);
                appended = true;
            }
            matched = last;
        }
        self.leader_match = self.leader_match.max(matched);
        let commit = commit.min(self.leader_match);
        if commit > self.commit_zxid {
            self.commit_zxid = commit;
        }
        self.commit_with_leader();
        // Records just appended are acknowledged once they are durable (`durable`); an
        // acknowledgement now would repeat the last one, and wake the leader for nothing.
        // A heartbeat, or records held already, is answered at once, and so is anything
        // once we have been silent for a heartbeat: the leader hears from us while our
        // disk holds a write (were it not to hear from a quorum for the sync limit it
        // would step down), and learns what a lost reply said.
        let silent = self
            .replied_ms
            .is_none_or(|replied_ms| self.now_ms.saturating_sub(replied_ms) >= self.settings.heartbeat_ms);
        if !appended || silent {
            self.acknowledge(from);
        }
        self.emit_apply();
    }

    fn on_leader_durable(&mut self, from: MemberId, durable_epoch: u32, zxid: i64) {
        if durable_epoch != self.hard.epoch || self.role != (Role::Follower { leader: from }) {
            return;
        }
        self.leader_heard_ms = self.now_ms;
        self.leader_durable = self.leader_durable.max(zxid);
        self.commit_with_leader();
        self.emit_apply();
    }

    /// Follower where the leader and one follower make a quorum: what both the leader's log
    /// and ours hold durably, and ours holds as the leader's, is held by a quorum, so it
    /// is committed; the leader counts exactly this pair. Only records of the current
    /// epoch, as the leader counts (its marker commits what precedes it).
    fn commit_with_leader(&mut self) {
        if !self.pair_is_quorum() || !matches!(self.role, Role::Follower { .. }) {
            return;
        }
        let held = self.leader_durable.min(self.durable_zxid).min(self.leader_match);
        if held > self.commit_zxid && epoch(held) == self.hard.epoch {
            self.commit_zxid = held;
        }
    }

    fn acknowledge(&mut self, leader: MemberId) {
        let zxid = self.leader_match.min(self.durable_zxid);
        let reply = Message::AppendReply { epoch: self.hard.epoch, outcome: AppendOutcome::Ack { zxid } };
        self.send(leader, reply);
        self.replied_ms = Some(self.now_ms);
    }

    fn on_snapshot(&mut self, from: MemberId, snapshot_epoch: u32, zxid: i64, data: P::Snapshot) {
        if snapshot_epoch < self.hard.epoch {
            return;
        }
        self.follow(from);
        if self.history.contains(zxid) {
            // We hold the record at `zxid`, so our log equals the leader's through it and
            // has everything the snapshot would give (a late or duplicated snapshot):
            // installing it would drop records after it we may have acknowledged.
            self.leader_match = self.leader_match.max(zxid);
            self.acknowledge(from);
            return;
        }
        self.history.reset(zxid);
        self.window.clear();
        self.window_bytes = 0;
        self.window_prev = zxid;
        self.commit_zxid = self.commit_zxid.max(zxid);
        self.applied_zxid = zxid;
        // Nothing of the new log is durable until the install is: the old durable point
        // names a record of the old log, which must never be acknowledged as the leader's
        // (the long simulator run found a follower acknowledging one, seed 19300).
        self.durable_zxid = 0;
        for op in &mut self.pending {
            op.last_zxid = 0;
        }
        self.leader_match = zxid;
        let seq = self.next_seq();
        self.pending.push_back(PendingOp { seq, last_zxid: zxid, issued_ms: self.now_ms });
        self.outputs.push(Output::InstallSnapshot { seq, zxid, data });
    }

    fn send(&mut self, to: MemberId, message: Message<P>) {
        self.outputs.push(Output::Send { to, message });
    }
}

#[cfg(test)]
mod tests;
