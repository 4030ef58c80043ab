//! The AdminServer's commands (`GET <commandURL>/<name>`), answered in JSON with ZooKeeper
//! 3.8's names and fields (`server/admin/Commands.java`), so scripts written against
//! ZooKeeper's AdminServer read ours. Every answer carries `command` (the command's
//! primary name) and `error` (null, or why it failed).

use std::sync::atomic::Ordering;

use serde_json::{json, Map, Value as Json};

use crate::server::shared::{Shared, DIGEST_LOG_INTERVAL};
use crate::server::statistics::{self, FULL_VERSION};
use crate::tree::digest::DIGEST_VERSION;

/// Each command's names: the primary one first, then its aliases (ZooKeeper 3.8's).
pub const COMMANDS: [&[&str]; 26] = [
    &["configuration", "conf", "config"],
    &["connection_stat_reset", "crst"],
    &["connections", "cons"],
    &["dirs"],
    &["dump"],
    &["environment", "env", "envi"],
    &["get_trace_mask", "gtmk"],
    &["hash"],
    &["initial_configuration", "icfg"],
    &["is_read_only", "isro"],
    &["last_snapshot", "lsnp"],
    &["leader", "lead"],
    &["monitor", "mntr"],
    &["observer_connection_stat_reset", "orst"],
    &["observers", "obsr"],
    &["ruok"],
    &["server_stats", "srvr"],
    &["set_trace_mask", "stmk"],
    &["stat_reset", "srst"],
    &["stats", "stat"],
    &["system_properties", "sysp"],
    &["voting_view"],
    &["watch_summary", "wchs"],
    &["watches", "wchc"],
    &["watches_by_path", "wchp"],
    &["zabstate"],
];

/// The primary name of the command `name` names.
pub fn primary_name(name: &str) -> Option<&'static str> {
    COMMANDS.iter().find(|names| names.contains(&name)).map(|names| names[0])
}

/// What a command needs refreshed before it is answered: the cores' listings, and
/// whether in full (every watch and ephemeral).
pub fn listing_needed(primary: &str) -> Option<bool> {
    match primary {
        "watches" | "watches_by_path" | "dump" => Some(true),
        "connections" | "stats" | "server_stats" | "monitor" | "watch_summary" | "connection_stat_reset" => Some(false),
        _ => None,
    }
}

/// Work a command does before the listings are refreshed (`crst` asks the cores to
/// reset what they then publish).
pub fn prepare(primary: &str, shared: &Shared) {
    if primary == "connection_stat_reset" {
        statistics::reset_connection_stats(shared);
    }
}

/// The JSON answer of the command `name` with the request's query parameters.
pub fn answer(name: &str, query: &dyn Fn(&str) -> Option<String>, shared: &Shared) -> Json {
    let Some(primary) = primary_name(name) else {
        return json!({ "command": name, "error": format!("Unknown command: {name}") });
    };
    let mut fields = match fields(primary, query, shared) {
        Ok(fields) => fields,
        Err(error) => Map::from_iter([("error".to_owned(), Json::from(error))]),
    };
    fields.insert("command".to_owned(), Json::from(primary));
    fields.entry("error").or_insert(Json::Null);
    Json::Object(fields)
}

fn object(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        _ => unreachable!("answers are objects"),
    }
}

