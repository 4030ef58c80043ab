//! State every core can read: configuration, the last committed zxid, and counters for
//! the four-letter words. Written with relaxed atomics: the numbers are for monitoring,
//! except `committed_zxid`, which only grows.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::histogram::{Histogram, COUNT_BOUNDS, DURATION_BOUNDS_US};
use crate::config::Config;

/// ZooKeeper's default trace mask (`ZooTrace`: client ping, request and session traces).
pub const TRACE_MASK_DEFAULT: i64 = 306;
/// `ZooTrace.CLIENT_REQUEST_TRACE_MASK`: requests are logged at TRACE level.
pub const CLIENT_REQUEST_TRACE_MASK: i64 = 1 << 1;
/// The tree's digest is logged at every zxid that is a multiple of this, and this many
/// entries are kept (ZooKeeper's `DataTree.DIGEST_LOG_INTERVAL` and `DIGEST_LOG_LIMIT`).
pub const DIGEST_LOG_INTERVAL: i64 = 128;
pub const DIGEST_LOG_LIMIT: usize = 1024;

/// One core's counters.
#[derive(Debug, Default)]
pub struct CoreCounters {
    pub connections: AtomicU64,
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub outstanding_requests: AtomicU64,
    /// Data watches only, as `wchs` counts them.
    pub watch_connections: AtomicU64,
    pub watch_count: AtomicU64,
    /// Every watch, as mntr's zk_watch_count counts them.
    pub watch_count_all: AtomicU64,
    pub node_count: AtomicU64,
    pub ephemeral_count: AtomicU64,
    pub data_size_bytes: AtomicU64,
    pub latency_total_us: AtomicU64,
    pub latency_count: AtomicU64,
    pub latency_max_us: AtomicU64,
    pub latency_min_us: AtomicU64,
    /// TLS handshakes under way on the client ports (`outstanding_tls_handshake`).
    pub tls_handshakes_in_progress: AtomicU64,
    /// TLS handshakes that failed or timed out (`unsuccessful_handshake`).
    pub tls_handshakes_failed: AtomicU64,
}

/// One core's data watches: by session (`wchc`) and by path (`wchp`).
#[derive(Debug, Clone, Default)]
pub struct WatchListing {
    pub by_session: Vec<(i64, Vec<String>)>,
    pub by_path: Vec<(String, Vec<i64>)>,
}

/// One core's watched paths, by table: what checkWatches needs of every core.
#[derive(Debug, Default)]
pub struct WatchedPaths {
    /// The cores' own copies of the paths, shared by reference count.
    pub data: HashSet<std::sync::Arc<str>>,
    pub child: HashSet<std::sync::Arc<str>>,
    /// Recursive watches in the data and the child table.
    pub data_recursive: usize,
    pub child_recursive: usize,
}

/// A connection as `cons` and `stat` list it.
#[derive(Debug, Clone)]
pub struct ConnectionSummary {
    pub peer: std::net::SocketAddr,
    pub session_id: i64,
    pub timeout_ms: i32,
    pub received: u64,
    pub sent: u64,
    pub queued: u64,
    pub last_zxid: i64,
    pub stats: super::connection_state::ConnectionStats,
}

/// The distributions the metrics endpoint exports.
#[derive(Debug)]
pub struct Histograms {
    /// One log append (the O_DSYNC write of a group commit), in microseconds.
    pub log_write_us: Histogram,
    /// Records per group commit.
    pub group_commit_records: Histogram,
    /// Writing one snapshot, in microseconds.
    pub snapshot_us: Histogram,
    /// Per core, request to reply, for reads and for writes (ZooKeeper's readlatency
    /// and updatelatency), in microseconds. Per core so that cores never write the same
    /// cache lines.
    pub read_latency_us: Vec<Histogram>,
    pub update_latency_us: Vec<Histogram>,
}

