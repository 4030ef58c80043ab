//! One core's state: the version of the shared tree it reads, the watches and
//! connections of the sessions it owns, and the delivery of the committed stream (on core
//! 0 also its application). Single-threaded: only the core's own tasks touch it, never
//! across an await.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::connection_state::{Connection, Phase, Queued};
use super::messages::{AppliedBatch, AppliedWrite, Control, PlacedControl};
use super::shared::{ConnectionSummary, Shared, WatchListing, CLIENT_REQUEST_TRACE_MASK};
use crate::log::record::Records;
use crate::proto::acl::PERM_READ;
use crate::proto::connect::ConnectResponse;
use crate::proto::opcode;
use crate::proto::request::{Request, WriteOp};
use crate::proto::response::{encode_notification, encode_reply, ReplyBody};
use crate::proto::watch_event::{EventType, WatcherEvent, STATE_SYNC_CONNECTED};
use crate::proto::{frame, jute::Writer, ErrorCode};
use crate::session::reads::{execute_read, Reader};
use crate::session::replies::{write_reply, WriteKind};
use crate::session::{ConnectionId, WatchRegistry, WatchTable};
use crate::tree::acl_check::permits;
use crate::tree::{DataTree, Outcome, Trigger};
use crate::txn::ArchivedTxnOp;

pub type ConnectionRef = Rc<RefCell<Connection>>;

/// The number of the tree every core starts from (`PublishedVersion`).
const RECOVERED_VERSION: u64 = 1;

/// How many records `apply_records` fetches ahead at a time (`DataTree::fetch_for`).
const FETCH_AHEAD_RECORDS: usize = 64;

pub struct CoreState {
    pub core: usize,
    pub shared: Arc<Shared>,
    /// The version of the shared tree this core reads. Core 0 applies to it (copying on
    /// write what other cores' versions still share); other cores switch versions, and
    /// hold `vacant` here instead while they serve no reads (`holds_version`).
    pub tree: Arc<DataTree>,
    /// `tree` is the version last delivered, not `vacant`. Always so on core 0.
    holds_version: bool,
    /// The number core 0 gave the version last delivered (`PublishedVersion`).
    version_number: u64,
    /// The last zxid of the version last delivered, held or not.
    applied_zxid: i64,
    /// This core served a read since its previous delivery.
    read_since_delivery: bool,
    /// The zxid a reply's header carries: the record being delivered, else the tree's.
    reply_zxid: i64,
    pub watches: WatchRegistry,
    pub connections: HashMap<ConnectionId, ConnectionRef>,
    /// The connection each session of this core is attached to.
    pub sessions: HashMap<i64, ConnectionId>,
    /// Sessions with activity since the last touch sent to the ordering point.
    pub touched: HashSet<i64>,
    next_connection: u64,
    /// Connections whose next request is a read waiting for this core to catch up.
    waiting_reads: HashSet<ConnectionId>,
    /// Recursive watches in the data and child tables, as last published for checkWatches.
    recursive_published: [usize; 2],
    /// The next version replaces the tree (SNAP) and may be older than the current one.
    tree_replaced: bool,
    /// What `tree` holds on core 0 while a batch is applied (`apply_records`), and on
    /// another core while it does not hold a version.
    vacant: Arc<DataTree>,
    /// Core 0: the number of the newest version it published.
    published_number: u64,
}

/// What the reader must do after handing a request to its core.
#[derive(Debug, PartialEq, Eq)]
pub enum Dispatch {
    /// Answered or queued locally.
    Done,
    /// Send it to the ordering point.
    ToLeader,
}

impl CoreState {
    pub fn new(core: usize, shared: Arc<Shared>) -> CoreState {
        CoreState {
            core,
            shared,
            tree: Arc::new(DataTree::new()),
            holds_version: true,
            version_number: 0,
            applied_zxid: 0,
            read_since_delivery: false,
            reply_zxid: 0,
            watches: WatchRegistry::default(),
            connections: HashMap::new(),
            sessions: HashMap::new(),
            touched: HashSet::new(),
            next_connection: 1,
            waiting_reads: HashSet::new(),
            recursive_published: [0, 0],
            tree_replaced: false,
            vacant: Arc::new(DataTree::new()),
            published_number: 0,
        }
    }

    /// Connection ids carry the core in their top bits so they are unique server-wide.
    pub fn next_connection_id(&mut self) -> ConnectionId {
        let id = ((self.core as u64) << 48) | self.next_connection;
        self.next_connection += 1;
        id
    }

    pub fn counters(&self) -> &super::shared::CoreCounters {
        &self.shared.counters[self.core]
    }

