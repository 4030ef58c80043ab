//! The numbers and listings every operations surface reports (four-letter words, the
//! AdminServer's JSON, Prometheus), gathered once here so the three never disagree.
//! Names follow ZooKeeper 3.8's (`ServerMetrics`, `ZooKeeperServerBean`, `Commands`).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use super::histogram::{Histogram, HistogramSnapshot};
use super::shared::{SessionListing, Shared};

/// The version string clients and scripts see (ZooKeeper's `Version.getFullVersion`):
/// the ZooKeeper release whose protocol we speak, then ours, then when it was built.
/// Kazoo and others parse the leading `major.minor.patch`.
pub const FULL_VERSION: &str =
    concat!("3.8.4-ringkeeper-", env!("CARGO_PKG_VERSION"), ", built on ", env!("RINGKEEPER_BUILD_DATE"));

/// A reported value: mntr prints it, JSON keeps its type, Prometheus takes the numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Value {
    fn count(value: u64) -> Value {
        Value::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(value) => Some(*value as f64),
            Value::Float(value) => Some(*value),
            Value::Text(_) => None,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Int(value) => serde_json::Value::from(*value),
            Value::Float(value) => serde_json::Value::from(*value),
            Value::Text(text) => serde_json::Value::from(text.as_str()),
        }
    }

    /// As mntr prints it: a double the way Java does (at least one decimal).
    pub fn to_text(&self) -> String {
        match self {
            Value::Int(value) => value.to_string(),
            Value::Float(value) => java_double(*value),
            Value::Text(text) => text.clone(),
        }
    }
}

/// A double as Java prints it in these answers: shortest form, at least one decimal.
pub fn java_double(value: f64) -> String {
    let rounded = (value * 10_000.0).round() / 10_000.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.1}")
    } else {
        format!("{rounded}")
    }
}

/// Request latency over every core since the last reset, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latency {
    pub min_ms: u64,
    pub avg_ms: f64,
    pub max_ms: u64,
}

pub fn latency(shared: &Shared) -> Latency {
    let count = shared.sum(|c| &c.latency_count);
    let total_us = shared.sum(|c| &c.latency_total_us);
    if count == 0 {
        return Latency { min_ms: 0, avg_ms: 0.0, max_ms: 0 };
    }
    let max_us = shared.counters.iter().map(|c| c.latency_max_us.load(Ordering::Relaxed)).max().unwrap_or(0);
    let min_us = shared.counters.iter().map(|c| c.latency_min_us.load(Ordering::Relaxed)).min().unwrap_or(0);
    Latency { min_ms: min_us / 1000, avg_ms: total_us as f64 / count as f64 / 1000.0, max_ms: max_us / 1000 }
}

/// `srst`: the server's latency figures start again.
pub fn reset_server_stats(shared: &Shared) {
    for counter in &shared.counters {
        counter.latency_total_us.store(0, Ordering::Relaxed);
        counter.latency_count.store(0, Ordering::Relaxed);
        counter.latency_max_us.store(0, Ordering::Relaxed);
        counter.latency_min_us.store(u64::MAX, Ordering::Relaxed);
    }
}

/// `crst`: every connection's own statistics start again (the cores reset them when
/// they next publish their listings, which the command asks for).
pub fn reset_connection_stats(shared: &Shared) {
    let generation = shared.listing_requested.load(Ordering::Acquire) + 1;
    shared.connection_stats_reset_requested.fetch_max(generation, Ordering::AcqRel);
}

/// ZooKeeper's `DataTree.getNodeCount`: its node map holds the root twice, under "" and
/// "/", so a fresh server reports 5 nodes for our 4.
pub fn node_count(shared: &Shared) -> u64 {
    shared.counters[0].node_count.load(Ordering::Relaxed) + 1
}

pub fn open_file_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map(|dir| dir.count() as u64).unwrap_or(0)
}

pub fn open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if result == 0 {
        limit.rlim_cur
    } else {
        0
    }
}

