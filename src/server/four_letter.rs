//! Four-letter word answers, in ZooKeeper 3.8's text formats
//! (`server/command/*Command.java`), so existing monitoring scripts parse them.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::shared::Shared;
use crate::proto::four_letter::is_allowed;

/// The version string clients and scripts see: the ZooKeeper release whose protocol we
/// speak, then ours. Kazoo and others parse the leading `major.minor.patch`.
pub const VERSION: &str = concat!("3.8.4-ringkeeper-", env!("CARGO_PKG_VERSION"));
const BUILT_ON: &str = "built on 1970-01-01 00:00 UTC";

/// The text answer to a four-letter word.
pub fn answer(command: &str, shared: &Shared, peer: std::net::SocketAddr) -> String {
    if !is_allowed(&shared.config.four_letter_whitelist, command) {
        return format!("{command} is not executed because it is not in the whitelist.\n");
    }
    let mode = shared.server_mode();
    if mode == "looking" && matches!(command, "srvr" | "stat" | "mntr" | "cons" | "wchs" | "wchc" | "wchp" | "dirs") {
        // ZooKeeper's answer while a member has no quorum (ZooKeeperServer not running).
        return "This ZooKeeper instance is not currently serving requests\n".to_owned();
    }
    match command {
        "ruok" => "imok".to_owned(),
        "isro" => if shared.read_only.load(Ordering::Acquire) { "ro" } else { "rw" }.to_owned(),
        "srvr" => server_stats(shared, None),
        "stat" => server_stats(shared, Some(peer)),
        "mntr" => monitor(shared),
        "conf" => configuration(shared),
        "cons" => connections(shared, peer),
        "envi" => environment(shared),
        "wchs" => watch_summary(shared),
        "wchc" => watch_by_connection(shared),
        "wchp" => watch_by_path(shared),
        "dirs" => directories(shared),
        "crst" => {
            reset_latency(shared);
            "Connection stats reset.\n".to_owned()
        }
        "srst" => {
            reset_latency(shared);
            "Server stats reset.\n".to_owned()
        }
        _ => format!("{command} is not supported by this server.\n"),
    }
}

fn reset_latency(shared: &Shared) {
    for counter in &shared.counters {
        counter.latency_total_us.store(0, Ordering::Relaxed);
        counter.latency_count.store(0, Ordering::Relaxed);
        counter.latency_max_us.store(0, Ordering::Relaxed);
        counter.latency_min_us.store(u64::MAX, Ordering::Relaxed);
    }
}

/// (min, avg, max) request latency in milliseconds, as ZooKeeper reports it.
fn latency_ms(shared: &Shared) -> (u64, f64, u64) {
    let count = shared.sum(|c| &c.latency_count);
    let total_us = shared.sum(|c| &c.latency_total_us);
    let max_us = shared.counters.iter().map(|c| c.latency_max_us.load(Ordering::Relaxed)).max().unwrap_or(0);
    let min_us = shared.counters.iter().map(|c| c.latency_min_us.load(Ordering::Relaxed)).min().unwrap_or(0);
    if count == 0 {
        return (0, 0.0, 0);
    }
    (min_us / 1000, total_us as f64 / count as f64 / 1000.0, max_us / 1000)
}

/// A double as Java prints it in these answers: shortest form, at least one decimal.
fn java_double(value: f64) -> String {
    let rounded = (value * 10_000.0).round() / 10_000.0;
    if rounded.fract() == 0.0 {
        format!("{rounded:.1}")
    } else {
        format!("{rounded}")
    }
}

/// ZooKeeper's `DataTree.getNodeCount`: its node map holds the root twice, under "" and
/// "/", so a fresh server reports 5 nodes for our 4.
fn node_count(shared: &Shared) -> u64 {
    shared.counters[0].node_count.load(Ordering::Relaxed) + 1
}

/// `stat` lists the clients, the asking connection last (as ZooKeeper, with `[0]`).
fn server_stats(shared: &Shared, asking: Option<std::net::SocketAddr>) -> String {
    let mut text = format!("Zookeeper version: {VERSION}, {BUILT_ON}\n");
    if let Some(peer) = asking {
        text.push_str("Clients:\n");
        text.push_str(&connection_lines(shared, false));
        let _ = writeln!(text, " /{peer}[0](queued=0,recved=1,sent=0)");
        text.push('\n');
    }
    let (min, avg, max) = latency_ms(shared);
    let _ = writeln!(text, "Latency min/avg/max: {min}/{}/{max}", java_double(avg));
    let _ = writeln!(text, "Received: {}", shared.sum(|c| &c.packets_received));
    let _ = writeln!(text, "Sent: {}", shared.sum(|c| &c.packets_sent));
    let _ = writeln!(text, "Connections: {}", shared.sum(|c| &c.connections));
    let _ = writeln!(text, "Outstanding: {}", shared.sum(|c| &c.outstanding_requests));
    let _ = writeln!(text, "Zxid: 0x{:x}", shared.committed_zxid());
    let _ = writeln!(text, "Mode: {}", shared.server_mode());
    let _ = writeln!(text, "Node count: {}", node_count(shared));
    text
}