    /// Takes a request from a connected session. Reads run at once unless the session
    /// has requests ahead of them; writes, syncs and closes go to the ordering point.
    pub fn dispatch(&mut self, connection: &ConnectionRef, xid: i32, request: Request) -> Dispatch {
        let received = Instant::now();
        let mut conn = connection.borrow_mut();
        assert_eq!(conn.phase, Phase::Connected);
        conn.received += 1;
        self.touched.insert(conn.session_id);
        self.counters().packets_received.fetch_add(1, Ordering::Relaxed);
        self.counters().outstanding_requests.fetch_add(1, Ordering::Relaxed);
        // ZooTrace: with the client-request bit of the trace mask (`stmk`) set, requests
        // are logged at TRACE level.
        if self.shared.trace_mask.load(Ordering::Relaxed) & CLIENT_REQUEST_TRACE_MASK != 0 {
            tracing::trace!(
                session_id = format_args!("{:#x}", conn.session_id),
                xid,
                opcode = request.opcode(),
                "request"
            );
        }
        if conn.read_only_session && (request.is_write() || matches!(request, Request::Sync { .. })) {
            self.answer_read_only(&mut conn, xid, request, received);
            return Dispatch::Done;
        }
        let is_record = request.is_write() || matches!(request, Request::CloseSession);
        if is_record && conn.queued_reads > 0 {
            let mut wanted = self.shared.reads_before_writes.lock().expect("not poisoned");
            wanted.entry(conn.session_id).or_default().push(xid);
        }
        let queued = match request {
            Request::CloseSession => Queued::Close { xid, received },
            Request::Sync { path } => Queued::Sync { xid, path, received, synced: false },
            request if request.is_write() => {
                let kind = write_kind(&request);
                conn.queue.push_back(Queued::Write { xid, kind, received });
                return Dispatch::ToLeader;
            }
            request => {
                // Read what was committed when the read arrived, as a standalone ZooKeeper
                // would: this core's version of the tree may trail the ordering point by a
                // hop, and then the read waits for it.
                let min_zxid = self.shared.committed_zxid();
                if conn.queue.is_empty() && self.applied_zxid >= min_zxid && self.hold_version() {
                    self.serve_read(&mut conn, xid, &request, received);
                    return Dispatch::Done;
                }
                conn.queue.push_back(Queued::Read { xid, request, received, min_zxid });
                conn.queued_reads += 1;
                if conn.queue.len() == 1 {
                    self.waiting_reads.insert(conn.id);
                }
                return Dispatch::Done;
            }
        };
        conn.queue.push_back(queued);
        Dispatch::ToLeader
    }

    /// A read-only session's write, close or sync, answered here: no leader hears of it
    /// (ZooKeeper's ReadOnlyRequestProcessor answers writes NotReadOnly).
    fn answer_read_only(&mut self, conn: &mut Connection, xid: i32, request: Request, received: Instant) {
        match request {
            Request::CloseSession => {
                self.reply(conn, xid, ErrorCode::Ok, &ReplyBody::Empty, received);
                self.sessions.remove(&conn.session_id);
                conn.close();
            }
            Request::Sync { path } => {
                self.reply(conn, xid, ErrorCode::Ok, &ReplyBody::Path(path), received);
            }
            _ => {
                self.reply(conn, xid, ErrorCode::NotReadOnly, &ReplyBody::Empty, received);
            }
        }
    }

    /// A session id for a read-only session of this member: the member's id on top, as
    /// leaders' ids, and bit 55 set so no leader's id is ever the same.
    pub fn next_read_only_session(&mut self) -> i64 {
        let member = (self.shared.config.my_id & 0x7f) as i64;
        let id = (member << 56) | (1 << 55) | ((self.core as i64 & 0xff) << 40) | self.next_connection as i64;
        self.next_connection += 1;
        id
    }

    fn serve_read(&mut self, conn: &mut Connection, xid: i32, request: &Request, received: Instant) {
        assert!(self.holds_version, "a read is served from the version last delivered");
        self.read_since_delivery = true;
        let mut fired: Vec<(EventType, String)> = Vec::new();
        let shared = self.shared.clone();
        let watched_on_server = move |path: &str, watcher_type| shared.path_watched(path, watcher_type);
        let reader = Reader {
            session_id: conn.session_id,
            connection: conn.id,
            identities: &conn.identities,
            watched_on_server: &watched_on_server,
        };
        let (code, body) = execute_read(&self.tree, &mut self.watches, &reader, request, &mut |event, path| {
            fired.push((event, path.to_owned()))
        });
        for (event, path) in fired {
            push_event(conn, event, &path);
        }
        if sets_watch(request) {
            self.publish_watched_paths();
            self.publish_counters();
        }
        // A ping is answered with the ping xid whatever xid it came with
        // (FinalRequestProcessor replies with ClientCnxn.PING_XID).
        let xid = if matches!(request, Request::Ping) { opcode::XID_PING } else { xid };
        let latency_us = self.reply(conn, xid, code, &body, received);
        self.shared.histograms.read_latency_us[self.core].record(latency_us);
    }

    /// Answers a request; returns its latency in microseconds.
    fn reply(&self, conn: &mut Connection, xid: i32, code: ErrorCode, body: &ReplyBody, received: Instant) -> u64 {
        let zxid = self.reply_zxid;
        encode_reply(&mut conn.output, xid, zxid, code, body);
        conn.sent += 1;
        conn.last_zxid = zxid;
        let latency_us = received.elapsed().as_micros() as u64;
        conn.stats.record(xid, latency_us / 1000, wall_clock_ms());
        let counters = self.counters();
        counters.packets_sent.fetch_add(1, Ordering::Relaxed);
        counters.outstanding_requests.fetch_sub(1, Ordering::Relaxed);
        self.shared.record_latency(self.core, latency_us);
        conn.output_appended();
        latency_us
    }

    /// Serves the reads at the front of the queue, and the syncs among them already
    /// synced, up to the next request waiting for the ordering point.
    fn drain_reads(&mut self, conn: &mut Connection) {
        loop {
            if conn.phase == Phase::Closing {
                // Cut off (its output passed the cap, say): nobody reads the answers.
                break;
            }
            match conn.queue.front() {
                Some(Queued::Read { min_zxid, .. }) if *min_zxid > self.applied_zxid || !self.hold_version() => {
                    self.waiting_reads.insert(conn.id);
                    break;
                }
                Some(Queued::Read { .. }) => {
                    let Some(Queued::Read { xid, request, received, .. }) = conn.queue.pop_front() else {
                        unreachable!()
                    };
                    assert!(conn.queued_reads > 0, "a queued read was counted");
                    conn.queued_reads -= 1;
                    self.serve_read(conn, xid, &request, received);
                }
                Some(Queued::Sync { synced: true, .. }) => {
                    let Some(Queued::Sync { xid, path, received, .. }) = conn.queue.pop_front() else { unreachable!() };
                    self.reply(conn, xid, ErrorCode::Ok, &ReplyBody::Path(path), received);
                }
                _ => break,
            }
        }
        if conn.output.len() < super::connection_state::OUTPUT_BYTES_HIGH_WATER {
            conn.wake_reader();
        }
    }

