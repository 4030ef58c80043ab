//! `ringkeeper bench` against a real server: the closed loop, the open loop (`--rate`)
//! and the recipe workloads (watch, lock, churn) produce sane reports, and the guarantees
//! the recipes check (every watch event delivered once, one lock holder at a time) hold.

mod support;

use std::process::Command;

use support::Server;

fn bench(server: &Server, extra: &[&str]) -> String {
    let json = server.dir.join(format!("bench-{}.json", extra.join("_").replace(['-', '.'], "")));
    let status = Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
        .args(["bench", "--servers", &server.address(), "--sessions", "4", "--duration", "2", "--warmup", "1"])
        .args(["--keys", "100", "--json"])
        .arg(&json)
        .args(extra)
        .status()
        .expect("bench runs");
    assert!(status.success(), "bench {extra:?} failed");
    std::fs::read_to_string(json).expect("bench wrote its JSON")
}

fn number(json: &str, key: &str) -> f64 {
    let start = json.find(&format!("\"{key}\":")).unwrap_or_else(|| panic!("{key} in {json}")) + key.len() + 3;
    let end = json[start..].find([',', '}']).expect("value ends") + start;
    json[start..end].parse().unwrap_or_else(|_| panic!("{key} is a number in {json}"))
}

#[test]
fn the_open_loop_sends_the_offered_rate_whatever_the_server_does() {
    // With --rate R the generator sends R requests per second on a fixed schedule (not
    // as fast as replies allow), so the measured throughput is the offered rate; latency
    // counts from each request's scheduled time, and nothing fails.
    let server = Server::start();
    let json = bench(&server, &["--workload", "set", "--rate", "800"]);
    let ops_per_s = number(&json, "ops_per_s");
    assert!((700.0..=900.0).contains(&ops_per_s), "open loop at 800/s measured {ops_per_s}: {json}");
    assert_eq!(number(&json, "rate_per_s"), 800.0);
    assert!(json.contains("\"errors\":{}"), "{json}");
    assert!(number(&json, "p50") > 0.0);
}

#[test]
fn the_closed_loop_keeps_depth_requests_in_flight_and_reports_no_rate() {
    // Without --rate every session keeps --depth requests in flight; the report has no
    // offered rate and throughput well above what a single request at a time would give.
    let server = Server::start();
    let json = bench(&server, &["--workload", "get", "--depth", "8"]);
    assert!(json.contains("\"rate_per_s\":null"), "{json}");
    assert!(number(&json, "ops_per_s") > 1000.0, "{json}");
    assert!(json.contains("\"errors\":{}"), "{json}");
}

#[test]
fn the_open_loop_works_for_reads_writes_and_creates() {
    // --rate is not only for set: get, mixed, exists and create keep the offered rate too,
    // without errors.
    let server = Server::start();
    for workload in ["get", "mixed", "exists", "create"] {
        let json = bench(&server, &["--workload", workload, "--rate", "400"]);
        let ops_per_s = number(&json, "ops_per_s");
        assert!((350.0..=450.0).contains(&ops_per_s), "{workload} at 400/s measured {ops_per_s}: {json}");
        assert!(json.contains("\"errors\":{}"), "{json}");
    }
}

#[test]
fn every_armed_watch_fires_once_and_fan_out_latency_is_measured() {
    // One writer and three watchers of one node: each watch armed on a version older than
    // the writer's last fires exactly once (delivered equals owed, none lost), each event
    // matches the setData that fired it, and none arrives without a watch armed.
    let server = Server::start();
    let json = bench(&server, &["--workload", "watch", "--depth", "2"]);
    assert!(json.contains("\"unit\":\"events\""), "{json}");
    assert!(number(&json, "operations") > 100.0, "{json}");
    assert!(number(&json, "writes") > 0.0, "{json}");
    let delivered = number(&json, "events_delivered");
    assert!(delivered >= number(&json, "operations"), "{json}");
    assert_eq!(delivered, number(&json, "events_expected"), "{json}");
    assert_eq!(number(&json, "events_lost"), 0.0, "{json}");
    assert_eq!(number(&json, "events_unmatched"), 0.0, "{json}");
    assert_eq!(number(&json, "violations"), 0.0, "{json}");
    assert!(json.contains("\"errors\":{}"), "{json}");
    assert!(number(&json, "p50") > 0.0, "{json}");
}

#[test]
fn the_lock_recipe_has_one_holder_at_a_time() {
    // Four sessions contend for one lock; holders never overlap and every step of the
    // recipe succeeds (exists on a predecessor already gone is the recipe's NoNode case,
    // not an error).
    let server = Server::start();
    let json = bench(&server, &["--workload", "lock"]);
    assert!(json.contains("\"unit\":\"acquisitions\""), "{json}");
    assert!(number(&json, "operations") > 20.0, "{json}");
    assert_eq!(number(&json, "violations"), 0.0, "{json}");
    assert!(json.contains("\"errors\":{}"), "{json}");
    assert!(number(&json, "p50") > 0.0, "{json}");
}

#[test]
fn session_churn_opens_and_closes_sessions_and_their_ephemerals() {
    // Each cycle opens a session, creates the same ephemeral path and closes; a close
    // answered before the ephemeral went away would show as NodeExists errors.
    let server = Server::start();
    let json = bench(&server, &["--workload", "churn"]);
    assert!(json.contains("\"unit\":\"sessions\""), "{json}");
    assert!(number(&json, "operations") > 20.0, "{json}");
    assert!(json.contains("\"errors\":{}"), "{json}");
    assert!(number(&json, "p99") > 0.0, "{json}");
}
