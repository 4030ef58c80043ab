//! A deterministic simulator of an ensemble: 3 to 7 voting members (and observers), each
//! a consensus core with a disk, joined by a network that loses, delays, duplicates and
//! reorders messages, under partitions, crashes that lose whatever was not yet durable,
//! restarts, clock skew and disks that stall. Everything random comes from one seed, so a
//! failing seed replays exactly: `ringkeeper simulate --seed N`.
//!
//! Checked at every step:
//! - at most one leader per epoch;
//! - committed prefixes never diverge: every member applies the same records in the same
//!   order (the first to apply a position fixes it);
//! - no committed record is lost: a new leader's log holds every record applied anywhere
//!   before it was elected, acknowledged writes among them.
//!
//! Checked at the end, once faults stop and the network heals: every member applies
//! every committed record.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::sync::Arc;

use super::core::{Core, HardState, Members, Output, Role, Settings};
use super::history::History;
use super::message::{MemberId, Message};
use super::payload::Payload;
use super::zxid::epoch;

/// A record: its zxid and a value unique to the write (0 for epoch markers).
pub type Entry = (i64, u64);

/// A batch of the simulator's records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimBatch {
    pub entries: Arc<Vec<Entry>>,
}

impl Payload for SimBatch {
    type Snapshot = Arc<Vec<Entry>>;

    fn first_zxid(&self) -> i64 {
        self.entries.first().expect("a batch is not empty").0
    }

    fn last_zxid(&self) -> i64 {
        self.entries.last().expect("a batch is not empty").0
    }

    fn size_bytes(&self) -> usize {
        self.entries.len() * 16
    }

    fn slice(&self, after: i64, through: i64) -> SimBatch {
        let entries: Vec<Entry> =
            self.entries.iter().copied().filter(|(zxid, _)| *zxid > after && *zxid <= through).collect();
        assert!(!entries.is_empty(), "a slice holds records");
        SimBatch { entries: Arc::new(entries) }
    }

    fn epoch_marker(zxid: i64) -> SimBatch {
        SimBatch { entries: Arc::new(vec![(zxid, 0)]) }
    }
}

/// What a run found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub seed: u64,
    pub at_ms: u64,
    pub what: String,
}

/// What a run did, for the long-run report.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    pub committed: usize,
    pub elections: usize,
    pub crashes: usize,
    pub partitions: usize,
    pub snapshots: usize,
    pub truncations: usize,
    /// Epochs a leader opened without an election (its counter ran out).
    pub renewals: usize,
}

impl RunStats {
    pub fn add(&mut self, other: &RunStats) {
        self.committed += other.committed;
        self.elections += other.elections;
        self.crashes += other.crashes;
        self.partitions += other.partitions;
        self.snapshots += other.snapshots;
        self.truncations += other.truncations;
        self.renewals += other.renewals;
    }
}

/// The knobs of one run, drawn from its seed.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub voters: usize,
    pub observers: usize,
    pub fault_ms: u64,
    pub loss_per_mille: u64,
    pub duplicate_per_mille: u64,
    pub delay_ms_max: u64,
    pub crash_per_mille: u64,
    pub partition_per_mille: u64,
    pub stall_per_mille: u64,
    pub counter_limit: u32,
    /// A planted bug: the disk says a write is durable when it is issued, though a crash
    /// still loses it (acknowledging before durable).
    pub lying_disk: bool,
}

/// A tiny deterministic generator (splitmix64).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }

    fn per_mille(&mut self, rate: u64) -> bool {
        self.below(1000) < rate
    }
}

impl Scenario {
    pub fn from_seed(seed: u64) -> Scenario {
        let mut rng = Rng(seed ^ 0x5eed);
        Scenario {
            voters: [3, 3, 5, 5, 7][rng.below(5) as usize],
            observers: rng.below(3) as usize / 2,
            fault_ms: 2_000 + rng.below(2_000),
            loss_per_mille: rng.below(60),
            duplicate_per_mille: rng.below(30),
            delay_ms_max: 1 + rng.below(12),
            crash_per_mille: rng.below(4),
            partition_per_mille: rng.below(3),
            stall_per_mille: rng.below(3),
            counter_limit: if rng.per_mille(200) { 20 + rng.below(40) as u32 } else { u32::MAX - 1 },
            lying_disk: false,
        }
    }
}