    /// Serves the reads at the front of a session's queue, if the session is here.
    fn serve_reads_of(&mut self, session_id: i64) {
        if let Some(conn) = self.sessions.get(&session_id).and_then(|id| self.connections.get(id)).cloned() {
            self.drain_reads(&mut conn.borrow_mut());
        }
    }

    /// Serves the reads that waited for this core to catch up.
    fn serve_waiting_reads(&mut self) {
        if self.waiting_reads.is_empty() {
            return;
        }
        for connection in std::mem::take(&mut self.waiting_reads) {
            if let Some(conn) = self.connections.get(&connection).cloned() {
                self.drain_reads(&mut conn.borrow_mut());
            }
        }
    }

    /// Starts from the recovered tree, before the core serves anyone.
    pub fn recover(&mut self, tree: Arc<DataTree>) {
        if self.core == 0 {
            self.shared.published_version.publish(RECOVERED_VERSION, tree.clone());
            self.published_number = RECOVERED_VERSION;
        }
        self.tree = tree;
        self.version_number = RECOVERED_VERSION;
        self.applied_zxid = self.tree.last_zxid();
        self.reply_zxid = self.tree.last_zxid();
        self.shared.applied_zxid[self.core].store(self.tree.last_zxid(), Ordering::Release);
        self.publish_counters();
    }

    /// Publishes the paths that entered or left this core's watch tables, for
    /// checkWatches on any core.
    fn publish_watched_paths(&mut self) {
        let recursive =
            [self.watches.recursive_count(WatchTable::Data), self.watches.recursive_count(WatchTable::Child)];
        if !self.watches.has_path_changes() && recursive == self.recursive_published {
            return;
        }
        self.recursive_published = recursive;
        let mut published = self.shared.watched_paths[self.core].lock().expect("not poisoned");
        published.data_recursive = recursive[0];
        published.child_recursive = recursive[1];
        self.watches.take_path_changes(|table, path, present| {
            let paths = match table {
                WatchTable::Data => &mut published.data,
                WatchTable::Child => &mut published.child,
            };
            if present {
                paths.insert(path);
            } else {
                paths.remove(&path);
            }
        });
    }

    /// Core 0: applies a batch of committed records to the tree, once for every core.
    /// Older versions are never changed: the tree copies on write what it still shares
    /// with them, once per batch; within the batch it changes its own copy in place. A
    /// record that a session sent after a read still waiting behind its earlier write
    /// also keeps the version just before it: that read must see neither the record nor
    /// anything after it (ZooKeeper answers a session's requests in order).
    pub fn apply_records(&mut self, records: &[u8]) -> Arc<AppliedBatch> {
        assert_eq!(self.core, 0, "only core 0 applies the committed stream");
        let wanted_before = self.versions_wanted_before(records);
        // Unless a version is wanted inside the batch, this core lets go of its own
        // reference while it applies: where nothing else shares the version either (no
        // other core reading, no snapshot being written), the batch changes it in place instead of
        // copying every branch it touches, and freeing the old ones after. Between here
        // and the batch's delivery this core reads the tree only for status listings,
        // and no read is served before delivery moves to the batch's version.
        let in_place = !wanted_before.contains(&true);
        let mut working = if in_place {
            // The published reference goes too, and no core can take one until the next
            // publication: a core that let go of its version waits for the batch instead.
            drop(self.shared.published_version.withdraw());
            std::mem::replace(&mut self.tree, self.vacant.clone())
        } else {
            self.tree.clone()
        };
        // The records whose trie walks are fetched ahead of their apply, a window at a
        // time: a batch holds up to thousands, and a window's fetched branches must still
        // be cached when its records are applied.
        let mut ahead = Records::written(records).map_while(Result::ok).map(|(_, txn)| txn);
        let mut writes = Vec::new();
        for (index, record) in Records::written(records).enumerate() {
            if index % FETCH_AHEAD_RECORDS == 0 {
                working.fetch_for(ahead.by_ref().take(FETCH_AHEAD_RECORDS));
            }
            let (zxid, txn) = record.expect("records from the ordering point are intact");
            let session_id = txn.session_id.to_native();
            let cxid = txn.cxid.to_native();
            let is_close = matches!(txn.op, ArchivedTxnOp::CloseSession { .. });
            let version_before = wanted_before.get(index).copied().unwrap_or(false).then(|| working.clone());
            let tree = Arc::make_mut(&mut working);
            assert!(zxid > tree.last_zxid(), "zxid {zxid:#x} applied out of order");
            let mut triggers = Vec::new();
            let outcome = tree.apply(txn, &mut triggers);
            self.shared.note_digest(zxid, tree.digest());
            writes.push(AppliedWrite { version_before, zxid, session_id, cxid, is_close, outcome, triggers });
        }
        if in_place {
            self.tree = working.clone();
        }
        self.publish(working, writes)
    }

    /// Core 0: numbers a new version of the tree, makes it the one other cores can take
    /// back (`hold_version`), and wraps it for delivery to every core.
    pub fn publish(&mut self, version: Arc<DataTree>, writes: Vec<AppliedWrite>) -> Arc<AppliedBatch> {
        assert_eq!(self.core, 0, "only core 0 makes versions");
        let number = self.published_number + 1;
        self.published_number = number;
        self.shared.published_version.publish(number, version.clone());
        Arc::new(AppliedBatch { version, number, writes })
    }

