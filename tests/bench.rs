//! `ringkeeper bench` against a real server: the closed loop, the open loop (`--rate`)
//! and the recipe workloads (watch, lock, churn) produce sane reports, and the guarantees
//! the recipes check (every watch event delivered once, one lock holder at a time) hold;
//! the load splits over generator processes; HTML reports draw one run or several.

mod support;

use std::process::Command;

use support::Server;

fn bench(server: &Server, extra: &[&str]) -> String {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let json = server.dir.join(format!("bench-{run}.json"));
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

#[test]
fn splitting_the_load_over_processes_measures_one_run() {
    // With --procs 2 the sessions are split over two generator processes that share the
    // schedule and the board: the report merges both (one timeline of the measured
    // seconds, every process's CPU), and the watch workload's watchers in one process
    // find the send times the writer in the other published (no unmatched events).
    let server = Server::start();
    let json = bench(&server, &["--workload", "set", "--procs", "2"]);
    assert_eq!(number(&json, "generator_processes"), 2.0, "{json}");
    assert!(number(&json, "ops_per_s") > 500.0, "{json}");
    assert!(number(&json, "generator_cpu_pct") > 0.0, "{json}");
    assert!(json.contains("\"errors\":{}"), "{json}");
    let report: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(report["timeline"].as_array().expect("timeline").len(), 2, "{json}");
    // Both processes ran their share and were measured: each used CPU of its own.
    let by_process = report["generator_cpu_pct_by_process"].as_array().expect("per process");
    assert_eq!(by_process.len(), 2, "{json}");
    assert!(by_process.iter().all(|pct| pct.as_f64().expect("number") > 0.0), "{json}");

    let json = bench(&server, &["--workload", "watch", "--procs", "2", "--depth", "2"]);
    assert!(number(&json, "operations") > 100.0, "{json}");
    assert_eq!(number(&json, "events_unmatched"), 0.0, "{json}");
    assert_eq!(number(&json, "events_lost"), 0.0, "{json}");
    assert_eq!(number(&json, "events_delivered"), number(&json, "events_expected"), "{json}");
    assert_eq!(number(&json, "violations"), 0.0, "{json}");
}

#[test]
fn the_report_directory_holds_a_page_with_plots_that_report_can_redraw_with_other_runs() {
    // --report DIR writes index.html (throughput over time, latency over time, latency by
    // percentile, as inline SVG) and report.json; `ringkeeper report` draws several such
    // runs on one page, each run a line of its own in the charts of its workload.
    let server = Server::start();
    let directory = server.dir.join("report");
    for label in ["first", "second"] {
        bench(
            &server,
            &["--workload", "get", "--label", label, "--report", directory.join(label).to_str().expect("utf-8")],
        );
        let page = std::fs::read_to_string(directory.join(label).join("index.html")).expect("index.html");
        assert_eq!(page.matches("<svg").count(), 3, "{page}");
        for title in ["Throughput over time", "Latency over time", "Latency by percentile"] {
            assert!(page.contains(title), "{title} in {page}");
        }
        assert!(page.contains(label));
    }
    let out = directory.join("both.html");
    let status = Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
        .arg("report")
        .args(["--title", "two runs", "--out"])
        .arg(&out)
        .arg(directory.join("first/report.json"))
        .arg(directory.join("second/report.json"))
        .status()
        .expect("report runs");
    assert!(status.success());
    let page = std::fs::read_to_string(&out).expect("both.html");
    assert!(page.contains("first") && page.contains("second") && page.contains("two runs"));
    // Two runs: two throughput lines, four latency lines (p50 and p99), two distributions.
    assert_eq!(page.matches("<polyline").count(), 8, "{page}");

    let bad = directory.join("bad.json");
    std::fs::write(&bad, "{}").expect("writes");
    let output = Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
        .args(["report", "--out"])
        .arg(directory.join("bad.html"))
        .arg(&bad)
        .output()
        .expect("report runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a bench report"));
}