impl Histograms {
    fn new(cores: usize) -> Histograms {
        let per_core = || (0..cores).map(|_| Histogram::new(DURATION_BOUNDS_US)).collect();
        Histograms {
            log_write_us: Histogram::new(DURATION_BOUNDS_US),
            group_commit_records: Histogram::new(COUNT_BOUNDS),
            snapshot_us: Histogram::new(DURATION_BOUNDS_US),
            read_latency_us: per_core(),
            update_latency_us: per_core(),
        }
    }
}

/// A session as `dump` lists it. The expiry is known where the session table is kept
/// (standalone, or the leader); other members know the timeout only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionListing {
    pub session_id: i64,
    pub timeout_ms: i32,
    /// The tick-rounded deadline, in wall-clock milliseconds.
    pub expires_at_ms: Option<u64>,
}

/// The newest snapshot this server wrote or installed (`last_snapshot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastSnapshot {
    pub zxid: i64,
    pub written_at_s: u64,
    pub size_bytes: u64,
}

/// An ensemble member's state for the four-letter words.
#[derive(Debug, Clone, Default)]
pub struct EnsembleStatus {
    /// leader, follower, observer, or looking (not serving).
    pub mode: &'static str,
    /// The leader this member follows (itself when leading), while it serves.
    pub leader_id: Option<u64>,
    pub epoch: u32,
    /// Leader: every other member, whether it is in sync, and how many zxids its
    /// acknowledgements trail the leader's log by.
    pub followers: Vec<(u64, bool, u64)>,
    pub last_proposal_bytes: usize,
    pub commit_zxid: i64,
    /// The last zxid in this member's log, committed or not, and the last one durable.
    pub last_zxid: i64,
    pub durable_zxid: i64,
}

pub struct Shared {
    pub config: Config,
    pub cores: usize,
    pub started: Instant,
    pub committed_zxid: AtomicI64,
    pub session_count: AtomicU64,
    pub counters: Vec<CoreCounters>,
    /// Connections per client address, for maxClientCnxns.
    pub connections_by_address: Mutex<HashMap<IpAddr, u32>>,
    /// Per core, refreshed by the core: the connections it serves.
    pub connection_summaries: Vec<Mutex<Vec<ConnectionSummary>>>,
    /// Per core, refreshed by the core: `wchc` and `wchp` entries.
    pub watch_listing: Vec<Mutex<WatchListing>>,
    /// Set when a log write or fdatasync failed: no write is acknowledged after it.
    pub log_failed: std::sync::atomic::AtomicBool,
    pub log_failure: Mutex<String>,
    pub log_fsyncs: AtomicU64,
    /// A four-letter word asks every core for fresh numbers by bumping this; each core
    /// answers by publishing and recording the generation it served.
    pub listing_requested: AtomicU64,
    /// The last generation of `listing_requested` that asked for the watch listing too
    /// (`wchc`, `wchp`): only those pay for copying every watch.
    pub watch_listing_requested: AtomicU64,
    pub listing_published: Vec<AtomicU64>,
    /// The last generation of `listing_requested` that asked every core to reset its
    /// connections' statistics (`crst`).
    pub connection_stats_reset_requested: AtomicU64,
    /// Per core, kept current by the core as paths enter and leave its watch tables:
    /// checkWatches answers OK if a connection of any core watches the path (ZooKeeper
    /// keeps one table for the whole server, `WatchManager.containsWatcher`).
    pub watched_paths: Vec<Mutex<WatchedPaths>>,
    /// Per core: the last zxid it applied, published after the watch changes that
    /// applying made.
    pub applied_zxid: Vec<AtomicI64>,
    /// Per session of this member, the writes (by cxid, in order) that the session sent
    /// after a read still waiting behind an earlier write: core 0 keeps the version of
    /// the tree just before each, so those reads see neither it nor anything after it.
    pub reads_before_writes: Mutex<HashMap<i64, Vec<i32>>>,
    /// The newest version of the tree, for a core that let go of its own.
    pub published_version: super::published_version::PublishedVersion,
    /// Writes refused by a hard quota limit, by top namespace
    /// (`quota_exceeded_error_per_namespace`).
    pub quota_exceeded_errors: Mutex<BTreeMap<String, u64>>,
    /// Soft quota limits passed (logged only; a Ringkeeper counter, ZooKeeper has none).
    pub quota_soft_exceeded: AtomicU64,
    /// mntr's per-namespace quota gauges, refreshed by core 0 with the listings:
    /// (namespace, metric name, value).
    pub quota_gauges: Mutex<Vec<(String, &'static str, i64)>>,
    /// Repeats of one quota warning are folded, as ZooKeeper's RateLogger does.
    quota_warnings: Mutex<RateLogger>,
    /// Written by the ensemble driver (unused standalone).
    pub ensemble_status: Mutex<EnsembleStatus>,
    /// An ensemble member without a quorum, with readonlymode.enabled: it serves
    /// read-only sessions of its own.
    pub read_only: std::sync::atomic::AtomicBool,
    pub histograms: Histograms,
    /// `stmk` / `gtmk`: which request kinds are traced (logged at TRACE level).
    pub trace_mask: AtomicI64,
    /// Every session's ephemeral nodes, refreshed by core 0 with the full listing.
    pub ephemeral_listing: Mutex<Vec<(i64, Vec<String>)>>,
    /// The last full listing generation (`watch_listing_requested`) the sessions were
    /// listed for.
    sessions_listed: AtomicU64,
    /// Refreshed with the listings by whoever keeps the session table.
    pub session_listing: Mutex<Vec<SessionListing>>,
    /// (zxid, tree digest) every `DIGEST_LOG_INTERVAL` zxids, the newest last (`hash`).
    pub digest_log: Mutex<VecDeque<(i64, u64)>>,
    /// Set once the data directory is recovered, before the cores start.
    pub recovered: std::sync::atomic::AtomicBool,
    /// Cores taking client connections (core 0 listens and hands them to the others):
    /// the server is ready once all are (`/ready`).
    pub listening_cores: AtomicUsize,
    /// Per core, the client connections placed on it and not yet ended
    /// (`connection_placement`).
    pub placed_connections: Vec<AtomicU64>,
    pub last_snapshot: Mutex<Option<LastSnapshot>>,
}

/// ZooKeeper's `RateLogger` (100 ms): a message is logged when it first appears; while
/// it repeats, repeats are counted and logged at most once per interval, as
/// `[N times] <message>`, and once more when another message replaces it.
#[derive(Debug, Default)]
struct RateLogger {
    message: Option<String>,
    logged_at: Option<Instant>,
    repeats: u64,
}

impl RateLogger {
    const INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

