//! `ringkeeper bench` against a real server: the closed loop and the open loop (`--rate`)
//! produce sane reports.

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
