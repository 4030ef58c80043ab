//! The bench report: throughput, latency percentiles from the HDR histogram, errors by
//! ZooKeeper code, the per-second timeline, and CPU time of the generator and the server,
//! as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::session::SessionStats;
use super::Options;

#[derive(Debug, Clone)]
pub struct Report {
    pub workload: String,
    pub sessions: usize,
    pub depth: usize,
    pub duration_s: f64,
    pub operations: u64,
    pub ops_per_s: f64,
    /// (label, microseconds): p50, p90, p99, p99.9, max.
    pub latency_us: Vec<(&'static str, u64)>,
    pub errors: BTreeMap<i32, u64>,
    pub timeline: Vec<u64>,
    /// CPU seconds over the measured window.
    pub generator_cpu_s: f64,
    pub server_cpu_s: Option<f64>,
    /// Open loop: the offered rate, and requests sent over a millisecond late.
    pub rate_per_s: Option<f64>,
    pub behind_schedule: u64,
    /// What one operation is: ops, or for the recipes events, acquisitions or sessions.
    pub unit: &'static str,
    /// Watch: the writer's setData requests completed in the measured window.
    pub writes: u64,
    /// Broken guarantees the workload checks (lock overlaps, stray watch events).
    pub violations: u64,
    /// Watch, over the whole run: events received, owed, never received, and without a
    /// known setData send time.
    pub events_delivered: u64,
    pub events_expected: u64,
    pub events_lost: u64,
    pub events_unmatched: u64,
}

impl Report {
    pub fn new(options: &Options, stats: &SessionStats, generator_cpu_s: f64, server_cpu_s: Option<f64>) -> Report {
        let duration_s = options.duration.as_secs_f64();
        let histogram = &stats.latency_us;
        let latency_us = vec![
            ("p50", histogram.value_at_quantile(0.50)),
            ("p90", histogram.value_at_quantile(0.90)),
            ("p99", histogram.value_at_quantile(0.99)),
            ("p99.9", histogram.value_at_quantile(0.999)),
            ("max", histogram.max()),
        ];
        Report {
            workload: options.workload.name(),
            sessions: options.sessions,
            depth: options.depth,
            duration_s,
            operations: stats.operations,
            ops_per_s: stats.operations as f64 / duration_s,
            latency_us,
            errors: stats.errors.clone(),
            timeline: stats.timeline.clone(),
            generator_cpu_s,
            server_cpu_s,
            rate_per_s: options.rate_per_s,
            behind_schedule: stats.behind_schedule,
            unit: options.workload.unit(),
            writes: stats.writes,
            violations: stats.violations,
            events_delivered: stats.events_delivered,
            events_expected: stats.events_expected,
            events_lost: stats.events_lost,
            events_unmatched: stats.events_unmatched,
        }
    }

    /// Server CPU microseconds per operation, when the server's pid was given.
    pub fn server_cpu_us_per_op(&self) -> Option<f64> {
        self.server_cpu_s.map(|cpu| cpu * 1e6 / self.operations.max(1) as f64)
    }

    pub fn generator_cpu_pct(&self) -> f64 {
        self.generator_cpu_s / self.duration_s * 100.0
    }