#[derive(Debug, Clone)]
enum DiskOp {
    Append(SimBatch),
    Truncate(i64),
    Install(i64, Arc<Vec<Entry>>),
}

/// What survives a crash.
#[derive(Debug, Clone, Default)]
struct Disk {
    hard: HardState,
    base_zxid: i64,
    base: Arc<Vec<Entry>>,
    log: Vec<Entry>,
}

impl Disk {
    fn perform(&mut self, op: &DiskOp) {
        match op {
            DiskOp::Append(batch) => {
                assert!(self.log.last().is_none_or(|last| last.0 < batch.first_zxid()));
                self.log.extend(batch.entries.iter().copied());
            }
            DiskOp::Truncate(after) => self.log.retain(|(zxid, _)| zxid <= after),
            DiskOp::Install(zxid, entries) => {
                self.base_zxid = *zxid;
                self.base = entries.clone();
                self.log.clear();
            }
        }
    }

    fn history(&self) -> History {
        let mut history = History::new(self.base_zxid);
        for batch in self.batches() {
            history.append(batch.first_zxid(), batch.last_zxid());
        }
        history
    }

    /// The log as batches, one per epoch.
    fn batches(&self) -> Vec<SimBatch> {
        let mut batches: Vec<Vec<Entry>> = Vec::new();
        for &entry in &self.log {
            match batches.last_mut() {
                Some(batch) if epoch(batch[0].0) == epoch(entry.0) => batch.push(entry),
                _ => batches.push(vec![entry]),
            }
        }
        batches.into_iter().map(|entries| SimBatch { entries: Arc::new(entries) }).collect()
    }
}

struct Node {
    id: MemberId,
    core: Option<Core<SimBatch>>,
    disk: Disk,
    /// Issued, not yet durable: (done at, seq, op), completed in order.
    disk_queue: VecDeque<(u64, u64, DiskOp)>,
    stalled_until_ms: u64,
    /// The state machine: every record applied, in order.
    state: Vec<Entry>,
    /// The log as issued (what the core's history describes), with values.
    log_view: BTreeMap<i64, u64>,
    restart_at_ms: Option<u64>,
    clock_offset_ms: u64,
    clock_rate_per_mille: u64,
}

struct InFlight {
    deliver_at_ms: u64,
    order: u64,
    from: MemberId,
    to: MemberId,
    message: Message<SimBatch>,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.deliver_at_ms, self.order) == (other.deliver_at_ms, other.order)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deliver_at_ms, self.order).cmp(&(other.deliver_at_ms, other.order))
    }
}

pub struct Simulation {
    seed: u64,
    scenario: Scenario,
    rng: Rng,
    now_ms: u64,
    nodes: Vec<Node>,
    members: Members,
    network: BinaryHeap<Reverse<InFlight>>,
    message_order: u64,
    /// Links cut by the current partition, as (lower id, higher id).
    cut: BTreeSet<(MemberId, MemberId)>,
    partition_ends_ms: u64,
    /// The records applied anywhere, in order.
    committed: Vec<Entry>,
    leaders: BTreeMap<u32, MemberId>,
    next_value: u64,
    stats: RunStats,
    /// Prints every output (`ringkeeper simulate --seed N --trace`).
    pub trace: bool,
}

/// Simulated milliseconds after the faults stop within which every member must have
/// applied every committed record.
const SETTLE_MS_MAX: u64 = 30_000;

impl Simulation {
    pub fn new(seed: u64, scenario: Scenario) -> Simulation {
        let mut rng = Rng(seed);
        let voters: BTreeSet<MemberId> = (1..=scenario.voters as u64).collect();
        let observers: BTreeSet<MemberId> =
            (scenario.voters as u64 + 1..=(scenario.voters + scenario.observers) as u64).collect();
        let members = Members { voters, observers };
        let mut nodes = Vec::new();
        for id in members.all() {
            nodes.push(Node {
                id,
                core: None,
                disk: Disk::default(),
                disk_queue: VecDeque::new(),
                stalled_until_ms: 0,
                state: Vec::new(),
                log_view: BTreeMap::new(),
                restart_at_ms: Some(0),
                clock_offset_ms: rng.below(1_000),
                clock_rate_per_mille: 950 + rng.below(100),
            });
        }
        Simulation {
            seed,
            scenario,
            rng,
            now_ms: 0,
            nodes,
            members,
            network: BinaryHeap::new(),
            message_order: 0,
            cut: BTreeSet::new(),
            partition_ends_ms: 0,
            committed: Vec::new(),
            leaders: BTreeMap::new(),
            next_value: 1,
            stats: RunStats::default(),
            trace: false,
        }
    }