fn fields(primary: &str, query: &dyn Fn(&str) -> Option<String>, shared: &Shared) -> Result<Map<String, Json>, String> {
    if shared.server_mode() == "looking" && needs_a_running_server(primary) {
        // ZooKeeper's answer while a member has no quorum (its ZooKeeperServer is null).
        return Err("This ZooKeeper instance is not currently serving requests".to_owned());
    }
    let config = &shared.config;
    Ok(match primary {
        "configuration" => configuration(shared),
        "connection_stat_reset" | "observer_connection_stat_reset" | "ruok" => Map::new(),
        "connections" => object(json!({ "connections": connections(shared, true), "secure_connections": [] })),
        "dirs" => object(json!({
            "datadir_size": statistics::directory_size(&config.data_dir),
            "logdir_size": statistics::directory_size(&config.log_dir()),
        })),
        "dump" => dump(shared),
        "environment" => statistics::environment(shared)
            .into_iter()
            .map(|(key, value)| (key.to_owned(), Json::from(value)))
            .collect(),
        "get_trace_mask" => object(json!({ "tracemask": shared.trace_mask.load(Ordering::Relaxed) })),
        "hash" => hash(shared),
        "initial_configuration" => object(json!({ "initial_configuration": config.initial_text })),
        "is_read_only" => object(json!({ "read_only": shared.read_only.load(Ordering::Acquire) })),
        "last_snapshot" => last_snapshot(shared),
        "leader" => leader(shared)?,
        "monitor" => statistics::monitor(shared)
            .into_iter()
            .map(|metric| (metric.key.strip_prefix("zk_").unwrap_or(&metric.key).to_owned(), metric.value.to_json()))
            .collect(),
        "observers" => observers(shared),
        "server_stats" => server_stats(shared),
        "set_trace_mask" => {
            let mask = query("traceMask").and_then(|text| text.parse::<i64>().ok());
            let mask = mask.ok_or("setTraceMask requires long traceMask argument")?;
            shared.trace_mask.store(mask, Ordering::Relaxed);
            object(json!({ "tracemask": mask }))
        }
        "stat_reset" => {
            statistics::reset_server_stats(shared);
            Map::new()
        }
        "stats" => {
            let mut fields = server_stats(shared);
            fields.insert("connections".to_owned(), Json::Array(connections(shared, false)));
            fields.insert("secure_connections".to_owned(), Json::Array(Vec::new()));
            fields
        }
        "system_properties" => system_properties(shared),
        "voting_view" => voting_view(shared),
        "watch_summary" => {
            let (connections, paths, watches) = statistics::watch_summary(shared);
            object(json!({ "num_connections": connections, "num_paths": paths, "num_total_watches": watches }))
        }
        "watches" => {
            let by_session: Map<String, Json> = statistics::watches_by_session(shared)
                .into_iter()
                .map(|(session_id, paths)| (session_id.to_string(), json!(paths)))
                .collect();
            object(json!({ "session_id_to_watched_paths": by_session }))
        }
        "watches_by_path" => {
            let by_path: Map<String, Json> =
                statistics::watches_by_path(shared).into_iter().map(|(path, ids)| (path, json!(ids))).collect();
            object(json!({ "path_to_session_ids": by_path }))
        }
        "zabstate" => zab_state(shared),
        _ => unreachable!("every listed command has an answer: {primary}"),
    })
}

/// The commands ZooKeeper answers only while its ZooKeeperServer runs.
fn needs_a_running_server(primary: &str) -> bool {
    matches!(
        primary,
        "connections"
            | "dirs"
            | "dump"
            | "hash"
            | "monitor"
            | "server_stats"
            | "stats"
            | "watch_summary"
            | "watches"
            | "watches_by_path"
            | "last_snapshot"
    )
}

/// `ZooKeeperServer.getConf` (and `QuorumPeer`'s additions on an ensemble member).
fn configuration(shared: &Shared) -> Map<String, Json> {
    let config = &shared.config;
    let mut fields = object(json!({
        "client_port": config.client_port,
        "data_dir": config.data_dir.join("version-2").display().to_string(),
        "data_log_dir": config.log_dir().display().to_string(),
        "tick_time": config.tick_time_ms,
        "max_client_cnxns": config.max_client_connections,
        "min_session_timeout": config.min_session_timeout_ms(),
        "max_session_timeout": config.max_session_timeout_ms(),
        "server_id": config.my_id,
        "client_port_listen_backlog": -1,
    }));
    if config.is_ensemble() {
        fields.insert("init_limit".to_owned(), json!(config.init_limit_ticks));
        fields.insert("sync_limit".to_owned(), json!(config.sync_limit_ticks));
        fields.insert("election_alg".to_owned(), json!(3));
        fields.insert("election_port".to_owned(), json!(-1));
        fields.insert("quorum_port".to_owned(), json!(-1));
        fields.insert("peer_type".to_owned(), json!(0));
        fields.insert("membership".to_owned(), json!(config.membership_text()));
    }
    fields
}