    fn flush(&mut self) {
        if let (Some(message), true) = (&self.message, self.repeats > 0) {
            if self.repeats > 1 {
                tracing::warn!("[{} times] {message}", self.repeats);
            } else {
                tracing::warn!("{message}");
            }
        }
        self.message = None;
        self.repeats = 0;
    }

    fn log(&mut self, message: String, now: Instant) {
        if self.message.as_deref() == Some(message.as_str()) {
            self.repeats += 1;
            if self.logged_at.is_none_or(|at| now.duration_since(at) >= Self::INTERVAL) {
                self.flush();
                self.message = Some(message);
                self.logged_at = Some(now);
            }
            return;
        }
        self.flush();
        tracing::warn!("{message}");
        self.message = Some(message);
        self.logged_at = Some(now);
    }
}

impl Shared {
    pub fn new(config: Config, cores: usize) -> Shared {
        assert!(cores > 0);
        let counters: Vec<CoreCounters> = (0..cores).map(|_| CoreCounters::default()).collect();
        for counter in &counters {
            counter.latency_min_us.store(u64::MAX, Ordering::Relaxed);
        }
        Shared {
            config,
            cores,
            started: Instant::now(),
            committed_zxid: AtomicI64::new(0),
            session_count: AtomicU64::new(0),
            counters,
            connections_by_address: Mutex::new(HashMap::new()),
            connection_summaries: (0..cores).map(|_| Mutex::new(Vec::new())).collect(),
            watch_listing: (0..cores).map(|_| Mutex::new(WatchListing::default())).collect(),
            log_failed: std::sync::atomic::AtomicBool::new(false),
            log_failure: Mutex::new(String::new()),
            log_fsyncs: AtomicU64::new(0),
            listing_requested: AtomicU64::new(0),
            watch_listing_requested: AtomicU64::new(0),
            listing_published: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            connection_stats_reset_requested: AtomicU64::new(0),
            watched_paths: (0..cores).map(|_| Mutex::new(WatchedPaths::default())).collect(),
            applied_zxid: (0..cores).map(|_| AtomicI64::new(0)).collect(),
            reads_before_writes: Mutex::new(HashMap::new()),
            published_version: Default::default(),
            quota_exceeded_errors: Mutex::new(BTreeMap::new()),
            quota_soft_exceeded: AtomicU64::new(0),
            quota_gauges: Mutex::new(Vec::new()),
            quota_warnings: Mutex::new(RateLogger::default()),
            ensemble_status: Mutex::new(EnsembleStatus::default()),
            read_only: std::sync::atomic::AtomicBool::new(false),
            histograms: Histograms::new(cores),
            trace_mask: AtomicI64::new(TRACE_MASK_DEFAULT),
            sessions_listed: AtomicU64::new(0),
            session_listing: Mutex::new(Vec::new()),
            ephemeral_listing: Mutex::new(Vec::new()),
            digest_log: Mutex::new(VecDeque::new()),
            recovered: std::sync::atomic::AtomicBool::new(false),
            listening_cores: AtomicUsize::new(0),
            placed_connections: (0..cores).map(|_| AtomicU64::new(0)).collect(),
            last_snapshot: Mutex::new(None),
        }
    }