    fn settings(&self, id: MemberId) -> Settings {
        Settings {
            id,
            members: self.members.clone(),
            heartbeat_ms: 20,
            sync_limit_ms: 120,
            election_timeout_ms: 60,
            window_bytes: 512,
            frame_bytes_max: 256,
            retained_bytes_max: 1024,
            counter_limit: self.scenario.counter_limit,
        }
    }

    fn violation(&self, what: String) -> Violation {
        Violation { seed: self.seed, at_ms: self.now_ms, what }
    }

    /// Runs the faulty phase, then heals everything and waits for every member to apply
    /// every committed record.
    pub fn run(mut self) -> Result<RunStats, Violation> {
        while self.now_ms < self.scenario.fault_ms {
            self.inject_faults()?;
            self.step_ms()?;
        }
        self.heal();
        let settle_until_ms = self.now_ms + SETTLE_MS_MAX;
        let mut quiet_since_ms = None;
        while self.now_ms < settle_until_ms {
            self.step_ms()?;
            if self.converged() {
                let since = *quiet_since_ms.get_or_insert(self.now_ms);
                if self.now_ms - since > 300 {
                    return Ok(self.stats);
                }
            } else {
                quiet_since_ms = None;
            }
        }
        let applied: Vec<(MemberId, usize, Option<Role>)> =
            self.nodes.iter().map(|node| (node.id, node.state.len(), node.core.as_ref().map(Core::role))).collect();
        Err(self.violation(format!(
            "members did not converge within {SETTLE_MS_MAX} ms after the faults stopped: {} committed, applied {applied:?}",
            self.committed.len()
        )))
    }

    fn converged(&self) -> bool {
        let Some(leader) =
            self.nodes.iter().filter_map(|node| node.core.as_ref()).find(|core| core.accepts_proposals())
        else {
            return false;
        };
        leader.commit_zxid() == leader.last_zxid()
            && self.nodes.iter().all(|node| node.state.len() == self.committed.len())
    }

    fn heal(&mut self) {
        self.cut.clear();
        for node in &mut self.nodes {
            node.stalled_until_ms = 0;
            if node.core.is_none() {
                node.restart_at_ms = Some(self.now_ms);
            }
        }
    }

    fn inject_faults(&mut self) -> Result<(), Violation> {
        let scenario = self.scenario.clone();
        let voters = self.members.voters.len() as u64;
        if self.rng.per_mille(scenario.crash_per_mille) {
            let index = self.rng.below(self.nodes.len() as u64) as usize;
            let down_ms = self.rng.below(600);
            self.crash(index, down_ms)?;
        }
        if self.cut.is_empty() && self.rng.per_mille(scenario.partition_per_mille) {
            // Cut a random minority or majority off from the rest.
            let cut_off = 1 + self.rng.below(voters.max(2) - 1);
            let mut side: BTreeSet<MemberId> = BTreeSet::new();
            while (side.len() as u64) < cut_off {
                side.insert(1 + self.rng.below(self.nodes.len() as u64));
            }
            for a in self.members.all() {
                for b in self.members.all() {
                    if a < b && side.contains(&a) != side.contains(&b) {
                        self.cut.insert((a, b));
                    }
                }
            }
            self.partition_ends_ms = self.now_ms + 50 + self.rng.below(700);
            self.stats.partitions += 1;
        }
        if !self.cut.is_empty() && self.now_ms >= self.partition_ends_ms {
            self.cut.clear();
        }
        if self.rng.per_mille(scenario.stall_per_mille) {
            let index = self.rng.below(self.nodes.len() as u64) as usize;
            self.nodes[index].stalled_until_ms = self.now_ms + self.rng.below(800);
        }
        Ok(())
    }