/// `ServerCnxn.getConnectionInfo`: with `brief`-less detail for `cons`, the counters
/// only for `stat`.
fn connections(shared: &Shared, detailed: bool) -> Vec<Json> {
    let mut listed = Vec::new();
    for summaries in &shared.connection_summaries {
        for summary in summaries.lock().expect("not poisoned").iter() {
            let mut info = object(json!({
                "remote_socket_address": summary.peer.to_string(),
                "interest_ops": 1,
                "outstanding_requests": summary.queued,
                "packets_received": summary.received,
                "packets_sent": summary.sent,
            }));
            if detailed {
                let stats = &summary.stats;
                let average_ms = stats.latency_total_ms.checked_div(stats.latency_count).unwrap_or(0);
                let detail = object(json!({
                    "session_id": summary.session_id,
                    "last_operation": "NA",
                    "established": stats.established_ms,
                    "session_timeout": summary.timeout_ms,
                    "last_cxid": stats.last_cxid,
                    "last_zxid": summary.last_zxid,
                    "last_response_time": stats.last_response_ms,
                    "last_latency": stats.latency_last_ms,
                    "min_latency": stats.latency_min_ms,
                    "avg_latency": average_ms,
                    "max_latency": stats.latency_max_ms,
                }));
                info.extend(detail);
            }
            listed.push(Json::Object(info));
        }
    }
    listed
}

/// `ZooKeeperServer.serverStats` as `srvr` and `stats` report it.
fn server_stats(shared: &Shared) -> Map<String, Json> {
    let config = &shared.config;
    let latency = statistics::latency(shared);
    let no_response = json!({ "last_buffer_size": -1, "min_buffer_size": -1, "max_buffer_size": -1 });
    object(json!({
        "version": FULL_VERSION,
        "read_only": shared.read_only.load(Ordering::Acquire),
        "server_stats": {
            "packets_sent": shared.sum(|c| &c.packets_sent),
            "packets_received": shared.sum(|c| &c.packets_received),
            "fsync_threshold_exceed_count": 0,
            "client_response_stats": no_response,
            "data_dir_size": statistics::directory_size(&config.data_dir),
            "log_dir_size": statistics::directory_size(&config.log_dir()),
            "provider_null": !config.metrics.enabled,
            "server_state": shared.server_mode(),
            "last_processed_zxid": shared.committed_zxid(),
            "outstanding_requests": shared.sum(|c| &c.outstanding_requests),
            "avg_latency": latency.avg_ms,
            "max_latency": latency.max_ms,
            "min_latency": latency.min_ms,
            "num_alive_client_connections": shared.sum(|c| &c.connections),
            "uptime": shared.started.elapsed().as_millis() as u64,
            "auth_failed_count": 0,
            "non_mtlsremote_conn_count": 0,
            "non_mtlslocal_conn_count": 0,
        },
        "client_response": no_response,
        "node_count": statistics::node_count(shared),
    }))
}

/// `dump`: sessions by deadline (wall-clock milliseconds; ZooKeeper keys them by its
/// monotonic clock, which no script can read) and ephemerals by session.
fn dump(shared: &Shared) -> Map<String, Json> {
    let sessions = statistics::sessions(shared);
    let by_expiry: Map<String, Json> = statistics::sessions_by_expiry(&sessions)
        .into_iter()
        .map(|(expires_at_ms, ids)| (expires_at_ms.to_string(), json!(ids)))
        .collect();
    let ephemerals: Map<String, Json> = statistics::ephemerals(shared)
        .into_iter()
        .map(|(session_id, paths)| (session_id.to_string(), json!(paths)))
        .collect();
    object(json!({ "expiry_time_to_session_ids": by_expiry, "session_id_to_ephemeral_paths": ephemerals }))
}

fn hash(shared: &Shared) -> Map<String, Json> {
    let digests: Vec<Json> = shared
        .digest_log
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|(zxid, digest)| json!({ "zxid": zxid, "digest": *digest as i64, "digest_version": DIGEST_VERSION }))
        .collect();
    debug_assert!(digests
        .iter()
        .all(|entry| entry["zxid"].as_i64().is_some_and(|zxid| zxid % DIGEST_LOG_INTERVAL == 0)));
    object(json!({ "digests": digests }))
}

/// `last_snapshot`: the zxid in hex without a prefix and the time in seconds, as
/// ZooKeeper's `SnapshotInfo`.
fn last_snapshot(shared: &Shared) -> Map<String, Json> {
    match *shared.last_snapshot.lock().expect("not poisoned") {
        Some(snapshot) => object(json!({ "zxid": format!("{:x}", snapshot.zxid), "timestamp": snapshot.written_at_s })),
        None => object(json!({ "zxid": "0", "timestamp": 0 })),
    }
}

