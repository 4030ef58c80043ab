//! `/metrics` in Prometheus's text format (0.0.4). ZooKeeper's metrics keep the names its
//! Prometheus provider gives them (mntr's without `zk_`; its summaries with quantiles
//! 0.5, 0.9 and 0.99), so ZooKeeper dashboards work unchanged; Ringkeeper's own are
//! `ringkeeper_*`, with base units (seconds, bytes) as Prometheus recommends.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::server::histogram::HistogramSnapshot;
use crate::server::shared::Shared;
use crate::server::statistics::{self, Metric};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The whole exposition.
pub fn exposition(shared: &Shared) -> String {
    let mut text = String::new();
    write_gauges(&mut text, &statistics::gauges(shared));
    for summary in statistics::summaries(shared) {
        write_summary(&mut text, summary.name, &summary.snapshot, summary.divisor);
    }
    let histograms = &shared.histograms;
    write_histogram(
        &mut text,
        "ringkeeper_log_write_seconds",
        "One log append (the O_DSYNC write of a group commit).",
        &histograms.log_write_us.snapshot(),
        1e6,
    );
    write_histogram(
        &mut text,
        "ringkeeper_group_commit_records",
        "Records per group commit.",
        &histograms.group_commit_records.snapshot(),
        1.0,
    );
    write_histogram(
        &mut text,
        "ringkeeper_snapshot_seconds",
        "Writing one snapshot.",
        &histograms.snapshot_us.snapshot(),
        1e6,
    );
    let snapshot_bytes = shared.last_snapshot.lock().expect("not poisoned").map_or(0, |snapshot| snapshot.size_bytes);
    write_family(&mut text, "ringkeeper_last_snapshot_size_bytes", "gauge", "The newest snapshot's size.");
    let _ = writeln!(text, "ringkeeper_last_snapshot_size_bytes {snapshot_bytes}");
    write_per_core(&mut text, shared);
    write_family(&mut text, "ringkeeper_ready", "gauge", "1 while this server can serve clients (/ready).");
    let _ = writeln!(text, "ringkeeper_ready {}", u8::from(shared.readiness().is_ok()));
    text
}

fn write_family(text: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(text, "# HELP {name} {help}");
    let _ = writeln!(text, "# TYPE {name} {kind}");
}

/// A label value escaped as the text format requires.
fn escaped(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A metric name with every character Prometheus does not allow replaced by `_`.
fn sanitized(name: &str) -> String {
    name.chars()
        .enumerate()
        .map(
            |(index, c)| {
                if c.is_ascii_alphabetic() || c == '_' || c == ':' || (index > 0 && c.is_ascii_digit()) {
                    c
                } else {
                    '_'
                }
            },
        )
        .collect()
}

/// Each family's samples together (the text format requires it: per-namespace quota
/// metrics come namespace by namespace).
fn write_gauges(text: &mut String, metrics: &[Metric]) {
    let mut grouped: Vec<&Metric> = metrics.iter().collect();
    grouped.sort_by_key(|metric| metric.name.as_str());
    let mut announced: Vec<String> = Vec::new();
    for metric in grouped {
        let Some(value) = metric.value.as_f64() else { continue };
        let name = sanitized(&metric.name);
        if !announced.contains(&name) {
            let help = match metric.key.strip_prefix("zk_") {
                Some(_) => format!("ZooKeeper's {}, as mntr's {}.", metric.name, metric.key),
                None => format!("Ringkeeper's {}, also in mntr.", metric.name),
            };
            write_family(text, &name, "gauge", &help);
            announced.push(name.clone());
        }
        let labels: Vec<String> =
            metric.labels.iter().map(|(label, value)| format!("{label}=\"{}\"", escaped(value))).collect();
        let labels = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.join(",")) };
        let _ = writeln!(text, "{name}{labels} {value}");
    }
}

/// A ZooKeeper summary: quantiles from the histogram (each the bound of its bucket).
fn write_summary(text: &mut String, name: &str, snapshot: &HistogramSnapshot, divisor: u64) {
    write_family(text, name, "summary", &format!("ZooKeeper's {name}, in milliseconds."));
    for quantile in [0.5, 0.9, 0.99] {
        let _ =
            writeln!(text, "{name}{{quantile=\"{quantile}\"}} {}", snapshot.quantile(quantile) as f64 / divisor as f64);
    }
    let _ = writeln!(text, "{name}_count {}", snapshot.count);
    let _ = writeln!(text, "{name}_sum {}", snapshot.sum as f64 / divisor as f64);
}

/// A histogram whose recorded values are divided by `divisor` (microseconds to seconds).
fn write_histogram(text: &mut String, name: &str, help: &str, snapshot: &HistogramSnapshot, divisor: f64) {
    write_family(text, name, "histogram", help);
    for (bound, cumulative) in &snapshot.cumulative {
        let _ = writeln!(text, "{name}_bucket{{le=\"{}\"}} {cumulative}", *bound as f64 / divisor);
    }
    let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {}", snapshot.count);
    let _ = writeln!(text, "{name}_sum {}", snapshot.sum as f64 / divisor);
    let _ = writeln!(text, "{name}_count {}", snapshot.count);
}

/// Per core: its connections, the requests it received, and how far its applied state
/// trails the committed point (the apply lag between cores).
fn write_per_core(text: &mut String, shared: &Shared) {
    let committed = shared.committed_zxid();
    write_family(text, "ringkeeper_core_connections", "gauge", "Client connections served by each core.");
    for (core, counters) in shared.counters.iter().enumerate() {
        let _ = writeln!(
            text,
            "ringkeeper_core_connections{{core=\"{core}\"}} {}",
            counters.connections.load(Ordering::Relaxed)
        );
    }
    write_family(text, "ringkeeper_core_requests_total", "counter", "Requests received by each core.");
    for (core, counters) in shared.counters.iter().enumerate() {
        let received = counters.packets_received.load(Ordering::Relaxed);
        let _ = writeln!(text, "ringkeeper_core_requests_total{{core=\"{core}\"}} {received}");
    }
    write_family(
        text,
        "ringkeeper_core_apply_lag_zxids",
        "gauge",
        "Committed transactions each core serving connections has not applied yet.",
    );
    for (core, applied) in shared.applied_zxid.iter().enumerate() {
        // A core with no connection is sent only the batches with a control for it: what
        // it has not applied, it does not need (`server::send_committed`).
        let serving = core == 0 || shared.holds_connections(core);
        let lag = if serving { (committed - applied.load(Ordering::Acquire)).max(0) } else { 0 };
        let _ = writeln!(text, "ringkeeper_core_apply_lag_zxids{{core=\"{core}\"}} {lag}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_only_what_prometheus_allows() {
        assert_eq!(sanitized("znode_count"), "znode_count");
        assert_eq!(sanitized("9lives-x.y"), "_lives_x_y");
    }

    #[test]
    fn a_histogram_is_cumulative_and_ends_at_infinity() {
        let histogram = crate::server::histogram::Histogram::new(&[1000, 2000]);
        histogram.record(500);
        histogram.record(5000);
        let mut text = String::new();
        write_histogram(&mut text, "x_seconds", "help", &histogram.snapshot(), 1e6);
        assert!(text.contains("x_seconds_bucket{le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("x_seconds_bucket{le=\"0.002\"} 1\n"));
        assert!(text.contains("x_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("x_seconds_sum 0.0055\nx_seconds_count 2\n"));
    }
}
