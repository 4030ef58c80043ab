//! Four-letter word answers, in ZooKeeper 3.8's text formats
//! (`server/command/*Command.java`), so existing monitoring scripts parse them.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::shared::Shared;
use super::statistics::{self, FULL_VERSION};
use crate::proto::four_letter::is_allowed;

/// Which listing a word needs refreshed first, as the AdminServer command of the same
/// name: None, the cores' figures (`Some(false)`), or also every watch and ephemeral
/// (`Some(true)`).
pub fn listing_needed(command: &str) -> Option<bool> {
    crate::admin::commands::lookup(command).and_then(|command| command.listing)
}

/// The text answer to a four-letter word; `argument` is `stmk`'s trace mask.
pub fn answer(command: &str, argument: Option<i64>, shared: &Shared, peer: std::net::SocketAddr) -> String {
    if !is_allowed(&shared.config.four_letter_whitelist, command) {
        return format!("{command} is not executed because it is not in the whitelist.\n");
    }
    let mode = shared.server_mode();
    if mode == "looking"
        && matches!(command, "srvr" | "stat" | "mntr" | "cons" | "wchs" | "wchc" | "wchp" | "dirs" | "dump" | "hash")
    {
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
        "dump" => dump(shared),
        "hash" => digests(shared),
        // ZooKeeper prints the mask with no newline.
        "gtmk" => shared.trace_mask.load(Ordering::Relaxed).to_string(),
        "stmk" => {
            let mask = argument.expect("stmk is read with its mask");
            shared.trace_mask.store(mask, Ordering::Relaxed);
            mask.to_string()
        }
        "crst" => {
            // The cores reset their connections when they publish the listings the
            // connection asked for before this answer.
            "Connection stats reset.\n".to_owned()
        }
        "srst" => {
            statistics::reset_server_stats(shared);
            "Server stats reset.\n".to_owned()
        }
        _ => format!("{command} is not supported by this server.\n"),
    }
}

/// `stat` lists the clients, the asking connection last (as ZooKeeper, with `[0]`).
fn server_stats(shared: &Shared, asking: Option<std::net::SocketAddr>) -> String {
    let mut text = format!("Zookeeper version: {FULL_VERSION}\n");
    if let Some(peer) = asking {
        text.push_str("Clients:\n");
        text.push_str(&connection_lines(shared, false));
        let _ = writeln!(text, " /{peer}[0](queued=0,recved=1,sent=0)");
        text.push('\n');
    }
    let latency = statistics::latency(shared);
    let _ = writeln!(
        text,
        "Latency min/avg/max: {}/{}/{}",
        latency.min_ms,
        statistics::java_double(latency.avg_ms),
        latency.max_ms
    );
    let _ = writeln!(text, "Received: {}", shared.sum(|c| &c.packets_received));
    let _ = writeln!(text, "Sent: {}", shared.sum(|c| &c.packets_sent));
    let _ = writeln!(text, "Connections: {}", shared.sum(|c| &c.connections));
    let _ = writeln!(text, "Outstanding: {}", shared.sum(|c| &c.outstanding_requests));
    let _ = writeln!(text, "Zxid: 0x{:x}", shared.committed_zxid());
    let _ = writeln!(text, "Mode: {}", shared.server_mode());
    let _ = writeln!(text, "Node count: {}", statistics::node_count(shared));
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
    let mut text = String::new();
    for metric in statistics::monitor(shared) {
        let _ = writeln!(text, "{}\t{}", metric.key, metric.value.to_text());
    }
    text
}

fn configuration(shared: &Shared) -> String {
    let mut text = String::new();
    for entry in statistics::configuration(shared) {
        let _ = writeln!(text, "{}={}", entry.key, entry.value.to_text());
    }
    if shared.config.is_ensemble() {
        // `QuorumZooKeeperServer.dumpConf` ends with the membership, in its own format.
        let _ = writeln!(text, "membership: {}", shared.config.membership_text());
    }
    text
}

fn environment(shared: &Shared) -> String {
    let mut text = String::from("Environment:\n");
    for (key, value) in statistics::environment(shared) {
        let _ = writeln!(text, "{key}={value}");
    }
    text
}

fn watch_summary(shared: &Shared) -> String {
    let (connections, paths, watches) = statistics::watch_summary(shared);
    format!("{connections} connections watching {paths} paths\nTotal watches:{watches}\n")
}

fn watch_by_connection(shared: &Shared) -> String {
    let mut text = String::new();
    for (session_id, paths) in statistics::watches_by_session(shared) {
        let _ = writeln!(text, "0x{session_id:x}");
        for path in paths {
            let _ = writeln!(text, "\t{path}");
        }
    }
    text.push('\n');
    text
}

