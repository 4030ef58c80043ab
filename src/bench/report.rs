//! The bench report: throughput, latency percentiles from the HDR histogram, errors by
//! ZooKeeper code, the per-second timeline of throughput and latency, the latency
//! distribution, and the CPU time of the generator, the server and the machine, as text,
//! JSON (which `ringkeeper report` reads back) or an HTML page (`html.rs`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hdrhistogram::{Counter, Histogram};
use serde::{Deserialize, Serialize};

use super::stats::SessionStats;
use super::Options;

/// A generator process whose CPU time reaches this share of its threads is taken to be
/// the bottleneck.
const SATURATED_SHARE: f64 = 0.9;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    #[serde(rename = "p99.9")]
    pub p99_9: f64,
    pub max: f64,
}

impl Latency {
    fn of<T: Counter>(histogram: &Histogram<T>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
        }
    }

    fn labelled(&self) -> [(&'static str, f64); 5] {
        [("p50", self.p50), ("p90", self.p90), ("p99", self.p99), ("p99.9", self.p99_9), ("max", self.max)]
    }
}

/// CPU time over the measured window, in seconds.
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    /// Per generator process (this one alone without `--procs`).
    pub generator_s: Vec<f64>,
    pub server_s: Option<f64>,
    /// The whole machine's busy share of all its cores, in percent.
    pub machine_busy_pct: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// What the run is called in reports (`--label`, or the servers).
    pub label: String,
    pub servers: String,
    pub workload: String,
    pub sessions: usize,
    pub depth: usize,
    pub duration_s: f64,
    pub operations: u64,
    pub ops_per_s: f64,
    pub latency_ms: Latency,
    pub errors: BTreeMap<i32, u64>,
    /// Operations per second of the measured window.
    pub timeline: Vec<u64>,
    /// Latency percentiles per second of the measured window (to about 6%).
    pub latency_timeline_ms: Vec<Latency>,
    /// The latency distribution: [percentile, milliseconds] points.
    pub cdf_ms: Vec<[f64; 2]>,
    pub generator_processes: usize,
    /// Threads (executors) per generator process.
    pub generator_threads: usize,
    /// All generator processes together, in percent of one core.
    pub generator_cpu_pct: f64,
    /// Each generator process, in percent of one core.
    pub generator_cpu_pct_by_process: Vec<f64>,
    /// Some generator process used at least 90% of its threads' cores.
    pub generator_saturated: bool,
    pub machine_cores: usize,
    pub machine_cpu_busy_pct: f64,
    pub server_cpu_us_per_op: Option<f64>,
    /// Open loop: the offered rate, and requests sent over a millisecond late.
    pub rate_per_s: Option<f64>,
    pub behind_schedule: u64,
    /// What one operation is: ops, or for the recipes events, acquisitions or sessions.
    pub unit: String,
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
    pub fn new(options: &Options, stats: &SessionStats, cpu: &CpuUse) -> Report {
        assert!(!cpu.generator_s.is_empty(), "at least this process generates load");
        let duration_s = options.duration.as_secs_f64();
        let servers: Vec<String> = options.servers.iter().map(ToString::to_string).collect();
        let servers = servers.join(",");
        let generator_cpu_s: f64 = cpu.generator_s.iter().sum();
        let saturated_s = SATURATED_SHARE * options.threads as f64 * duration_s;
        Report {
            label: options.label.clone().unwrap_or_else(|| servers.clone()),
            servers,
            workload: options.workload.name(),
            sessions: options.sessions,
            depth: options.depth,
            duration_s,
            operations: stats.operations,
            ops_per_s: stats.operations as f64 / duration_s,
            latency_ms: Latency::of(&stats.latency_us),
            errors: stats.errors.clone(),
            timeline: stats.timeline.clone(),
            latency_timeline_ms: stats.latency_us_by_second.iter().map(Latency::of).collect(),
            cdf_ms: cdf_ms(&stats.latency_us),
            generator_processes: options.procs,
            generator_threads: options.threads,
            generator_cpu_pct: generator_cpu_s / duration_s * 100.0,
            generator_cpu_pct_by_process: cpu.generator_s.iter().map(|seconds| seconds / duration_s * 100.0).collect(),
            generator_saturated: cpu.generator_s.iter().any(|seconds| *seconds >= saturated_s),
            machine_cores: std::thread::available_parallelism().map_or(1, usize::from),
            machine_cpu_busy_pct: cpu.machine_busy_pct,
            server_cpu_us_per_op: cpu.server_s.map(|seconds| seconds * 1e6 / stats.operations.max(1) as f64),
            rate_per_s: options.rate_per_s,
            behind_schedule: stats.behind_schedule,
            unit: options.workload.unit().to_owned(),
            writes: stats.writes,
            violations: stats.violations,
            events_delivered: stats.events_delivered,
            events_expected: stats.events_expected,
            events_lost: stats.events_lost,
            events_unmatched: stats.events_unmatched,
        }
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
        let _ =
            writeln!(text, "throughput {:.0} {unit}/s ({} {unit})", self.ops_per_s, self.operations, unit = self.unit);
        let latencies: Vec<String> =
            self.latency_ms.labelled().iter().map(|(label, ms)| format!("{label} {ms:.3} ms")).collect();
        let _ = writeln!(text, "{} {}", self.latency_name(), latencies.join("  "));
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
        let _ = writeln!(text, "{}", self.cpu_text());
        if let Some(per_op) = self.server_cpu_us_per_op {
            let _ = writeln!(text, "server CPU {per_op:.1} us/{}", self.unit.trim_end_matches('s'));
        }
        text
    }

    /// The generator's and the machine's CPU use, with a warning when the generator was
    /// (or may have been) the bottleneck.
    pub fn cpu_text(&self) -> String {
        let mut text = format!(
            "generator CPU {:.0}% of one core ({} process{} x {} thread{}); machine {:.0}% busy of {} cores",
            self.generator_cpu_pct,
            self.generator_processes,
            if self.generator_processes == 1 { "" } else { "es" },
            self.generator_threads,
            if self.generator_threads == 1 { "" } else { "s" },
            self.machine_cpu_busy_pct,
            self.machine_cores
        );
        if self.generator_saturated {
            text.push_str("\nWARNING: the generator is saturated (a process used over 90% of its threads' cores); add --threads or --procs");
        }
        text
    }

    /// What the latency figures measure, by workload.
    pub fn latency_name(&self) -> &'static str {
        match self.workload.as_str() {
            "watch" => "fan-out latency (setData sent to event received)",
            "lock" => "wait latency (create sent to lock held)",
            "churn" => "cycle latency (connect to close answered)",
            _ => "latency",
        }
    }

    pub fn json(&self) -> String {
        let mut json = serde_json::to_string(self).expect("a report serializes");
        json.push('\n');
        json
    }

    pub fn from_json(text: &str) -> Result<Report, String> {
        serde_json::from_str(text).map_err(|error| format!("not a bench report: {error}"))
    }
}