    /// Logs a quota limit a write passed, with ZooKeeper's text and rate limit, and counts it: a hard
    /// limit in its namespace's error counter (`ZooKeeperServer.updateQuotaExceededMetrics`),
    /// a soft one in Ringkeeper's own counter.
    pub fn note_quota_exceeded(&self, exceeded: &crate::tree::quota::QuotaExceeded) {
        self.quota_warnings.lock().expect("not poisoned").log(exceeded.to_string(), Instant::now());
        if !exceeded.hard {
            self.quota_soft_exceeded.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let Some(namespace) = &exceeded.namespace {
            *self.quota_exceeded_errors.lock().expect("not poisoned").entry(namespace.clone()).or_insert(0) += 1;
        }
    }

    /// standalone, or an ensemble member's leader, follower, observer, read-only or
    /// looking (also before its driver first says).
    pub fn server_mode(&self) -> &'static str {
        if self.config.is_ensemble() {
            match self.ensemble_status.lock().expect("not poisoned").mode {
                "" => "looking",
                mode => mode,
            }
        } else {
            "standalone"
        }
    }

    /// Whether this server serves sessions now (ZooKeeper's `ZooKeeperServer.isRunning`):
    /// recovered, every core listening, and not looking for a quorum. A read-only
    /// member serves.
    pub fn serving(&self) -> bool {
        self.recovered.load(Ordering::Acquire)
            && self.listening_cores.load(Ordering::Acquire) == self.cores
            && self.server_mode() != "looking"
    }

    /// For whoever keeps the session table: whether a full listing (`dump`, `wchc`,
    /// `wchp`) was asked for since it last listed the sessions; the answer counts as the
    /// listing being done.
    pub fn take_session_listing_request(&self) -> bool {
        let wanted = self.watch_listing_requested.load(Ordering::Acquire);
        self.sessions_listed.fetch_max(wanted, Ordering::AcqRel) < wanted
    }

    pub fn committed_zxid(&self) -> i64 {
        self.committed_zxid.load(Ordering::Acquire)
    }

    /// Whether every core that holds a connection has applied `zxid` (and published its
    /// watch changes). A core with none holds no watch, and is sent only the batches with
    /// a control for it (`server::send_committed`): it may stay behind for as long as no
    /// client comes, and a session placed on it comes through a control, which moves it
    /// to the newest version before the session can set a watch.
    pub fn applied_everywhere(&self, zxid: i64) -> bool {
        (0..self.cores)
            .all(|core| self.applied_zxid[core].load(Ordering::Acquire) >= zxid || !self.holds_connections(core))
    }