    /// Which records of a batch were marked by their session's core (`reads_before_writes`),
    /// by position; taken from the shared map at once so its lock is never held while
    /// the batch is applied (the cores that mark writes would wait for it).
    fn versions_wanted_before(&self, records: &[u8]) -> Vec<bool> {
        let mut wanted = self.shared.reads_before_writes.lock().expect("not poisoned");
        if wanted.is_empty() {
            return Vec::new();
        }
        Records::written(records)
            .map(|record| {
                let (_, txn) = record.expect("records from the ordering point are intact");
                let is_close = matches!(txn.op, ArchivedTxnOp::CloseSession { .. });
                wants_version_before(&mut wanted, txn.session_id.to_native(), txn.cxid.to_native(), is_close)
            })
            .collect()
    }

    /// The current version with no records applied: for controls outside a batch.
    pub fn unchanged(&self) -> Arc<AppliedBatch> {
        assert!(self.holds_version);
        Arc::new(AppliedBatch { version: self.tree.clone(), number: self.version_number, writes: Vec::new() })
    }

    /// Delivers one applied batch to this core's sessions: record by record, the watch
    /// events it fires and the answer to its write, with each control at its place among
    /// the records; then the core reads the batch's version and serves the reads that
    /// waited. A read queued behind a write waits for the end of the batch, so it never
    /// shows a change whose event is still to come, except where its session sent a later
    /// write: then it is served just before that write's record, from the version kept
    /// there, after the events of every record before it.
    pub fn deliver(&mut self, applied: &AppliedBatch, controls: &[PlacedControl]) -> i64 {
        let mut controls = controls.iter().peekable();
        for write in &applied.writes {
            while let Some((_, control)) = controls.next_if(|(after_zxid, _)| *after_zxid < write.zxid) {
                self.apply_control(control);
            }
            assert!(write.zxid > self.reply_zxid, "zxid {:#x} delivered out of order", write.zxid);
            if let Some(version) = &write.version_before {
                self.read_version(version);
                self.serve_reads_of(write.session_id);
            }
            self.reply_zxid = write.zxid;
            for trigger in &write.triggers {
                self.fire(&applied.version, trigger);
            }
            self.complete_write(write);
        }
        for (_, control) in controls {
            self.apply_control(control);
        }
        self.read_version(&applied.version);
        self.version_number = applied.number;
        self.publish_watched_paths();
        self.shared.applied_zxid[self.core].store(self.applied_zxid, Ordering::Release);
        self.serve_waiting_reads();
        self.publish_counters();
        self.let_go_of_unread_version();
        self.applied_zxid
    }

    /// The last zxid of the version last delivered.
    pub fn applied_zxid(&self) -> i64 {
        self.applied_zxid
    }

    /// Moves this core to a version of the tree, never backwards.
    fn read_version(&mut self, version: &Arc<DataTree>) {
        let replaced = std::mem::take(&mut self.tree_replaced);
        assert!(replaced || version.last_zxid() >= self.applied_zxid, "a core's tree never goes back");
        if !(self.holds_version && Arc::ptr_eq(&self.tree, version)) {
            self.tree = version.clone();
        }
        self.holds_version = true;
        self.applied_zxid = self.tree.last_zxid();
        self.reply_zxid = self.applied_zxid;
    }

    /// A core other than 0 that served no read since its previous delivery lets go of
    /// its version: then core 0 can apply the next batch in place instead of copying
    /// what the batch touches (`PublishedVersion`). A core that reads keeps it, so its
    /// reads never wait for core 0.
    fn let_go_of_unread_version(&mut self) {
        if self.core != 0 && !std::mem::take(&mut self.read_since_delivery) {
            self.let_go_of_version();
        }
    }

    fn let_go_of_version(&mut self) {
        assert_ne!(self.core, 0, "core 0 applies to its version");
        self.tree = self.vacant.clone();
        self.holds_version = false;
    }

    /// Holds the version last delivered, taking it back if this core let go of it; false
    /// if core 0 has published another since (its delivery to this core is on its way,
    /// and the read waits for it).
    fn hold_version(&mut self) -> bool {
        if !self.holds_version {
            let Some(tree) = self.shared.published_version.take(self.version_number) else {
                return false;
            };
            assert_eq!(tree.last_zxid(), self.applied_zxid, "the version last delivered");
            self.tree = tree;
            self.holds_version = true;
        }
        true
    }

    /// Sends the events a change fires to the watchers that may READ the node (or the
    /// parent, for NodeChildrenChanged) under its ACL at the time of the change, with the
    /// identities they hold now: ZooKeeper 3.8 with the CVE-2024-23944 fix checks this in
    /// `ServerCnxn.process` and drops the event otherwise; the one-shot watch is used up
    /// either way. The ACL is looked up in the batch's version: interned ids never change,
    /// and the version this core reads may predate the ACL.
    fn fire(&mut self, version: &DataTree, trigger: &Trigger) {
        let connections = &self.connections;
        let acl = version.acl_by_id(trigger.acl_id());
        self.watches.fire(trigger, |connection, event, path| {
            if let Some(conn) = connections.get(&connection) {
                let mut conn = conn.borrow_mut();
                if permits(acl, PERM_READ, conn.identities.as_slice()) {
                    push_event(&mut conn, event, path);
                }
            }
        });
    }