pub fn directory_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => directory_size(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One mntr line: its key, and the name and labels Prometheus gives it (ZooKeeper's
/// Prometheus provider names a metric as mntr does without the `zk_` prefix, and puts
/// per-namespace values in a `key` label).
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub key: String,
    pub name: String,
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

impl Metric {
    fn new(key: &str, value: Value) -> Metric {
        let name = key.strip_prefix("zk_").unwrap_or(key).to_owned();
        Metric { key: key.to_owned(), name, labels: Vec::new(), value }
    }

    fn labelled(key: String, name: &str, label: (&'static str, String), value: Value) -> Metric {
        Metric { key, name: name.to_owned(), labels: vec![label], value }
    }
}

/// A distribution ZooKeeper reports as a summary: in mntr as avg, min, max, cnt and sum
/// (and p50 to p999 with `percentiles`, `AvgMinMaxPercentileCounter`), in Prometheus as
/// quantiles, count and sum. Values are the histogram's divided by `divisor`
/// (microseconds to ZooKeeper's milliseconds).
pub struct Summary {
    pub name: &'static str,
    pub snapshot: HistogramSnapshot,
    pub divisor: u64,
    pub percentiles: bool,
}

impl Summary {
    pub fn scaled(&self, value: u64) -> u64 {
        value / self.divisor
    }

    fn mntr_lines(&self) -> Vec<Metric> {
        let snapshot = &self.snapshot;
        let name = self.name;
        let count = |value: u64| Value::count(value);
        let average =
            if snapshot.count == 0 { 0.0 } else { snapshot.sum as f64 / snapshot.count as f64 / self.divisor as f64 };
        let mut lines = vec![
            Metric::new(&format!("zk_avg_{name}"), Value::Float(average)),
            Metric::new(&format!("zk_min_{name}"), count(self.scaled(snapshot.min))),
            Metric::new(&format!("zk_max_{name}"), count(self.scaled(snapshot.max))),
            Metric::new(&format!("zk_cnt_{name}"), count(snapshot.count)),
            Metric::new(&format!("zk_sum_{name}"), count(self.scaled(snapshot.sum))),
        ];
        if self.percentiles {
            for (label, quantile) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("p999", 0.999)] {
                lines.push(Metric::new(&format!("zk_{label}_{name}"), count(self.scaled(snapshot.quantile(quantile)))));
            }
        }
        lines
    }
}

/// ZooKeeper's summaries that Ringkeeper measures.
pub fn summaries(shared: &Shared) -> Vec<Summary> {
    let histograms = &shared.histograms;
    let summary = |name, snapshot, percentiles| Summary { name, snapshot, divisor: 1000, percentiles };
    let merged = |per_core: &[Histogram]| HistogramSnapshot::merged(per_core.iter().map(Histogram::snapshot));
    vec![
        summary("fsynctime", histograms.log_write_us.snapshot(), false),
        summary("snapshottime", histograms.snapshot_us.snapshot(), false),
        summary("readlatency", merged(&histograms.read_latency_us), true),
        summary("updatelatency", merged(&histograms.update_latency_us), true),
    ]
}

/// Every mntr line in mntr's order: ZooKeeper's (`zk_` prefixed; the AdminServer's
/// `monitor` drops the prefix), then Ringkeeper's own. Summaries are not included
/// (`summaries`).
pub fn gauges(shared: &Shared) -> Vec<Metric> {
    let latency = latency(shared);
    let counters = &shared.counters[0];
    let mut metrics: Vec<Metric> = [
        ("zk_version", Value::Text(FULL_VERSION.to_owned())),
        ("zk_server_state", Value::Text(shared.server_mode().to_owned())),
        ("zk_avg_latency", Value::Float(latency.avg_ms)),
        ("zk_max_latency", Value::count(latency.max_ms)),
        ("zk_min_latency", Value::count(latency.min_ms)),
        ("zk_packets_received", Value::count(shared.sum(|c| &c.packets_received))),
        ("zk_packets_sent", Value::count(shared.sum(|c| &c.packets_sent))),
        ("zk_num_alive_connections", Value::count(shared.sum(|c| &c.connections))),
        ("zk_outstanding_requests", Value::count(shared.sum(|c| &c.outstanding_requests))),
        ("zk_znode_count", Value::count(node_count(shared))),
        ("zk_watch_count", Value::count(shared.sum(|c| &c.watch_count_all))),
        ("zk_ephemerals_count", Value::count(counters.ephemeral_count.load(Ordering::Relaxed))),
        ("zk_approximate_data_size", Value::count(counters.data_size_bytes.load(Ordering::Relaxed))),
        ("zk_open_file_descriptor_count", Value::count(open_file_descriptors())),
        ("zk_max_file_descriptor_count", Value::count(open_file_limit())),
        ("zk_global_sessions", Value::count(shared.session_count.load(Ordering::Relaxed))),
        ("zk_local_sessions", Value::Int(0)),
        ("zk_uptime", Value::count(shared.started.elapsed().as_millis() as u64)),
        ("zk_digest_mismatches_count", Value::Int(0)),
        ("zk_outstanding_tls_handshake", Value::count(shared.sum(|c| &c.tls_handshakes_in_progress))),
        ("zk_unsuccessful_handshake", Value::count(shared.sum(|c| &c.tls_handshakes_failed))),
    ]
    .into_iter()
    .map(|(key, value)| Metric::new(key, value))
    .collect();
    metrics.extend(ensemble_metrics(shared));
    // Per-namespace quota metrics, named as ZooKeeper's metrics dump names a gauge or
    // counter set: `<namespace>_<metric>`.
    for (namespace, name, value) in shared.quota_gauges.lock().expect("not poisoned").iter() {
        let key = format!("zk_{namespace}_{name}");
        metrics.push(Metric::labelled(key, name, ("key", namespace.clone()), Value::Int(*value)));
    }
    for (namespace, count) in shared.quota_exceeded_errors.lock().expect("not poisoned").iter() {
        let name = "quota_exceeded_error_per_namespace";
        let key = format!("zk_{namespace}_{name}");
        metrics.push(Metric::labelled(key, name, ("key", namespace.clone()), Value::count(*count)));
    }
    let own = [
        ("ringkeeper_log_fsync_count", Value::count(shared.log_fsyncs.load(Ordering::Relaxed))),
        ("ringkeeper_log_failed", Value::Int(i64::from(shared.log_failed.load(Ordering::Acquire)))),
        (
            "ringkeeper_quota_soft_limit_exceeded_count",
            Value::count(shared.quota_soft_exceeded.load(Ordering::Relaxed)),
        ),
    ];
    metrics.extend(own.into_iter().map(|(key, value)| Metric::new(key, value)));
    metrics
}

/// Every mntr line: the gauges, then each summary's lines.
pub fn monitor(shared: &Shared) -> Vec<Metric> {
    let mut metrics = gauges(shared);
    for summary in summaries(shared) {
        metrics.extend(summary.mntr_lines());
    }
    metrics
}

/// An ensemble member's mntr lines: ZooKeeper's leader figures, plus the epoch, the
/// commit point and each follower's lag in zxids.
fn ensemble_metrics(shared: &Shared) -> Vec<Metric> {
    if !shared.config.is_ensemble() {
        return Vec::new();
    }
    let status = shared.ensemble_status.lock().expect("not poisoned").clone();
    let mut metrics = vec![
        Metric::new("ringkeeper_epoch", Value::Int(i64::from(status.epoch))),
        // Decimal, as every mntr value is a number to the tools that read it.
        Metric::new("ringkeeper_commit_zxid", Value::Int(status.commit_zxid)),
        Metric::new("ringkeeper_log_last_zxid", Value::Int(status.last_zxid)),
        Metric::new("ringkeeper_log_durable_zxid", Value::Int(status.durable_zxid)),
    ];
    if status.mode == "leader" {
        let voters = voters(shared);
        let count = |keep: &dyn Fn(&(u64, bool, u64)) -> bool| {
            Value::count(status.followers.iter().filter(|follower| keep(follower)).count() as u64)
        };
        // A leader's `ProposalStats` (ZooKeeper reports them on the leader only).
        metrics.push(Metric::new("zk_last_proposal_size", Value::count(status.last_proposal_bytes as u64)));
        metrics.push(Metric::new("zk_max_proposal_size", Value::Int(-1)));
        metrics.push(Metric::new("zk_min_proposal_size", Value::Int(-1)));
        metrics.push(Metric::new("zk_learners", Value::count(status.followers.len() as u64)));
        metrics.push(Metric::new("zk_followers", count(&|(id, _, _)| voters.contains(id))));
        metrics.push(Metric::new("zk_synced_followers", count(&|(id, synced, _)| *synced && voters.contains(id))));
        metrics.push(Metric::new(
            "zk_synced_non_voting_followers",
            count(&|(id, synced, _)| *synced && !voters.contains(id)),
        ));
        metrics.push(Metric::new("zk_pending_syncs", count(&|(_, synced, _)| !synced)));
        for (id, _, lag) in &status.followers {
            let key = format!("ringkeeper_follower_{id}_lag_zxids");
            metrics.push(Metric::labelled(
                key,
                "ringkeeper_follower_lag_zxids",
                ("follower", id.to_string()),
                Value::count(*lag),
            ));
        }
    }
    metrics
}

/// The voting members' ids.
pub fn voters(shared: &Shared) -> Vec<u64> {
    shared.config.servers.iter().filter(|server| !server.observer).map(|server| server.id).collect()
}

/// `envi`: (key, value) as ZooKeeper's `Environment.list` names them.
pub fn environment(shared: &Shared) -> Vec<(&'static str, String)> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cwd = std::env::current_dir().map(|dir| dir.display().to_string()).unwrap_or_default();
    vec![
        ("zookeeper.version", FULL_VERSION.to_owned()),
        ("host.name", host.trim().to_owned()),
        ("ringkeeper.cores", shared.cores.to_string()),
        ("os.name", "Linux".to_owned()),
        ("os.arch", std::env::consts::ARCH.to_owned()),
        ("os.version", std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned()),
        ("user.name", std::env::var("USER").unwrap_or_else(|_| user_name())),
        ("user.home", std::env::var("HOME").unwrap_or_default()),
        ("user.dir", cwd),
    ]
}

/// The name of the effective user, from /etc/passwd.
fn user_name() -> String {
    // SAFETY: geteuid has no failure mode.
    let uid = unsafe { libc::geteuid() };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                (fields.len() > 2 && fields[2] == uid.to_string()).then(|| fields[0].to_owned())
            })
        })
        .unwrap_or_else(|| uid.to_string())
}