    /// Whether a client connection is registered on `core`.
    pub fn holds_connections(&self, core: usize) -> bool {
        self.counters[core].connections.load(Ordering::Acquire) > 0
    }

    /// Paths in any core's data table, each counted once however many cores watch it
    /// (`wchs`). Reads the published paths, which trail each core by at most one batch.
    pub fn distinct_data_watch_paths(&self) -> usize {
        let cores: Vec<_> = self.watched_paths.iter().map(|paths| paths.lock().expect("not poisoned")).collect();
        cores
            .iter()
            .enumerate()
            .map(|(core, paths)| {
                paths
                    .data
                    .iter()
                    .filter(|path| !cores[..core].iter().any(|earlier| earlier.data.contains(*path)))
                    .count()
            })
            .sum()
    }

    /// checkWatches: whether a connection of any core has a watch on `path` in a table
    /// the type names (`DataTree.containsWatcher`: for Any, the child table and then the
    /// data table, both asked). Err for a path ZooKeeper fails to walk (see
    /// `contains_watcher`).
    pub fn path_watched(
        &self,
        path: &str,
        watcher_type: crate::session::WatcherType,
    ) -> Result<bool, crate::proto::ErrorCode> {
        use crate::session::watches::contains_watcher;
        use crate::session::WatcherType;
        let cores: Vec<std::sync::MutexGuard<'_, WatchedPaths>> =
            self.watched_paths.iter().map(|paths| paths.lock().expect("not poisoned")).collect();
        let in_child_table = || {
            let recursive = cores.iter().any(|paths| paths.child_recursive > 0);
            contains_watcher(path, recursive, |path| cores.iter().any(|paths| paths.child.contains(path)))
        };
        let in_data_table = || {
            let recursive = cores.iter().any(|paths| paths.data_recursive > 0);
            contains_watcher(path, recursive, |path| cores.iter().any(|paths| paths.data.contains(path)))
        };
        match watcher_type {
            WatcherType::Children => in_child_table(),
            WatcherType::Data => in_data_table(),
            WatcherType::Any => {
                let child = in_child_table()?;
                let data = in_data_table()?;
                Ok(child || data)
            }
        }
    }

    pub fn sum(&self, field: impl Fn(&CoreCounters) -> &AtomicU64) -> u64 {
        self.counters.iter().map(|counter| field(counter).load(Ordering::Relaxed)).sum()
    }