    /// Answers the write a committed transaction came from, if its session is here.
    fn complete_write(&mut self, write: &AppliedWrite) {
        let AppliedWrite { session_id, cxid, is_close, ref outcome, .. } = *write;
        let Some(connection) = self.sessions.get(&session_id).and_then(|id| self.connections.get(id)).cloned() else {
            return;
        };
        let mut conn = connection.borrow_mut();
        if matches!(outcome, Outcome::SessionCreated) {
            return;
        }
        let front_matches = conn.queue.front().is_some_and(|queued| queued.is_ordered() && queued.xid() == cxid);
        if is_close && !front_matches {
            // The session expired (or was closed elsewhere) while this connection held it.
            tracing::info!(session = format_args!("{session_id:#x}"), "session expired; closing its connection");
            self.sessions.remove(&session_id);
            conn.close();
            return;
        }
        if !front_matches {
            tracing::error!(
                session = format_args!("{session_id:#x}"),
                cxid,
                "committed write does not match the session's next request; closing"
            );
            conn.close();
            return;
        }
        match conn.queue.pop_front().expect("front matched") {
            Queued::Write { kind: WriteKind::Single(opcode::CHECK), .. } if matches!(outcome, Outcome::Checked) => {
                // ZooKeeper orders a check sent outside a multi (it takes a zxid) and
                // answers it only when it fails: FinalRequestProcessor has no reply for a
                // check that passed.
                self.counters().outstanding_requests.fetch_sub(1, Ordering::Relaxed);
            }
            Queued::Write { xid, kind, received } => {
                let (code, body) = write_reply(&kind, outcome.clone());
                let latency_us = self.reply(&mut conn, xid, code, &body, received);
                self.shared.histograms.update_latency_us[self.core].record(latency_us);
            }
            Queued::Close { xid, received } => {
                self.reply(&mut conn, xid, ErrorCode::Ok, &ReplyBody::Empty, received);
                // Requests pipelined after the close get no reply: ZooKeeper drops those it
                // reads once the session is closing, and the replies of those already in
                // its pipeline go to a connection it has closed.
                let dropped = conn.queue.len();
                conn.queue.clear();
                self.counters().outstanding_requests.fetch_sub(dropped as u64, Ordering::Relaxed);
                conn.queued_reads = 0;
                self.sessions.remove(&session_id);
                conn.close();
                return;
            }
            other => unreachable!("ordered front {other:?} answered by a txn"),
        }
        // The reads behind it are served once the batch is delivered, or before the
        // session's next write if that comes first.
        self.waiting_reads.insert(conn.id);
    }

    fn apply_control(&mut self, control: &Control) {
        match control {
            Control::Connected { connection, session } => {
                let Some(conn_ref) = self.connections.get(connection).cloned() else {
                    return;
                };
                let mut conn = conn_ref.borrow_mut();
                if conn.phase == Phase::Closing {
                    return;
                }
                match session {
                    Some((session_id, password)) => {
                        // A re-attach on this core replaces the session's old connection.
                        if let Some(previous) = self.sessions.get(session_id).copied() {
                            if previous != conn.id {
                                if let Some(old) = self.connections.get(&previous) {
                                    old.borrow_mut().close();
                                }
                            }
                        }
                        conn.session_id = *session_id;
                        conn.phase = Phase::Connected;
                        self.sessions.insert(*session_id, conn.id);
                        self.touched.insert(*session_id);
                        let response = ConnectResponse {
                            protocol_version: 0,
                            timeout_ms: conn.timeout_ms,
                            session_id: *session_id,
                            password: *password,
                            read_only: conn.read_only_byte.map(|_| false),
                        };
                        write_connect_response(&mut conn.output, &response);
                        conn.sent += 1;
                        conn.stats.established_ms = wall_clock_ms();
                        tracing::debug!(session = format_args!("{session_id:#x}"), peer = %conn.peer, "session established");
                    }
                    None => {
                        let response = ConnectResponse::invalid(conn.read_only_byte);
                        write_connect_response(&mut conn.output, &response);
                        tracing::info!(peer = %conn.peer, "re-attach refused: session expired or wrong password");
                        conn.close();
                    }
                }
                conn.wake_writer();
                conn.wake_reader();
            }
            Control::Synced { connection, xid } => {
                let Some(conn_ref) = self.connections.get(connection).cloned() else {
                    return;
                };
                let mut conn = conn_ref.borrow_mut();
                // Reads, and syncs answered after them, may still wait ahead of it (reads
                // are served at the end of the batch): it is answered in its turn.
                let next_ordered = conn
                    .queue
                    .iter_mut()
                    .find(|queued| queued.is_ordered() && !matches!(queued, Queued::Sync { synced: true, .. }));
                match next_ordered {
                    Some(Queued::Sync { xid: next, synced, .. }) if next == xid => *synced = true,
                    _ => {
                        tracing::error!(xid, "sync completion does not match the session's next request");
                        conn.close();
                        return;
                    }
                }
                if matches!(conn.queue.front(), Some(Queued::Sync { .. })) {
                    // Nothing ahead of it: answered now, so the session's next write finds
                    // itself at the front when its record is delivered.
                    let Some(Queued::Sync { xid, path, received, .. }) = conn.queue.pop_front() else { unreachable!() };
                    self.reply(&mut conn, xid, ErrorCode::Ok, &ReplyBody::Path(path), received);
                }
                // The reads behind it wait for the end of the batch, as behind a write.
                self.waiting_reads.insert(conn.id);
            }
            Control::SessionMoved { session_id, keep } => {
                let Some(current) = self.sessions.get(session_id).copied() else {
                    return;
                };
                if Some(current) == *keep {
                    return;
                }
                if let Some(conn) = self.connections.get(&current) {
                    tracing::info!(session = format_args!("{session_id:#x}"), "session moved to another connection");
                    conn.borrow_mut().close();
                }
                self.sessions.remove(session_id);
            }
            Control::CloseAll | Control::Replaced => {
                for conn in self.connections.values() {
                    let mut conn = conn.borrow_mut();
                    // A connection still handshaking waits for its session; after a SNAP
                    // the leader answers it as usual.
                    if matches!(control, Control::CloseAll) || conn.phase == Phase::Connected {
                        conn.close();
                    }
                }
                self.sessions.clear();
                self.tree_replaced |= matches!(control, Control::Replaced);
            }
            Control::PublishListings => self.publish_requested_listings(),
            Control::CloseReadOnly => {
                for conn in self.connections.values() {
                    let mut conn = conn.borrow_mut();
                    if conn.read_only_session {
                        conn.close();
                    }
                }
            }
        }
    }