fn connection_lines(shared: &Shared, detailed: bool) -> String {
    let mut text = String::new();
    for summaries in &shared.connection_summaries {
        for summary in summaries.lock().expect("not poisoned").iter() {
            let _ = write!(
                text,
                " /{}[1](queued={},recved={},sent={}",
                summary.peer, summary.queued, summary.received, summary.sent
            );
            if detailed {
                let stats = &summary.stats;
                let average_ms = stats.latency_total_ms.checked_div(stats.latency_count).unwrap_or(0);
                let _ = write!(
                    text,
                    ",sid=0x{:x},lop=NA,est={},to={},lcxid=0x{:x},lzxid=0x{:x},lresp={},llat={},minlat={},avglat={},maxlat={}",
                    summary.session_id,
                    stats.established_ms,
                    summary.timeout_ms,
                    stats.last_cxid,
                    summary.last_zxid,
                    stats.last_response_ms,
                    stats.latency_last_ms,
                    stats.latency_min_ms,
                    average_ms,
                    stats.latency_max_ms
                );
            }
            text.push_str(")\n");
        }
    }
    text
}

fn connections(shared: &Shared, peer: std::net::SocketAddr) -> String {
    let mut text = connection_lines(shared, true);
    let _ = writeln!(text, " /{peer}[0](queued=0,recved=1,sent=0)");
    text.push('\n');
    text
}

fn monitor(shared: &Shared) -> String {
    let (min, avg, max) = latency_ms(shared);
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|dir| dir.count()).unwrap_or(0);
    let max_fds = open_file_limit();
    let counters = &shared.counters[0];
    let lines: Vec<(&str, String)> = vec![
        ("zk_version", format!("{VERSION}, {BUILT_ON}")),
        ("zk_server_state", shared.server_mode().into()),
        ("zk_avg_latency", java_double(avg)),
        ("zk_max_latency", max.to_string()),
        ("zk_min_latency", min.to_string()),
        ("zk_packets_received", shared.sum(|c| &c.packets_received).to_string()),
        ("zk_packets_sent", shared.sum(|c| &c.packets_sent).to_string()),
        ("zk_num_alive_connections", shared.sum(|c| &c.connections).to_string()),
        ("zk_outstanding_requests", shared.sum(|c| &c.outstanding_requests).to_string()),
        ("zk_znode_count", node_count(shared).to_string()),
        ("zk_watch_count", shared.sum(|c| &c.watch_count_all).to_string()),
        ("zk_ephemerals_count", counters.ephemeral_count.load(Ordering::Relaxed).to_string()),
        ("zk_approximate_data_size", counters.data_size_bytes.load(Ordering::Relaxed).to_string()),
        ("zk_open_file_descriptor_count", open_fds.to_string()),
        ("zk_max_file_descriptor_count", max_fds.to_string()),
        ("zk_global_sessions", shared.session_count.load(Ordering::Relaxed).to_string()),
        ("zk_local_sessions", "0".into()),
        ("zk_uptime", shared.started.elapsed().as_millis().to_string()),
        ("zk_last_proposal_size", last_proposal_size(shared)),
        ("ringkeeper_log_fsync_count", shared.log_fsyncs.load(Ordering::Relaxed).to_string()),
        ("ringkeeper_log_failed", u8::from(shared.log_failed.load(Ordering::Acquire)).to_string()),
        ("zk_max_proposal_size", "-1".into()),
        ("zk_min_proposal_size", "-1".into()),
    ];
    let mut text = String::new();
    for (key, value) in lines.into_iter().map(|(key, value)| (key.to_owned(), value)).chain(ensemble_lines(shared)) {
        let _ = writeln!(text, "{key}\t{value}");
    }
    // Per-namespace quota metrics, named as ZooKeeper's metrics dump names a gauge or
    // counter set: `<namespace>_<metric>`.
    for (namespace, name, value) in shared.quota_gauges.lock().expect("not poisoned").iter() {
        let _ = writeln!(text, "zk_{namespace}_{name}\t{value}");
    }
    for (namespace, count) in shared.quota_exceeded_errors.lock().expect("not poisoned").iter() {
        let _ = writeln!(text, "zk_{namespace}_quota_exceeded_error_per_namespace\t{count}");
    }
    let soft = shared.quota_soft_exceeded.load(Ordering::Relaxed);
    let _ = writeln!(text, "ringkeeper_quota_soft_limit_exceeded_count\t{soft}");
    text
}

fn open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    let result = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if result == 0 {
        limit.rlim_cur
    } else {
        0
    }
}

fn configuration(shared: &Shared) -> String {
    let config = &shared.config;
    let mut text = String::new();
    let _ = writeln!(text, "clientPort={}", config.client_port);
    let _ = writeln!(text, "secureClientPort=-1");
    let _ = writeln!(text, "dataDir={}", config.data_dir.join("version-2").display());
    let _ = writeln!(text, "dataDirSize={}", directory_size(&config.data_dir));
    let _ = writeln!(text, "dataLogDir={}", config.log_dir().display());
    let _ = writeln!(text, "dataLogSize={}", directory_size(&config.log_dir()));
    let _ = writeln!(text, "tickTime={}", config.tick_time_ms);
    let _ = writeln!(text, "maxClientCnxns={}", config.max_client_connections);
    let _ = writeln!(text, "minSessionTimeout={}", config.min_session_timeout_ms());
    let _ = writeln!(text, "maxSessionTimeout={}", config.max_session_timeout_ms());
    let _ = writeln!(text, "clientPortListenBacklog=-1");
    let _ = writeln!(text, "serverId=0");
    text
}