/// One configuration entry: its name in `conf` (`ZooKeeperServer.dumpConf`), and in the
/// AdminServer's `configuration` (`ZooKeeperServerConf.toMap`) if it is there at all.
pub struct ConfEntry {
    pub key: &'static str,
    pub json_key: Option<&'static str>,
    pub value: Value,
}

/// The configuration in `conf`'s order; an ensemble member's adds what
/// `QuorumZooKeeperServer.dumpConf` adds, which the AdminServer does not show.
pub fn configuration(shared: &Shared) -> Vec<ConfEntry> {
    let config = &shared.config;
    let entry = |key, json_key, value| ConfEntry { key, json_key, value };
    let mut entries = vec![
        entry("clientPort", Some("client_port"), Value::Int(i64::from(config.client_port))),
        entry("secureClientPort", None, Value::Int(-1)),
        entry("dataDir", Some("data_dir"), Value::Text(config.data_dir.join("version-2").display().to_string())),
        entry("dataDirSize", None, Value::count(directory_size(&config.data_dir))),
        entry("dataLogDir", Some("data_log_dir"), Value::Text(config.log_dir().display().to_string())),
        entry("dataLogSize", None, Value::count(directory_size(&config.log_dir()))),
        entry("tickTime", Some("tick_time"), Value::Int(i64::from(config.tick_time_ms))),
        entry("maxClientCnxns", Some("max_client_cnxns"), Value::Int(i64::from(config.max_client_connections))),
        entry("minSessionTimeout", Some("min_session_timeout"), Value::Int(i64::from(config.min_session_timeout_ms()))),
        entry("maxSessionTimeout", Some("max_session_timeout"), Value::Int(i64::from(config.max_session_timeout_ms()))),
        entry("clientPortListenBacklog", Some("client_port_listen_backlog"), Value::Int(-1)),
        entry("serverId", Some("server_id"), Value::count(config.my_id)),
    ];
    if config.is_ensemble() {
        entries.push(entry("initLimit", None, Value::Int(i64::from(config.init_limit_ticks))));
        entries.push(entry("syncLimit", None, Value::Int(i64::from(config.sync_limit_ticks))));
        entries.push(entry("electionAlg", None, Value::Int(3)));
        entries.push(entry("electionPort", None, Value::Int(-1)));
        entries.push(entry("quorumPort", None, Value::Int(-1)));
        entries.push(entry("peerType", None, Value::Int(0)));
    }
    entries
}