/// Points of the latency distribution, [percentile, ms], denser towards the tail: five
/// per halving of the distance to 100%, as HdrHistogram's percentile plots.
fn cdf_ms(histogram: &Histogram<u64>) -> Vec<[f64; 2]> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<[f64; 2]> = Vec::new();
    for step in histogram.iter_quantiles(5) {
        let point = [step.quantile_iterated_to() * 100.0, step.value_iterated_to() as f64 / 1000.0];
        if points.last().is_none_or(|last| point[0] > last[0]) {
            points.push(point);
        }
    }
    points
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
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

/// The machine's CPU time so far from /proc/stat: (busy, total) in clock ticks, busy
/// being all but idle and iowait.
pub fn machine_cpu_ticks() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return (0.0, 0.0) };
    let Some(line) = stat.lines().next().filter(|line| line.starts_with("cpu ")) else { return (0.0, 0.0) };
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let ticks: Vec<f64> = line.split_whitespace().skip(1).take(8).filter_map(|field| field.parse().ok()).collect();
    let total: f64 = ticks.iter().sum();
    let idle = ticks.get(3).unwrap_or(&0.0) + ticks.get(4).unwrap_or(&0.0);
    (total - idle, total)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_distribution_is_denser_towards_the_tail_and_ends_at_the_max() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
        for value in 1..=10_000u64 {
            histogram.record(value).expect("in range");
        }
        let points = cdf_ms(&histogram);
        assert!(points.windows(2).all(|pair| pair[0][0] < pair[1][0] && pair[0][1] <= pair[1][1]));
        let last = points.last().expect("points");
        assert_eq!(last[0], 100.0);
        assert!((last[1] - 10.0).abs() < 0.01, "{last:?}");
        let tail = points.iter().filter(|point| point[0] >= 99.0).count();
        assert!(tail >= 5, "the last percent has its own points: {points:?}");
    }
}