    fn crash(&mut self, index: usize, down_ms: u64) -> Result<(), Violation> {
        let node = &mut self.nodes[index];
        if node.core.is_none() {
            return Ok(());
        }
        node.core = None;
        // Whatever was not durable is gone.
        node.disk_queue.clear();
        node.state.clear();
        node.restart_at_ms = Some(self.now_ms + down_ms);
        self.stats.crashes += 1;
        let id = node.id;
        // Its peers see their connections to it close.
        let peers: Vec<MemberId> = self.members.all().filter(|&peer| peer != id).collect();
        for peer in peers {
            if let Some(core) = self.node_mut(peer).core.as_mut() {
                core.link_lost(id);
            }
            self.process(peer)?;
        }
        Ok(())
    }

    fn node_mut(&mut self, id: MemberId) -> &mut Node {
        self.nodes.iter_mut().find(|node| node.id == id).expect("a member")
    }

    fn restart(&mut self, index: usize) {
        let settings = self.settings(self.nodes[index].id);
        let seed = self.rng.next();
        let now_ms = self.local_clock(index);
        let node = &mut self.nodes[index];
        node.restart_at_ms = None;
        let history = node.disk.history();
        let window = node.disk.batches();
        node.state = node.disk.base.to_vec();
        node.log_view = node.disk.base.iter().chain(node.disk.log.iter()).copied().collect();
        let base_zxid = node.disk.base_zxid;
        node.core = Some(Core::new(settings, node.disk.hard, history, window, base_zxid, seed, now_ms));
    }

    fn local_clock(&self, index: usize) -> u64 {
        let node = &self.nodes[index];
        self.now_ms * node.clock_rate_per_mille / 1000 + node.clock_offset_ms
    }

    /// One simulated millisecond: restarts, deliveries, disk completions, ticks and a
    /// client's writes.
    fn step_ms(&mut self) -> Result<(), Violation> {
        self.now_ms += 1;
        for index in 0..self.nodes.len() {
            if self.nodes[index].restart_at_ms.is_some_and(|at| at <= self.now_ms) {
                self.restart(index);
            }
        }
        while self.network.peek().is_some_and(|Reverse(message)| message.deliver_at_ms <= self.now_ms) {
            let Reverse(message) = self.network.pop().expect("peeked");
            let to = message.to;
            if let Some(core) = self.node_mut(to).core.as_mut() {
                core.step(message.from, message.message);
                self.process(to)?;
            }
        }
        for index in 0..self.nodes.len() {
            self.complete_disk(index)?;
            if self.now_ms % 5 == 0 {
                let local = self.local_clock(index);
                if let Some(core) = self.nodes[index].core.as_mut() {
                    core.tick(local);
                    let id = self.nodes[index].id;
                    self.process(id)?;
                }
            }
        }
        if self.now_ms < self.scenario.fault_ms && self.rng.per_mille(300) {
            self.propose()?;
        }
        Ok(())
    }

    fn complete_disk(&mut self, index: usize) -> Result<(), Violation> {
        let now_ms = self.now_ms;
        let node = &mut self.nodes[index];
        if node.stalled_until_ms > now_ms {
            return Ok(());
        }
        let mut done_seq = None;
        while node.disk_queue.front().is_some_and(|(done_at, _, _)| *done_at <= now_ms) {
            let (_, seq, op) = node.disk_queue.pop_front().expect("peeked");
            node.disk.perform(&op);
            done_seq = Some(seq);
        }
        if let (Some(seq), false) = (done_seq, self.scenario.lying_disk) {
            let id = node.id;
            if let Some(core) = node.core.as_mut() {
                core.durable(seq);
                self.process(id)?;
            }
        }
        Ok(())
    }

    fn propose(&mut self) -> Result<(), Violation> {
        let Some(index) = self.nodes.iter().position(|node| node.core.as_ref().is_some_and(Core::accepts_proposals))
        else {
            return Ok(());
        };
        let core = self.nodes[index].core.as_mut().expect("found");
        let last = core.last_zxid();
        let count = 1 + self.rng.below(4) as i64;
        let entries: Vec<Entry> = (1..=count)
            .map(|offset| {
                self.next_value += 1;
                (last + offset, self.next_value)
            })
            .collect();
        core.propose(SimBatch { entries: Arc::new(entries) }).expect("a leader that accepts proposals");
        let id = self.nodes[index].id;
        self.process(id)
    }