fn leader(shared: &Shared) -> Result<Map<String, Json>, String> {
    if !shared.config.is_ensemble() {
        return Err("server is not initialized".to_owned());
    }
    let status = shared.ensemble_status.lock().expect("not poisoned").clone();
    let Some(leader_id) = status.leader_id else {
        return Err("leader is not elected".to_owned());
    };
    let leader_ip =
        shared.config.servers.iter().find(|server| server.id == leader_id).map(|server| server.host.clone());
    Ok(object(json!({
        "is_leader": leader_id == shared.config.my_id,
        "leader_id": leader_id,
        "leader_ip": leader_ip,
    })))
}

fn observers(shared: &Shared) -> Map<String, Json> {
    let status = shared.ensemble_status.lock().expect("not poisoned").clone();
    let observer_ids: Vec<u64> =
        shared.config.servers.iter().filter(|server| server.observer).map(|server| server.id).collect();
    let synced: Vec<Json> = status
        .followers
        .iter()
        .filter(|(id, synced, _)| *synced && observer_ids.contains(id))
        .map(|(id, _, _)| json!({ "sid": id }))
        .collect();
    object(json!({ "synced_observers": synced.len(), "observers": synced }))
}

/// ZooKeeper lists the JVM's system properties; Ringkeeper has none, so it lists the
/// process's environment as `envi` shows it.
fn system_properties(shared: &Shared) -> Map<String, Json> {
    statistics::environment(shared).into_iter().map(|(key, value)| (key.to_owned(), Json::from(value))).collect()
}

/// `voting_view`: every voting member's addresses, as `QuorumServer.toString` gives them.
fn voting_view(shared: &Shared) -> Map<String, Json> {
    let config = &shared.config;
    let view: Map<String, Json> = if config.is_ensemble() {
        config
            .servers
            .iter()
            .filter(|server| !server.observer)
            .map(|server| {
                let client = match (&server.client_host, server.client_port) {
                    (Some(host), Some(port)) => format!(";{host}:{port}"),
                    (None, Some(port)) => format!(";0.0.0.0:{port}"),
                    _ => String::new(),
                };
                let line =
                    format!("{}:{}:{}:participant{client}", server.host, server.quorum_port, server.election_port);
                (server.id.to_string(), Json::from(line))
            })
            .collect()
    } else {
        Map::new()
    };
    object(json!({ "current_config": view }))
}

/// `zabstate`: whether this member votes and the phase of ZooKeeper's atomic broadcast
/// it is in (broadcast while serving, election otherwise).
fn zab_state(shared: &Shared) -> Map<String, Json> {
    let config = &shared.config;
    if !config.is_ensemble() {
        return object(json!({ "voting": false, "zabstate": "" }));
    }
    let voting = statistics::voters(shared).contains(&config.my_id);
    let phase = match shared.server_mode() {
        "leader" | "follower" | "observer" => "broadcast",
        _ => "election",
    };
    object(json!({ "voting": voting, "zabstate": phase }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_names_its_primary_command() {
        assert_eq!(primary_name("mntr"), Some("monitor"));
        assert_eq!(primary_name("config"), Some("configuration"));
        assert_eq!(primary_name("monitor"), Some("monitor"));
        assert_eq!(primary_name("nosuch"), None);
        let mut names: Vec<&str> = COMMANDS.iter().flat_map(|names| names.iter().copied()).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "no name is used twice");
    }

    #[test]
    fn an_unknown_command_is_answered_with_an_error_not_a_failure() {
        let shared = Shared::new(crate::config::Config::default(), 1);
        let answer = answer("nosuch", &|_| None, &shared);
        assert_eq!(answer, json!({ "command": "nosuch", "error": "Unknown command: nosuch" }));
    }

    #[test]
    fn set_trace_mask_needs_its_argument_and_get_trace_mask_reads_it_back() {
        let shared = Shared::new(crate::config::Config::default(), 1);
        let missing = answer("stmk", &|_| None, &shared);
        assert_eq!(missing["error"], "setTraceMask requires long traceMask argument");
        let set = answer("stmk", &|name| (name == "traceMask").then(|| "7".to_owned()), &shared);
        assert_eq!((set["tracemask"].as_i64(), set["command"].as_str()), (Some(7), Some("set_trace_mask")));
        assert_eq!(answer("gtmk", &|_| None, &shared)["tracemask"], 7);
    }
}