    /// Forgets a connection whose socket closed.
    pub fn remove_connection(&mut self, connection: ConnectionId) {
        let Some(conn) = self.connections.remove(&connection) else {
            return;
        };
        let conn = conn.borrow();
        if self.sessions.get(&conn.session_id) == Some(&connection) {
            self.sessions.remove(&conn.session_id);
        }
        let unanswered = conn.queue.len() as u64;
        self.counters().outstanding_requests.fetch_sub(unanswered, Ordering::Relaxed);
        self.watches.remove_connection(connection);
        self.counters().connections.fetch_sub(1, Ordering::Relaxed);
        drop(conn);
        // A core left with no connection is sent no batch until one comes
        // (`server::send_committed`): the version it holds would stay alive, and keep
        // core 0 copying around it, for as long as no client comes.
        if self.core != 0 && self.connections.is_empty() && self.holds_version {
            self.let_go_of_version();
        }
        // The connection list is published when a four-letter word asks, not here:
        // building it costs a walk of the core's connections, and a close per walk made
        // session churn quadratic.
        self.publish_watched_paths();
        self.publish_counters();
    }

    /// Publishes the numbers the four-letter words report.
    pub fn publish_counters(&self) {
        let counters = self.counters();
        let summary = self.watches.summary();
        counters.watch_connections.store(summary.data_connections as u64, Ordering::Relaxed);
        counters.watch_count.store(summary.data_watches as u64, Ordering::Relaxed);
        counters.watch_count_all.store(summary.all_watches as u64, Ordering::Relaxed);
        if self.core == 0 {
            counters.node_count.store(self.tree.node_count() as u64, Ordering::Relaxed);
            counters.ephemeral_count.store(self.tree.ephemeral_count() as u64, Ordering::Relaxed);
        }
    }

    /// Publishes what the four-letter words asked for since the last time (the watch
    /// listing only if one of them wants it), and records the generation served.
    fn publish_requested_listings(&self) {
        let shared = &self.shared;
        let requested = shared.listing_requested.load(Ordering::Acquire);
        let published = &shared.listing_published[self.core];
        let last_published = published.load(Ordering::Acquire);
        if last_published >= requested {
            // Several words asked at once: one walk answered them all.
            return;
        }
        let watches_asked = shared.watch_listing_requested.load(Ordering::Acquire) > last_published;
        if shared.connection_stats_reset_requested.load(Ordering::Acquire) > last_published {
            self.reset_connection_stats();
        }
        self.publish_counters();
        self.publish_listings(watches_asked);
        published.store(requested, Ordering::Release);
    }

    fn reset_connection_stats(&self) {
        for conn in self.connections.values() {
            let mut conn = conn.borrow_mut();
            conn.stats.reset();
            conn.received = 0;
            conn.sent = 0;
            conn.last_zxid = -1;
        }
    }

    /// Publishes the connection list (`cons`, `stat`) and the numbers beside it; with
    /// `with_watches` also the full watch listing (`wchc`, `wchp`) and, on core 0, every
    /// session's ephemeral nodes (`dump`). These copy every watch and ephemeral path, so
    /// they are built only when a command asks, never on a timer.
    pub fn publish_listings(&self, with_watches: bool) {
        let summaries: Vec<ConnectionSummary> = self
            .connections
            .values()
            .map(|conn| {
                let conn = conn.borrow();
                ConnectionSummary {
                    peer: conn.peer,
                    session_id: conn.session_id,
                    timeout_ms: conn.timeout_ms,
                    received: conn.received,
                    sent: conn.sent,
                    queued: conn.queue.len() as u64,
                    last_zxid: conn.last_zxid,
                    stats: conn.stats,
                }
            })
            .collect();
        *self.shared.connection_summaries[self.core].lock().expect("not poisoned") = summaries;
        if with_watches {
            self.publish_watch_listing();
            if self.core == 0 {
                let listing = self.tree.ephemerals_by_session().collect();
                *self.shared.ephemeral_listing.lock().expect("not poisoned") = listing;
            }
        }
        if self.core == 0 {
            let data_size_bytes = self.tree.approximate_data_size() as u64;
            self.counters().data_size_bytes.store(data_size_bytes, Ordering::Relaxed);
            *self.shared.quota_gauges.lock().expect("not poisoned") = quota_gauges(&self.tree);
        }
    }

    fn publish_watch_listing(&self) {
        let session_of =
            |connection: ConnectionId| self.connections.get(&connection).map_or(0, |conn| conn.borrow().session_id);
        let listing = WatchListing {
            by_session: self
                .watches
                .data_paths_by_connection()
                .into_iter()
                .map(|(connection, paths)| (session_of(connection), paths.into_iter().map(str::to_owned).collect()))
                .collect(),
            by_path: self
                .watches
                .data_watchers_by_path()
                .into_iter()
                .map(|(path, watchers)| (path.to_owned(), watchers.into_iter().map(session_of).collect()))
                .collect(),
        };
        *self.shared.watch_listing[self.core].lock().expect("not poisoned") = listing;
    }
}