    /// Carries out a core's outputs.
    fn process(&mut self, id: MemberId) -> Result<(), Violation> {
        let index = self.nodes.iter().position(|node| node.id == id).expect("a member");
        // Carrying out outputs can make more (a lying disk's durable reports, a snapshot
        // sent): go on until the core has nothing left to say.
        for _ in 0..64 {
            let Some(core) = self.nodes[index].core.as_mut() else { return Ok(()) };
            let outputs = core.take_outputs();
            if outputs.is_empty() {
                return Ok(());
            }
            let epoch_now = core.epoch();
            self.carry_out(index, epoch_now, outputs)?;
        }
        Err(self.violation(format!("member {id} kept making outputs")))
    }

    fn carry_out(&mut self, index: usize, epoch_now: u32, outputs: Vec<Output<SimBatch>>) -> Result<(), Violation> {
        let id = self.nodes[index].id;
        for output in outputs {
            if self.trace {
                eprintln!("{:>6} ms  member {id} (epoch {epoch_now}): {}", self.now_ms, describe(&output));
            }
            match output {
                Output::PersistHardState(hard) => self.nodes[index].disk.hard = hard,
                Output::Truncate { seq, after_zxid } => {
                    self.stats.truncations += 1;
                    self.nodes[index].log_view.retain(|zxid, _| *zxid <= after_zxid);
                    self.issue(index, seq, DiskOp::Truncate(after_zxid));
                }
                Output::Append { seq, batch } => {
                    self.nodes[index].log_view.extend(batch.entries.iter().copied());
                    self.issue(index, seq, DiskOp::Append(batch));
                }
                Output::InstallSnapshot { seq, zxid, data } => {
                    self.stats.snapshots += 1;
                    self.check_prefix(&data, "installed snapshot")?;
                    let node = &mut self.nodes[index];
                    node.state = data.to_vec();
                    node.log_view = data.iter().copied().collect();
                    self.issue(index, seq, DiskOp::Install(zxid, data));
                }
                Output::Send { to, message } => self.send(id, to, message),
                Output::Apply { batches } => {
                    for batch in batches {
                        for &entry in batch.entries.iter() {
                            self.apply(index, entry)?;
                        }
                    }
                }
                Output::RoleChanged(Role::Leader) => {
                    self.stats.elections += 1;
                    if let Some(previous) = self.leaders.insert(epoch_now, id) {
                        if previous != id {
                            return Err(
                                self.violation(format!("two leaders in epoch {epoch_now}: {previous} and {id}"))
                            );
                        }
                    }
                    self.check_leader_holds_committed(index)?;
                }
                Output::Established { epoch } => {
                    if self.leaders.get(&(epoch - 1)) == Some(&id) && !self.leaders.contains_key(&epoch) {
                        self.stats.renewals += 1;
                    }
                    if let Some(previous) = self.leaders.insert(epoch, id) {
                        if previous != id {
                            return Err(self.violation(format!("two leaders in epoch {epoch}: {previous} and {id}")));
                        }
                    }
                }
                Output::RoleChanged(_) => {}
                Output::SnapshotWanted { to } => {
                    let node = &self.nodes[index];
                    let data = Arc::new(node.state.clone());
                    let zxid = node.state.last().map_or(0, |entry| entry.0);
                    let core = self.nodes[index].core.as_mut().expect("running");
                    core.send_snapshot(to, zxid, data);
                }
            }
        }
        Ok(())
    }

    fn issue(&mut self, index: usize, seq: u64, op: DiskOp) {
        let latency_ms = 1 + self.rng.below(4);
        let node = &mut self.nodes[index];
        let after = node.disk_queue.back().map_or(0, |(done_at, _, _)| *done_at);
        let done_at = (self.now_ms + latency_ms).max(after);
        node.disk_queue.push_back((done_at, seq, op));
        if self.scenario.lying_disk {
            // The planted bug: the write is reported durable before it is.
            node.core.as_mut().expect("running").durable(seq);
        }
    }

