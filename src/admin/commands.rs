//! The AdminServer's commands (`GET <commandURL>/<name>`), answered in JSON with ZooKeeper
//! 3.8's names and fields (`server/admin/Commands.java`), so scripts written against
//! ZooKeeper's AdminServer read ours. Every answer carries `command` (the command's
//! primary name) and `error` (null, or why it failed).

use std::sync::atomic::Ordering;

use serde_json::{json, Map, Value as Json};

use crate::server::shared::{Shared, DIGEST_LOG_INTERVAL};
use crate::server::statistics::{self, FULL_VERSION};
use crate::tree::digest::DIGEST_VERSION;

/// A command: its names (the primary one first, then ZooKeeper 3.8's aliases), whether
/// it needs a server that serves (ZooKeeper's `CommandBase.serverRequired`), and which
/// listing it needs refreshed first (`Some(true)`: the full one, every watch and
/// ephemeral).
pub struct Command {
    pub names: &'static [&'static str],
    pub server_required: bool,
    pub listing: Option<bool>,
}

const fn command(names: &'static [&'static str], server_required: bool, listing: Option<bool>) -> Command {
    Command { names, server_required, listing }
}

pub const COMMANDS: [Command; 26] = [
    command(&["configuration", "conf", "config"], true, None),
    command(&["connection_stat_reset", "crst"], true, Some(false)),
    command(&["connections", "cons"], true, Some(false)),
    command(&["dirs"], true, None),
    command(&["dump"], true, Some(true)),
    command(&["environment", "env", "envi"], false, None),
    command(&["get_trace_mask", "gtmk"], false, None),
    command(&["hash"], true, None),
    command(&["initial_configuration", "icfg"], true, None),
    command(&["is_read_only", "isro"], true, None),
    command(&["last_snapshot", "lsnp"], true, None),
    command(&["leader", "lead"], true, None),
    command(&["monitor", "mntr"], false, Some(false)),
    command(&["observer_connection_stat_reset", "orst"], true, None),
    command(&["observers", "obsr"], true, None),
    command(&["ruok"], true, None),
    command(&["server_stats", "srvr"], true, Some(false)),
    command(&["set_trace_mask", "stmk"], false, None),
    command(&["stat_reset", "srst"], true, None),
    command(&["stats", "stat"], true, Some(false)),
    command(&["system_properties", "sysp"], false, None),
    command(&["voting_view"], true, None),
    command(&["watch_summary", "wchs"], true, Some(false)),
    command(&["watches", "wchc"], true, Some(true)),
    command(&["watches_by_path", "wchp"], true, Some(true)),
    command(&["zabstate"], false, None),
];

/// The command `name` names, by any of its names.
pub fn lookup(name: &str) -> Option<&'static Command> {
    COMMANDS.iter().find(|command| command.names.contains(&name))
}

/// Work a command does before the listings are refreshed (`crst` asks the cores to
/// reset what they then publish).
pub fn prepare(command: &Command, shared: &Shared) {
    if command.names[0] == "connection_stat_reset" && shared.serving() {
        statistics::reset_connection_stats(shared);
    }
}

/// The JSON answer of the command `name` with the request's query parameters.
pub fn answer(name: &str, query: &dyn Fn(&str) -> Option<String>, shared: &Shared) -> Json {
    let Some(command) = lookup(name) else {
        return json!({ "command": name, "error": format!("Unknown command: {name}") });
    };
    if command.server_required && !shared.serving() {
        // ZooKeeper's answer while its ZooKeeperServer is not running, naming the
        // command as it was asked for.
        return json!({ "command": name, "error": "This ZooKeeper instance is not currently serving requests" });
    }
    let primary = command.names[0];
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
        // ZooKeeper lists the JVM's system properties too; Ringkeeper has none, so both
        // list the process's environment as `envi` shows it.
        "environment" | "system_properties" => statistics::environment(shared)
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
            let text = query("traceMask").ok_or("setTraceMask requires long traceMask argument")?;
            let mask = text
                .parse::<i64>()
                .map_err(|_| format!("setTraceMask requires long traceMask argument, got {text}"))?;
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

/// `ZooKeeperServer.getConf().toMap()`: the entries of `conf` that the AdminServer shows.
fn configuration(shared: &Shared) -> Map<String, Json> {
    statistics::configuration(shared)
        .into_iter()
        .filter_map(|entry| entry.json_key.map(|key| (key.to_owned(), entry.value.to_json())))
        .collect()
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
        // `Long.toHexString(-1)` and -1, as ZooKeeper answers without a snapshot.
        None => object(json!({ "zxid": "ffffffffffffffff", "timestamp": -1 })),
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

    fn serving_shared() -> Shared {
        let shared = Shared::new(crate::config::Config::default(), 1);
        shared.recovered.store(true, Ordering::Release);
        shared.listening_cores.store(1, Ordering::Release);
        shared
    }

    #[test]
    fn every_alias_names_its_primary_command() {
        let primary = |name| lookup(name).map(|command| command.names[0]);
        assert_eq!(primary("mntr"), Some("monitor"));
        assert_eq!(primary("config"), Some("configuration"));
        assert_eq!(primary("monitor"), Some("monitor"));
        assert_eq!(primary("nosuch"), None);
        let mut names: Vec<&str> = COMMANDS.iter().flat_map(|command| command.names.iter().copied()).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "no name is used twice");
    }

    #[test]
    fn an_unknown_command_is_answered_with_an_error_not_a_failure() {
        let answer = answer("nosuch", &|_| None, &serving_shared());
        assert_eq!(answer, json!({ "command": "nosuch", "error": "Unknown command: nosuch" }));
    }

    #[test]
    fn set_trace_mask_needs_its_argument_and_get_trace_mask_reads_it_back() {
        let shared = serving_shared();
        let missing = answer("stmk", &|_| None, &shared);
        assert_eq!(missing["error"], "setTraceMask requires long traceMask argument");
        let garbled = answer("stmk", &|_| Some("x".to_owned()), &shared);
        assert_eq!(garbled["error"], "setTraceMask requires long traceMask argument, got x");
        let set = answer("stmk", &|name| (name == "traceMask").then(|| "7".to_owned()), &shared);
        assert_eq!((set["tracemask"].as_i64(), set["command"].as_str()), (Some(7), Some("set_trace_mask")));
        assert_eq!(answer("gtmk", &|_| None, &shared)["tracemask"], 7);
    }

    #[test]
    fn a_server_that_does_not_serve_answers_only_what_zookeeper_answers_without_one() {
        // Recovering: not serving. ZooKeeper answers monitor, envi, gtmk, stmk, sysp and
        // zabstate without a running server, and refuses the rest, naming them as asked.
        let shared = Shared::new(crate::config::Config::default(), 1);
        let refused = answer("srvr", &|_| None, &shared);
        let expected =
            json!({ "command": "srvr", "error": "This ZooKeeper instance is not currently serving requests" });
        assert_eq!(refused, expected);
        assert!(answer("ruok", &|_| None, &shared)["error"].is_string());
        for name in ["mntr", "envi", "gtmk", "sysp", "zabstate"] {
            assert!(answer(name, &|_| None, &shared)["error"].is_null(), "{name}");
        }
        let shared = serving_shared();
        assert!(answer("ruok", &|_| None, &shared)["error"].is_null());
        assert_eq!(answer("lsnp", &|_| None, &shared)["zxid"], "ffffffffffffffff");
    }
}