/// `dump`'s sessions: the session table's expiry sets (standalone or leader), keyed by
/// the tick-rounded deadline in wall-clock milliseconds; a follower or observer lists
/// the sessions it holds, with their timeouts and no deadline.
pub fn sessions(shared: &Shared) -> Vec<SessionListing> {
    let listing = shared.session_listing.lock().expect("not poisoned").clone();
    if !listing.is_empty() || shared.server_mode() == "standalone" || shared.server_mode() == "leader" {
        return listing;
    }
    let mut held: BTreeMap<i64, i32> = BTreeMap::new();
    for summaries in &shared.connection_summaries {
        for summary in summaries.lock().expect("not poisoned").iter().filter(|summary| summary.session_id != 0) {
            held.insert(summary.session_id, summary.timeout_ms);
        }
    }
    held.into_iter()
        .map(|(session_id, timeout_ms)| SessionListing { session_id, timeout_ms, expires_at_ms: None })
        .collect()
}

/// Sessions by deadline, as ZooKeeper's `ExpiryQueue` groups them.
pub fn sessions_by_expiry(sessions: &[SessionListing]) -> BTreeMap<u64, Vec<i64>> {
    let mut sets: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
    for session in sessions {
        if let Some(expires_at_ms) = session.expires_at_ms {
            sets.entry(expires_at_ms).or_default().push(session.session_id);
        }
    }
    for ids in sets.values_mut() {
        ids.sort_unstable();
    }
    sets
}

