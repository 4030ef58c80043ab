//! The HTML report: one self-contained page for one run (`ringkeeper bench --report DIR`)
//! or for several (`ringkeeper report`, as `perf/compare.sh` draws ZooKeeper against
//! Ringkeeper). Runs of the same workload under the same load (sessions and depth, or
//! open-loop rate) share a section whose charts overlay them:
//! throughput over time, latency (p50 dashed, p99 solid) over time, and the latency
//! distribution by percentile.

use std::fmt::Write as _;

use super::plot::{escape, line_chart, Axis, Series, COLOURS};
use super::report::Report;

/// The distribution's percentile axis ends here (six nines): the 100th percentile, the
/// maximum, sits at infinity on it.
const PERCENTILE_NINES_MAX: f64 = 6.0;

pub fn page(title: &str, runs: &[Report]) -> String {
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title><style>\
         body{{font-family:sans-serif;margin:24px;color:#222}}table{{border-collapse:collapse;margin:12px 0}}\
         td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f3f3f3}}\
         td:first-child,th:first-child{{text-align:left}}.charts{{display:flex;flex-wrap:wrap;gap:8px}}\
         .warning{{color:#b00}}</style></head><body>\n<h1>{title}</h1>\n",
        title = escape(title)
    );
    html.push_str(&summary_table(runs));
    for section in sections(runs) {
        let group: Vec<&Report> = runs.iter().filter(|run| section_of(run) == section).collect();
        let _ = writeln!(html, "<h2>{}</h2>", escape(&section));
        let _ = writeln!(html, "<p>{}.</p>", describe(group[0]));
        for run in &group {
            let _ = writeln!(html, "<p>{}: {}</p>", escape(&run.label), escape(&run.cpu_text()).replace('\n', "<br>"));
        }
        html.push_str("<div class=\"charts\">\n");
        html.push_str(&throughput_chart(&group));
        html.push_str(&latency_chart(&group));
        html.push_str(&distribution_chart(&group));
        html.push_str("</div>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// Runs are compared with runs of the same workload under the same load.
fn section_of(run: &Report) -> String {
    match run.rate_per_s {
        Some(rate) => format!("{}, open loop at {rate:.0}/s over {} sessions", run.workload, run.sessions),
        None => format!("{}, {} sessions x {}", run.workload, run.sessions, run.depth),
    }
}

/// Sections in order of first appearance.
fn sections(runs: &[Report]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for run in runs {
        let section = section_of(run);
        if !names.contains(&section) {
            names.push(section);
        }
    }
    names
}

fn describe(run: &Report) -> String {
    let load = match run.rate_per_s {
        Some(rate) => format!("{} sessions, open loop at {rate:.0} requests/s", run.sessions),
        None => format!("{} sessions x {} in flight", run.sessions, run.depth),
    };
    format!("{load}, {:.0} s measured; {}", run.duration_s, run.latency_name())
}

/// One row per run: throughput (and its ratio to the first run of the same section),
/// latency, errors and CPU.
fn summary_table(runs: &[Report]) -> String {
    let mut html = String::from(
        "<table><tr><th>workload and load</th><th>run</th><th>throughput /s</th><th>ratio</th><th>p50 ms</th>\
         <th>p99 ms</th><th>p99.9 ms</th><th>max ms</th><th>errors</th><th>server CPU us/op</th>\
         <th>generator CPU %</th></tr>\n",
    );
    for run in runs {
        let first = runs.iter().find(|other| section_of(other) == section_of(run)).expect("run itself");
        let errors: u64 = run.errors.values().sum();
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.0} {}</td><td>{:.2}x</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td>\
             <td>{:.3}</td><td>{errors}</td><td>{}</td><td{}>{:.0}</td></tr>",
            escape(&section_of(run)),
            escape(&run.label),
            run.ops_per_s,
            escape(&run.unit),
            run.ops_per_s / first.ops_per_s.max(f64::MIN_POSITIVE),
            run.latency_ms.p50,
            run.latency_ms.p99,
            run.latency_ms.p99_9,
            run.latency_ms.max,
            run.server_cpu_us_per_op.map_or("-".to_owned(), |us| format!("{us:.1}")),
            if run.generator_saturated { " class=\"warning\"" } else { "" },
            run.generator_cpu_pct,
        );
    }
    html.push_str("</table>\n");
    html
}

fn throughput_chart(group: &[&Report]) -> String {
    let series: Vec<Series> = group
        .iter()
        .enumerate()
        .map(|(index, run)| Series {
            name: run.label.clone(),
            points: run
                .timeline
                .iter()
                .enumerate()
                .map(|(second, count)| (second as f64 + 1.0, *count as f64))
                .collect(),
            colour: COLOURS[index % COLOURS.len()],
            dashed: false,
        })
        .collect();
    let unit = group.first().map_or("ops", |run| run.unit.as_str());
    line_chart("Throughput over time", &Axis::linear("second"), &Axis::linear(&format!("{unit}/s")), &series)
}

fn latency_chart(group: &[&Report]) -> String {
    let mut series = Vec::new();
    for (index, run) in group.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let over_time = |pick: fn(&super::report::Latency) -> f64| {
            run.latency_timeline_ms
                .iter()
                .enumerate()
                .map(|(second, latency)| (second as f64 + 1.0, pick(latency)))
                .collect()
        };
        series.push(Series { name: format!("{} p50", run.label), points: over_time(|l| l.p50), colour, dashed: true });
        series.push(Series { name: format!("{} p99", run.label), points: over_time(|l| l.p99), colour, dashed: false });
    }
    line_chart("Latency over time", &Axis::linear("second"), &Axis::log("ms"), &series)
}

fn distribution_chart(group: &[&Report]) -> String {
    let series: Vec<Series> = group
        .iter()
        .enumerate()
        .map(|(index, run)| Series {
            name: run.label.clone(),
            points: run.cdf_ms.iter().map(|[percentile, ms]| (nines(*percentile), *ms)).collect(),
            colour: COLOURS[index % COLOURS.len()],
            dashed: false,
        })
        .collect();
    let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"];
    let ticks = labels.iter().enumerate().map(|(nines, label)| (nines as f64, (*label).to_owned())).collect();
    let x = Axis { label: "percentile".into(), log: false, ticks: Some(ticks) };
    line_chart("Latency by percentile", &x, &Axis::log("ms"), &series)
}

/// A percentile's place on a nines axis: 90% is 1, 99% is 2, 99.9% is 3.
fn nines(percentile: f64) -> f64 {
    let remaining = (100.0 - percentile).max(100.0 * 10f64.powf(-PERCENTILE_NINES_MAX));
    (100.0 / remaining).log10().clamp(0.0, PERCENTILE_NINES_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::CpuUse;
    use crate::bench::stats::{record, SessionStats};
    use crate::bench::workload::Workload;
    use crate::bench::Options;

    fn run(label: &str, sessions: usize, rate_per_s: Option<f64>, operations: usize) -> Report {
        let options = Options {
            servers: vec!["127.0.0.1:2181".parse().expect("address")],
            workload: Workload::Set,
            sessions,
            depth: 16,
            duration: std::time::Duration::from_secs(2),
            warmup: std::time::Duration::ZERO,
            value_size: 100,
            keys: 10,
            threads: 1,
            procs: 1,
            server_pids: Vec::new(),
            rate_per_s,
            label: Some(label.to_owned()),
            progress: false,
            tls: None,
        };
        let mut stats = SessionStats::new();
        let start = std::time::Instant::now();
        for _ in 0..operations {
            record(&mut stats, start, std::time::Duration::from_micros(300), start, 0);
        }
        Report::new(&options, &stats, &CpuUse { generator_s: vec![0.1], server_s: None, machine_busy_pct: 50.0 })
    }

    #[test]
    fn runs_share_charts_only_with_runs_of_the_same_workload_and_load() {
        let runs =
            [run("zk", 64, None, 1), run("rk", 64, None, 2), run("zk", 64, Some(1000.0), 1), run("zk", 1, None, 1)];
        let page = page("t", &runs);
        assert_eq!(page.matches("<h2>").count(), 3, "{page}");
        assert!(page.contains("set, 64 sessions x 16") && page.contains("set, open loop at 1000/s over 64 sessions"));
        // The second run's ratio is to the first of its section; the others are firsts.
        assert_eq!(page.matches("<td>1.00x</td>").count(), 3);
        assert_eq!(page.matches("<td>2.00x</td>").count(), 1);
    }

    #[test]
    fn percentiles_sit_on_a_nines_axis() {
        assert!(nines(0.0).abs() < 1e-9);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-6);
        assert_eq!(nines(100.0), PERCENTILE_NINES_MAX);
    }
}