    /// Takes a connection slot for `address`; false when maxClientCnxns is reached.
    pub fn admit(&self, address: IpAddr) -> bool {
        let limit = self.config.max_client_connections;
        let mut by_address = self.connections_by_address.lock().expect("not poisoned");
        let count = by_address.entry(address).or_insert(0);
        if limit != 0 && *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    pub fn release(&self, address: IpAddr) {
        let mut by_address = self.connections_by_address.lock().expect("not poisoned");
        if let Some(count) = by_address.get_mut(&address) {
            *count -= 1;
            if *count == 0 {
                by_address.remove(&address);
            }
        }
    }

    /// A snapshot this server wrote, loaded or installed, written at `written_at`.
    pub fn note_snapshot(&self, zxid: i64, size_bytes: u64, written_at: std::time::SystemTime) {
        let written_at_s =
            written_at.duration_since(std::time::UNIX_EPOCH).map_or(0, |since_epoch| since_epoch.as_secs());
        *self.last_snapshot.lock().expect("not poisoned") = Some(LastSnapshot { zxid, written_at_s, size_bytes });
    }

    /// Logs the tree's digest at `zxid` when ZooKeeper would (`DataTree.logDigest`).
    pub fn note_digest(&self, zxid: i64, digest: u64) {
        if !self.config.digest_enabled || zxid % DIGEST_LOG_INTERVAL != 0 {
            return;
        }
        let mut log = self.digest_log.lock().expect("not poisoned");
        if log.len() == DIGEST_LOG_LIMIT {
            log.pop_front();
        }
        log.push_back((zxid, digest));
    }

    /// Whether this server can serve clients, and if not, why: every core listens, and
    /// an ensemble member is in a quorum and synced with its leader (`/ready`).
    pub fn readiness(&self) -> Result<(), String> {
        if !self.recovered.load(Ordering::Acquire) {
            return Err("recovering the data directory".to_owned());
        }
        let listening = self.listening_cores.load(Ordering::Acquire);
        if listening < self.cores {
            return Err(format!("starting: {listening} of {} cores take clients", self.cores));
        }
        if self.log_failed.load(Ordering::Acquire) {
            return Err(format!("the transaction log failed: {}", self.log_failure.lock().expect("not poisoned")));
        }
        match self.server_mode() {
            "standalone" | "leader" | "follower" | "observer" => Ok(()),
            "read-only" => Err("no quorum: serving read-only sessions only".to_owned()),
            mode => Err(format!("no quorum: {mode}")),
        }
    }

    pub fn record_latency(&self, core: usize, latency_us: u64) {
        let counter = &self.counters[core];
        counter.latency_total_us.fetch_add(latency_us, Ordering::Relaxed);
        counter.latency_count.fetch_add(1, Ordering::Relaxed);
        counter.latency_max_us.fetch_max(latency_us, Ordering::Relaxed);
        counter.latency_min_us.fetch_min(latency_us, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_ready_once_recovered_listening_and_in_a_quorum() {
        let shared = Shared::new(Config::default(), 2);
        assert_eq!(shared.readiness(), Err("recovering the data directory".to_owned()));
        shared.recovered.store(true, Ordering::Release);
        shared.listening_cores.store(1, Ordering::Release);
        assert_eq!(shared.readiness(), Err("starting: 1 of 2 cores take clients".to_owned()));
        shared.listening_cores.store(2, Ordering::Release);
        assert_eq!(shared.readiness(), Ok(()));
        shared.log_failed.store(true, Ordering::Release);
        assert!(shared.readiness().unwrap_err().starts_with("the transaction log failed"));
    }

    #[test]
    fn an_ensemble_member_is_ready_only_while_it_leads_follows_or_observes() {
        let (config, _) = Config::parse("server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n").unwrap();
        let shared = Shared::new(config, 1);
        shared.recovered.store(true, Ordering::Release);
        shared.listening_cores.store(1, Ordering::Release);
        for (mode, ready) in [("looking", false), ("read-only", false), ("follower", true), ("leader", true)] {
            shared.ensemble_status.lock().unwrap().mode = mode;
            assert_eq!(shared.readiness().is_ok(), ready, "{mode}");
        }
    }

    #[test]
    fn every_core_has_applied_a_zxid_once_each_that_holds_a_connection_has() {
        let shared = Shared::new(Config::default(), 3);
        shared.applied_zxid[0].store(7, Ordering::Release);
        shared.applied_zxid[1].store(5, Ordering::Release);
        shared.counters[0].connections.store(1, Ordering::Release);
        // Core 1 holds no connection, and core 2 neither: behind as they are, no watch of
        // theirs can be missing.
        assert!(shared.applied_everywhere(7));
        shared.counters[1].connections.store(1, Ordering::Release);
        assert!(!shared.applied_everywhere(7), "core 1 serves a connection and is behind");
        shared.applied_zxid[1].store(7, Ordering::Release);
        assert!(shared.applied_everywhere(7));
    }

    #[test]
    fn digests_are_logged_every_128_zxids_and_the_oldest_leave_first() {
        let shared = Shared::new(Config::default(), 1);
        for zxid in 1..=(DIGEST_LOG_INTERVAL * (DIGEST_LOG_LIMIT as i64 + 2)) {
            shared.note_digest(zxid, zxid as u64);
        }
        let log = shared.digest_log.lock().unwrap();
        assert_eq!(log.len(), DIGEST_LOG_LIMIT);
        assert_eq!(log.front(), Some(&(DIGEST_LOG_INTERVAL * 3, (DIGEST_LOG_INTERVAL * 3) as u64)));
        assert!(log.iter().all(|(zxid, _)| zxid % DIGEST_LOG_INTERVAL == 0));
    }
}