/// Writes the ensemble's membership into `/zookeeper/config` as each ZooKeeper member does
/// when it loads its database (at start, and after installing a leader's snapshot).
pub fn set_membership(tree: &mut DataTree, config: &crate::config::Config) {
    if config.is_ensemble() {
        tree.set_membership(config.membership_text().as_bytes(), wall_clock_ms());
    }
}

/// Set while recovery replays the log, before any core runs: the process's panic hook
/// lets a panic there unwind into `recovered_tree`'s error instead of aborting.
static REPLAYING_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn is_replaying_log() -> bool {
    REPLAYING_LOG.load(Ordering::Acquire)
}

/// The tree the snapshot (if any) and the log after it hold: every core's first version.
/// A snapshot whose nodes are not a tree, or a log whose records do not apply to it
/// (damaged or crafted files that passed their checksums and validation), is an error:
/// the tree's assertions stop the replay, and the server refuses to start.
pub fn recovered_tree(
    snapshot: Option<&crate::log::snapshot_file::LoadedSnapshot>,
    log: &crate::log::recovery::RecoveredLog,
) -> Result<DataTree, String> {
    let mut tree = match snapshot {
        None => DataTree::new(),
        Some(snapshot) => {
            snapshot.tree().map_err(|error| format!("snapshot {}: {error:?}", snapshot.path.display()))?
        }
    };
    REPLAYING_LOG.store(true, Ordering::Release);
    let replay = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut triggers = Vec::new();
        for (_, txn) in log.records_after(tree.last_zxid()) {
            triggers.clear();
            tree.apply(txn, &mut triggers);
        }
    }));
    REPLAYING_LOG.store(false, Ordering::Release);
    match replay {
        Ok(()) => Ok(tree),
        Err(_) => Err(format!("the log does not apply to the tree at {:#x} (see the panic above)", tree.last_zxid())),
    }
}

fn sets_watch(request: &Request) -> bool {
    match request {
        Request::Exists { watch, .. } | Request::GetData { watch, .. } | Request::GetChildren { watch, .. } => *watch,
        Request::SetWatches(_) | Request::AddWatch { .. } | Request::RemoveWatches { .. } => true,
        _ => false,
    }
}

pub(super) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as i64)
}

fn write_kind(request: &Request) -> WriteKind {
    match request {
        Request::Write(op) => WriteKind::Single(op.opcode()),
        Request::Multi(ops) => WriteKind::Multi(ops.iter().map(WriteOp::opcode).collect()),
        Request::Malformed { opcode } => WriteKind::Single(*opcode),
        Request::Reconfig { .. } => WriteKind::Single(crate::proto::opcode::RECONFIG),
        other => unreachable!("not a write: {other:?}"),
    }
}

fn push_event(conn: &mut Connection, event: EventType, path: &str) {
    if conn.phase == Phase::Closing {
        return;
    }
    let event = WatcherEvent { event_type: event, state: STATE_SYNC_CONNECTED, path: path.to_owned() };
    encode_notification(&mut conn.output, &event);
    conn.output_appended();
}

pub fn write_connect_response(output: &mut Vec<u8>, response: &ConnectResponse) {
    let start = frame::begin(output);
    response.encode(&mut Writer::new(output));
    frame::end(output, start);
}