fn watch_by_path(shared: &Shared) -> String {
    let mut text = String::new();
    for (path, sessions) in statistics::watches_by_path(shared) {
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
        statistics::directory_size(&shared.config.data_dir),
        statistics::directory_size(&shared.config.log_dir())
    )
}

/// `dump`, as ZooKeeper prints it: the session table's expiry sets
/// (`SessionTrackerImpl.dumpSessions`; an ensemble member that does not lead lists the
/// sessions it holds, as `LearnerSessionTracker` does), every session's ephemeral
/// nodes, then the connections.
fn dump(shared: &Shared) -> String {
    let sessions = statistics::sessions(shared);
    let mut text = String::from("SessionTracker dump:\n");
    if shared.server_mode() == "standalone" {
        let sets = statistics::sessions_by_expiry(&sessions);
        let _ = writeln!(text, "Session Sets ({})/({}):", sets.len(), sessions.len());
        for (expires_at_ms, ids) in &sets {
            let _ = writeln!(text, "{} expire at {}:", ids.len(), java_date(*expires_at_ms));
            for session_id in ids {
                let _ = writeln!(text, "\t0x{session_id:x}");
            }
        }
    } else {
        let _ = writeln!(text, "Global Sessions({}):", sessions.len());
        for session in &sessions {
            let _ = writeln!(text, "0x{:x}\t{}ms", session.session_id, session.timeout_ms);
        }
    }
    text.push_str("ephemeral nodes dump:\n");
    let ephemerals = statistics::ephemerals(shared);
    let _ = writeln!(text, "Sessions with Ephemerals ({}):", ephemerals.len());
    for (session_id, paths) in &ephemerals {
        let _ = writeln!(text, "0x{session_id:x}:");
        for path in paths {
            let _ = writeln!(text, "\t{path}");
        }
    }
    text.push_str("Connections dump:\n");
    let sets = connection_sets(shared);
    let count: usize = sets.values().map(Vec::len).sum();
    let _ = writeln!(text, "Connections Sets ({})/({count}):", sets.len());
    for (expires_at_ms, connections) in &sets {
        let _ = writeln!(text, "{} expire at {}:", connections.len(), java_date(*expires_at_ms));
        for (peer, session_id) in connections {
            let _ = writeln!(text, "\tip: /{peer} sessionId: 0x{session_id:x}");
        }
    }
    text
}

/// Connections by when they would expire without traffic: their last response (or
/// establishment) plus their session timeout, rounded up to the next tick, as
/// ZooKeeper's connection `ExpiryQueue` keeps them.
fn connection_sets(shared: &Shared) -> std::collections::BTreeMap<u64, Vec<(std::net::SocketAddr, i64)>> {
    let tick_ms = u64::from(shared.config.tick_time_ms);
    let mut sets: std::collections::BTreeMap<u64, Vec<(std::net::SocketAddr, i64)>> = Default::default();
    for summaries in &shared.connection_summaries {
        for summary in summaries.lock().expect("not poisoned").iter() {
            let active_ms = summary.stats.established_ms.max(summary.stats.last_response_ms).max(0) as u64;
            let expires_at_ms = ((active_ms + summary.timeout_ms.max(0) as u64) / tick_ms + 1) * tick_ms;
            sets.entry(expires_at_ms).or_default().push((summary.peer, summary.session_id));
        }
    }
    sets
}

/// `hash`: the logged digests, as `zxid-in-hex: digest`.
fn digests(shared: &Shared) -> String {
    let mut text = String::new();
    for (zxid, digest) in shared.digest_log.lock().expect("not poisoned").iter() {
        let _ = writeln!(text, "{zxid:x}: {}", *digest as i64);
    }
    text
}

/// Wall-clock milliseconds as Java's `Date.toString` prints them in UTC:
/// `Sat Dec 05 23:48:51 UTC 2026`.
pub fn java_date(epoch_ms: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let seconds = epoch_ms / 1000;
    let days = (seconds / 86_400) as i64;
    let (year, month, day) = crate::calendar::civil_from_days(days);
    let second_of_day = seconds % 86_400;
    format!(
        "{} {} {day:02} {:02}:{:02}:{:02} UTC {year}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_print_as_java_prints_them_in_utc() {
        assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
        // The instant of a `dump` taken from ZooKeeper 3.8 on this machine.
        assert_eq!(java_date(1_796_514_531_000), "Sat Dec 05 23:48:51 UTC 2026");
        assert_eq!(java_date(951_782_400_000), "Tue Feb 29 00:00:00 UTC 2000");
    }
}