    fn send(&mut self, from: MemberId, to: MemberId, message: Message<SimBatch>) {
        let link = (from.min(to), from.max(to));
        if self.cut.contains(&link) || self.rng.per_mille(self.scenario.loss_per_mille) {
            return;
        }
        let copies = if self.rng.per_mille(self.scenario.duplicate_per_mille) { 2 } else { 1 };
        for _ in 0..copies {
            self.message_order += 1;
            let deliver_at_ms = self.now_ms + self.rng.below(self.scenario.delay_ms_max + 1);
            let message = message.clone();
            self.network.push(Reverse(InFlight { deliver_at_ms, order: self.message_order, from, to, message }));
        }
    }

    fn apply(&mut self, index: usize, entry: Entry) -> Result<(), Violation> {
        let node = &mut self.nodes[index];
        let position = node.state.len();
        node.state.push(entry);
        match self.committed.get(position) {
            Some(&fixed) if fixed != entry => {
                let id = node.id;
                Err(self.violation(format!(
                    "member {id} applied {entry:?} at position {position}, where {fixed:?} was committed"
                )))
            }
            Some(_) => Ok(()),
            None => {
                if self.committed.last().is_some_and(|last| last.0 >= entry.0) {
                    return Err(self.violation(format!("committed zxids out of order at {entry:?}")));
                }
                self.committed.push(entry);
                self.stats.committed = self.committed.len();
                Ok(())
            }
        }
    }

    fn check_prefix(&self, state: &[Entry], what: &str) -> Result<(), Violation> {
        if state.len() > self.committed.len() || self.committed[..state.len()] != *state {
            return Err(self.violation(format!("{what} is not a prefix of what was committed")));
        }
        Ok(())
    }

    fn check_leader_holds_committed(&self, index: usize) -> Result<(), Violation> {
        let node = &self.nodes[index];
        for &(zxid, value) in &self.committed {
            if node.log_view.get(&zxid) != Some(&value) {
                return Err(self.violation(format!(
                    "member {} leads without committed record {zxid:#x} (value {value})",
                    node.id
                )));
            }
        }
        Ok(())
    }
}

/// Runs one seed with its own scenario. A core's panic (a broken invariant it asserts)
/// is a violation too.
pub fn run_seed(seed: u64) -> Result<RunStats, Violation> {
    run_scenario(seed, Scenario::from_seed(seed), false)
}

pub fn run_scenario(seed: u64, scenario: Scenario, trace: bool) -> Result<RunStats, Violation> {
    let outcome = std::panic::catch_unwind(move || {
        let mut simulation = Simulation::new(seed, scenario);
        simulation.trace = trace;
        simulation.run()
    });
    outcome.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
            .unwrap_or_default();
        Err(Violation { seed, at_ms: 0, what: format!("a core panicked: {what}") })
    })
}

/// Runs one seed with the planted bug of acknowledging before durable.
pub fn run_seed_with_lying_disk(seed: u64) -> Result<RunStats, Violation> {
    let mut scenario = Scenario::from_seed(seed);
    scenario.lying_disk = true;
    scenario.crash_per_mille = scenario.crash_per_mille.max(3);
    run_scenario(seed, scenario, false)
}

/// One line for an output in a trace: messages by kind, batches by zxid range.
fn describe(output: &Output<SimBatch>) -> String {
    let range = |batches: &[SimBatch]| match (batches.first(), batches.last()) {
        (Some(first), Some(last)) => format!("{:#x}..={:#x}", first.first_zxid(), last.last_zxid()),
        _ => "-".to_string(),
    };
    match output {
        Output::Send { to, message: Message::Append { prev_zxid, batches, commit_zxid, .. } } => {
            format!("to {to}: Append prev {prev_zxid:#x} {} commit {commit_zxid:#x}", range(batches))
        }
        Output::Send { to, message: Message::Snapshot { zxid, .. } } => format!("to {to}: Snapshot at {zxid:#x}"),
        Output::Send { to, message } => format!("to {to}: {message:?}"),
        Output::Append { seq, batch } => format!("append #{seq} {}", range(std::slice::from_ref(batch))),
        Output::Apply { batches } => format!("apply {}", range(batches)),
        Output::InstallSnapshot { seq, zxid, .. } => format!("install #{seq} snapshot at {zxid:#x}"),
        other => format!("{other:?}"),
    }
}