/// mntr's quota gauges (`QuotaMetricsUtils`): per top namespace, the sums of the limits
/// (the hard one where set) and of the usage over the quota nodes below it.
fn quota_gauges(tree: &crate::tree::DataTree) -> Vec<(String, &'static str, i64)> {
    let mut sums: std::collections::BTreeMap<(String, &'static str), i64> = Default::default();
    for (namespace, is_limits, stats) in tree.quota_nodes() {
        let figures = if is_limits {
            [
                ("quota_count_limit_per_namespace", stats.count_limit()),
                ("quota_bytes_limit_per_namespace", stats.byte_limit()),
            ]
        } else {
            [("quota_count_usage_per_namespace", stats.count()), ("quota_bytes_usage_per_namespace", stats.bytes())]
        };
        for (name, value) in figures {
            *sums.entry((namespace.clone(), name)).or_insert(0) += value;
        }
    }
    sums.into_iter().map(|((namespace, name), value)| (namespace, name, value)).collect()
}

/// Whether the record (`session_id`, `cxid`) was sent after a read still waiting, and
/// forgets it (with any older entry of the session, which will never be applied now). A
/// closed session's entries go with it.
fn wants_version_before(wanted: &mut HashMap<i64, Vec<i32>>, session_id: i64, cxid: i32, is_close: bool) -> bool {
    let Some(cxids) = wanted.get_mut(&session_id) else { return false };
    let position = cxids.iter().position(|&wanted_cxid| wanted_cxid == cxid);
    if let Some(position) = position {
        cxids.drain(..=position);
    }
    if cxids.is_empty() || is_close {
        wanted.remove(&session_id);
    }
    position.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::txn::{AclEntry, CreateTxn, Step, Txn, TxnOp};

    /// One committed batch: a create of `path` under the root of `tree`.
    fn create_batch(tree: &DataTree, zxid: i64, path: &str) -> rkyv::util::AlignedVec<16> {
        let op = TxnOp::Single(Step::Create(CreateTxn {
            path: path.into(),
            data: Some(b"v".to_vec()),
            acl: vec![AclEntry { perms: 31, scheme: "world".into(), id: "anyone".into() }],
            ephemeral_owner: 0,
            parent_cversion: tree.node("/").expect("the root").cversion + 1,
        }));
        let mut batch = rkyv::util::AlignedVec::new();
        crate::log::record::append(&mut batch, &Txn { session_id: 1, cxid: 1, zxid, time_ms: 0, op });
        batch
    }

    #[test]
    fn core_0_applies_in_place_what_no_other_version_holds_and_copies_what_one_does() {
        let mut core = CoreState::new(0, Arc::new(Shared::new(Config::default(), 1)));
        let first = core.tree.clone();
        let batch = create_batch(&core.tree, 1, "/a");
        // Another core (or a snapshot) still reads the version: the batch makes a new one.
        let applied = core.apply_records(&batch);
        assert!(!Arc::ptr_eq(&applied.version, &first) && first.node("/a").is_none());
        assert!(Arc::ptr_eq(&core.tree, &applied.version) && core.tree.node("/a").is_some());
        drop((first, applied));
        // Nothing else holds it now: the next batch changes it where it is.
        let sole = Arc::as_ptr(&core.tree);
        let batch = create_batch(&core.tree, 2, "/b");
        let applied = core.apply_records(&batch);
        assert_eq!(Arc::as_ptr(&applied.version), sole, "applied in place");
        assert!(Arc::ptr_eq(&core.tree, &applied.version));
        assert!(core.tree.node("/a").is_some() && core.tree.node("/b").is_some() && core.tree.last_zxid() == 2);
    }

    #[test]
    fn a_core_that_does_not_read_lets_go_of_its_version_and_takes_it_back_to_read() {
        let shared = Arc::new(Shared::new(Config::default(), 2));
        let (mut core0, mut core1) = (CoreState::new(0, shared.clone()), CoreState::new(1, shared.clone()));
        let recovered = Arc::new(DataTree::new());
        core0.recover(recovered.clone());
        core1.recover(recovered);
        // Core 1 served no read since it started: delivering a batch, it lets go of it.
        let applied = core0.apply_records(&create_batch(&core0.tree, 1, "/a"));
        core0.deliver(&applied, &[]);
        core1.deliver(&applied, &[]);
        assert!(!core1.holds_version && core1.applied_zxid() == 1);
        drop(applied);
        // Then core 0 applies the next batch where it is: no other core holds the version.
        let sole = Arc::as_ptr(&core0.tree);
        let applied = core0.apply_records(&create_batch(&core0.tree, 2, "/b"));
        assert_eq!(Arc::as_ptr(&applied.version), sole, "applied in place");
        // A read on core 1 now must wait for that batch's delivery: the published version
        // is newer than the one core 1 delivered, and its events have not reached core 1.
        assert!(!core1.hold_version());
        core0.deliver(&applied, &[]);
        core1.deliver(&applied, &[]);
        drop(applied);
        // Once delivered, the version is core 1's to take back, and it is the batch's.
        assert!(core1.hold_version());
        assert!(Arc::ptr_eq(&core1.tree, &core0.tree) && core1.tree.node("/b").is_some());
        // While core 1 holds it, core 0 copies what the next batch changes.
        let applied = core0.apply_records(&create_batch(&core0.tree, 3, "/c"));
        assert!(!Arc::ptr_eq(&applied.version, &core1.tree) && core1.tree.node("/c").is_none());
        // A core that read keeps its version through its next delivery.
        core1.read_since_delivery = true;
        core1.deliver(&applied, &[]);
        assert!(core1.holds_version && core1.tree.node("/c").is_some());
    }

    #[test]
    fn a_core_whose_last_connection_closes_lets_go_of_its_version_at_once() {
        // Such a core is sent no batch until a client comes (`server::send_committed`):
        // had it kept its version, core 0 would copy around it all that time.
        let shared = Arc::new(Shared::new(Config::default(), 2));
        let (mut core0, mut core1) = (CoreState::new(0, shared.clone()), CoreState::new(1, shared.clone()));
        let recovered = Arc::new(DataTree::new());
        core0.recover(recovered.clone());
        core1.recover(recovered);
        let (writer_wake, _) = glommio::channels::local_channel::new_bounded(1);
        let (reader_wake, _) = glommio::channels::local_channel::new_bounded(1);
        let peer: std::net::SocketAddr = "127.0.0.1:1".parse().unwrap();
        let connection = Connection {
            id: 1,
            peer,
            phase: Phase::Connected,
            session_id: 7,
            timeout_ms: 4000,
            read_only_byte: None,
            read_only_session: false,
            queue: std::collections::VecDeque::new(),
            queued_reads: 0,
            output: Vec::new(),
            output_cap_bytes: 1 << 20,
            writer_wake,
            reader_wake,
            received: 0,
            sent: 0,
            last_zxid: 0,
            identities: Arc::new(Vec::new()),
            auth_ids: crate::session::auth::AuthIds::from_added([]),
            certificate_subject: None,
            stats: Default::default(),
        };
        core1.connections.insert(1, Rc::new(RefCell::new(connection)));
        // Its session read just before it closed: the last delivery kept the version.
        core1.read_since_delivery = true;
        let applied = core0.apply_records(&create_batch(&core0.tree, 1, "/a"));
        core0.deliver(&applied, &[]);
        core1.deliver(&applied, &[]);
        drop(applied);
        assert!(core1.holds_version);
        core1.remove_connection(1);
        assert!(!core1.holds_version);
        let sole = Arc::as_ptr(&core0.tree);
        let applied = core0.apply_records(&create_batch(&core0.tree, 2, "/b"));
        assert_eq!(Arc::as_ptr(&applied.version), sole, "applied in place");
    }
}