    pub fn text(&self) -> String {
        let mut text = String::new();
        match self.rate_per_s {
            Some(rate) => {
                let _ = writeln!(
                    text,
                    "workload {}  sessions {}  open loop {rate:.0} req/s  {:.0} s (latency from the scheduled send time)",
                    self.workload, self.sessions, self.duration_s
                );
                let _ = writeln!(text, "behind schedule {} requests (sent over 1 ms late)", self.behind_schedule);
            }
            None => {
                let _ = writeln!(
                    text,
                    "workload {}  sessions {} x depth {}  {:.0} s",
                    self.workload, self.sessions, self.depth, self.duration_s
                );
            }
        }
        let latency_name = match self.workload.as_str() {
            "watch" => "fan-out latency (setData sent to event received)",
            "lock" => "wait latency (create sent to lock held)",
            "churn" => "cycle latency (connect to close answered)",
            _ => "latency",
        };
        let _ =
            writeln!(text, "throughput {:.0} {unit}/s ({} {unit})", self.ops_per_s, self.operations, unit = self.unit);
        let latencies: Vec<String> =
            self.latency_us.iter().map(|(label, us)| format!("{label} {:.3} ms", *us as f64 / 1000.0)).collect();
        let _ = writeln!(text, "{latency_name} {}", latencies.join("  "));
        if self.workload == "watch" {
            let _ = writeln!(
                text,
                "setData {:.0}/s; events over the run: {} delivered, {} owed, {} lost, {} without a send time",
                self.writes as f64 / self.duration_s,
                self.events_delivered,
                self.events_expected,
                self.events_lost,
                self.events_unmatched
            );
        }
        if self.workload == "watch" || self.workload == "lock" {
            let _ = writeln!(text, "violations {}", self.violations);
        }
        if self.errors.is_empty() {
            let _ = writeln!(text, "errors none");
        } else {
            let errors: Vec<String> = self.errors.iter().map(|(code, count)| format!("{code}: {count}")).collect();
            let _ = writeln!(text, "errors by code {}", errors.join(", "));
        }
        let _ = writeln!(text, "per second {:?}", self.timeline);
        let _ = write!(text, "generator CPU {:.0}% of one core", self.generator_cpu_pct());
        if self.generator_cpu_pct() > 90.0 {
            text.push_str(" (WARNING: the generator may be the bottleneck)");
        }
        text.push('\n');
        if let Some(per_op) = self.server_cpu_us_per_op() {
            let _ = writeln!(text, "server CPU {per_op:.1} us/op");
        }
        text
    }

    pub fn json(&self) -> String {
        let latencies: Vec<String> =
            self.latency_us.iter().map(|(label, us)| format!("\"{label}\":{}", *us as f64 / 1000.0)).collect();
        let errors: Vec<String> = self.errors.iter().map(|(code, count)| format!("\"{code}\":{count}")).collect();
        let timeline: Vec<String> = self.timeline.iter().map(u64::to_string).collect();
        format!(
            "{{\"workload\":\"{}\",\"sessions\":{},\"depth\":{},\"duration_s\":{},\"operations\":{},\"ops_per_s\":{:.1},\
             \"latency_ms\":{{{}}},\"errors\":{{{}}},\"timeline\":[{}],\"generator_cpu_pct\":{:.1},\"server_cpu_us_per_op\":{},\"rate_per_s\":{},\"behind_schedule\":{},\
             \"unit\":\"{}\",\"writes\":{},\"violations\":{},\"events_delivered\":{},\"events_expected\":{},\
             \"events_lost\":{},\"events_unmatched\":{}}}\n",
            self.workload,
            self.sessions,
            self.depth,
            self.duration_s,
            self.operations,
            self.ops_per_s,
            latencies.join(","),
            errors.join(","),
            timeline.join(","),
            self.generator_cpu_pct(),
            self.server_cpu_us_per_op().map_or("null".to_owned(), |value| format!("{value:.2}")),
            self.rate_per_s.map_or("null".to_owned(), |rate| format!("{rate:.1}")),
            self.behind_schedule,
            self.unit,
            self.writes,
            self.violations,
            self.events_delivered,
            self.events_expected,
            self.events_lost,
            self.events_unmatched,
        )
    }
}

/// User + system CPU seconds of a process (this one when `pid` is None), from /proc.
pub fn process_cpu_seconds(pid: Option<u32>) -> f64 {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let Ok(stat) = std::fs::read_to_string(path) else { return 0.0 };
    // Fields after the command name (which may contain spaces) start after ") ".
    let Some(rest) = stat.rsplit_once(") ").map(|(_, rest)| rest) else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / ticks_per_second.max(1.0)
}