/// Every session's ephemeral nodes, by session id.
pub fn ephemerals(shared: &Shared) -> BTreeMap<i64, Vec<String>> {
    shared.ephemeral_listing.lock().expect("not poisoned").iter().cloned().collect()
}

/// The data watches by session (`wchc`), over every core. A connection whose watches all
/// fired stays listed with none until it closes, as in ZooKeeper (`WatchManager.watch2Paths`).
pub fn watches_by_session(shared: &Shared) -> BTreeMap<i64, Vec<String>> {
    let mut by_session: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for listing in &shared.watch_listing {
        for (session_id, paths) in &listing.lock().expect("not poisoned").by_session {
            by_session.entry(*session_id).or_default().extend(paths.iter().cloned());
        }
    }
    by_session
}

/// The data watches by path (`wchp`), over every core.
pub fn watches_by_path(shared: &Shared) -> BTreeMap<String, Vec<i64>> {
    let mut by_path: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for listing in &shared.watch_listing {
        for (path, sessions) in &listing.lock().expect("not poisoned").by_path {
            by_path.entry(path.clone()).or_default().extend(sessions);
        }
    }
    by_path
}

/// `wchs`: (connections watching, distinct paths, watches), data watches only.
pub fn watch_summary(shared: &Shared) -> (u64, u64, u64) {
    (shared.sum(|c| &c.watch_connections), shared.distinct_data_watch_paths() as u64, shared.sum(|c| &c.watch_count))
}