fn environment(shared: &Shared) -> String {
    let mut text = String::from("Environment:\n");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cwd = std::env::current_dir().map(|dir| dir.display().to_string()).unwrap_or_default();
    let entries = [
        ("zookeeper.version", format!("{VERSION}, {BUILT_ON}")),
        ("host.name", host.trim().to_owned()),
        ("ringkeeper.cores", shared.cores.to_string()),
        ("os.name", "Linux".to_owned()),
        ("os.arch", std::env::consts::ARCH.to_owned()),
        ("os.version", std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned()),
        ("user.name", std::env::var("USER").unwrap_or_else(|_| user_name())),
        ("user.home", std::env::var("HOME").unwrap_or_default()),
        ("user.dir", cwd),
    ];
    for (key, value) in entries {
        let _ = writeln!(text, "{key}={value}");
    }
    text
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

fn watch_summary(shared: &Shared) -> String {
    format!(
        "{} connections watching {} paths\nTotal watches:{}\n",
        shared.sum(|c| &c.watch_connections),
        shared.distinct_data_watch_paths(),
        shared.sum(|c| &c.watch_count)
    )
}

fn watch_by_connection(shared: &Shared) -> String {
    let mut text = String::new();
    for listing in &shared.watch_listing {
        for (session_id, paths) in &listing.lock().expect("not poisoned").by_session {
            let _ = writeln!(text, "0x{session_id:x}");
            for path in paths {
                let _ = writeln!(text, "\t{path}");
            }
        }
    }
    text.push('\n');
    text
}

fn watch_by_path(shared: &Shared) -> String {
    let mut by_path: std::collections::BTreeMap<String, Vec<i64>> = std::collections::BTreeMap::new();
    for listing in &shared.watch_listing {
        for (path, sessions) in &listing.lock().expect("not poisoned").by_path {
            by_path.entry(path.clone()).or_default().extend(sessions);
        }
    }
    let mut text = String::new();
    for (path, sessions) in by_path {
        let _ = writeln!(text, "{path}");
        for session_id in sessions {
            let _ = writeln!(text, "\t0x{session_id:x}");
        }
    }
    text.push('\n');
    text
}

fn directories(shared: &Shared) -> String {
    format!(
        "datadir_size: {}\nlogdir_size: {}\n",
        directory_size(&shared.config.data_dir),
        directory_size(&shared.config.log_dir())
    )
}

fn directory_size(path: &std::path::Path) -> u64 {
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

fn last_proposal_size(shared: &Shared) -> String {
    let status = shared.ensemble_status.lock().expect("not poisoned");
    if status.mode == "leader" {
        status.last_proposal_bytes.to_string()
    } else {
        "-1".into()
    }
}

/// An ensemble member's mntr lines: ZooKeeper's leader figures, plus the epoch, the
/// commit point and each follower's lag in zxids.
fn ensemble_lines(shared: &Shared) -> Vec<(String, String)> {
    if !shared.config.is_ensemble() {
        return Vec::new();
    }
    let status = shared.ensemble_status.lock().expect("not poisoned").clone();
    let mut lines = vec![
        ("ringkeeper_epoch".to_owned(), status.epoch.to_string()),
        // Decimal, as every mntr value is a number to the tools that read it.
        ("ringkeeper_commit_zxid".to_owned(), status.commit_zxid.to_string()),
        ("ringkeeper_log_last_zxid".to_owned(), status.last_zxid.to_string()),
        ("ringkeeper_log_durable_zxid".to_owned(), status.durable_zxid.to_string()),
    ];
    if status.mode == "leader" {
        let voters: Vec<u64> =
            shared.config.servers.iter().filter(|server| !server.observer).map(|server| server.id).collect();
        let synced = status.followers.iter().filter(|(id, synced, _)| *synced && voters.contains(id)).count();
        let followers = status.followers.iter().filter(|(id, _, _)| voters.contains(id)).count();
        lines.push(("zk_learners".to_owned(), status.followers.len().to_string()));
        lines.push(("zk_followers".to_owned(), followers.to_string()));
        lines.push(("zk_synced_followers".to_owned(), synced.to_string()));
        lines.push((
            "zk_synced_non_voting_followers".to_owned(),
            status.followers.iter().filter(|(id, synced, _)| *synced && !voters.contains(id)).count().to_string(),
        ));
        lines.push((
            "zk_pending_syncs".to_owned(),
            status.followers.iter().filter(|(_, synced, _)| !synced).count().to_string(),
        ));
        for (id, _, lag) in &status.followers {
            lines.push((format!("ringkeeper_follower_{id}_lag_zxids"), lag.to_string()));
        }
    }
    lines
}
