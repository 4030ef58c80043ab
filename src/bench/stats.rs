//! What bench sessions measure, merged across sessions, threads and processes: the latency
//! histogram of the whole run and one per second, errors by ZooKeeper code, the per-second
//! throughput, and the counters the recipe workloads check. Generator processes hand
//! their stats to the parent in a line-based text form (`encode`, `decode`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::{Counter, Histogram};

use super::board::Board;

/// Latencies are recorded in microseconds, from 1 us to a minute.
const LATENCY_US_MAX: u64 = 60_000_000;

/// Measured operations a session counts before adding them to the run's progress counter
/// (one shared atomic add per this many, not per operation).
const PROGRESS_BATCH: u32 = 64;

/// What one session measured (or, merged, a thread, a process or the whole run).
pub struct SessionStats {
    /// Every measured latency, three significant digits.
    pub latency_us: Histogram<u64>,
    /// Per second of measurement, its latencies to one significant digit (about 6%
    /// resolution): enough for latency-over-time plots at a few KiB per second.
    pub latency_us_by_second: Vec<Histogram<u32>>,
    pub errors: BTreeMap<i32, u64>,
    /// Replies per second since the start of measurement.
    pub timeline: Vec<u64>,
    pub operations: u64,
    /// Open loop: requests sent more than a millisecond after their scheduled time (the
    /// generator fell behind; their latency still counts from the schedule).
    pub behind_schedule: u64,
    /// Watch: setData requests the writer completed in the measured window.
    pub writes: u64,
    /// Broken guarantees seen by a workload that checks one: lock holders that overlapped,
    /// watch events that arrived with no watch armed or of the wrong kind or path, setData
    /// versions out of order.
    pub violations: u64,
    /// Watch, over the whole run: events received, events owed (one per watch armed on
    /// a version older than the writer's last), events never received, and events whose
    /// setData send time was unknown (so no fan-out latency).
    pub events_delivered: u64,
    pub events_expected: u64,
    pub events_lost: u64,
    pub events_unmatched: u64,
    pub failure: Option<String>,
    /// Where measured operations are counted for the progress bar, and how many this
    /// session has not added there yet.
    progress: Option<Arc<Board>>,
    unreported: u32,
}

impl Default for SessionStats {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionStats {
    pub fn new() -> SessionStats {
        SessionStats {
            latency_us: Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid bounds"),
            latency_us_by_second: Vec::new(),
            errors: BTreeMap::new(),
            timeline: Vec::new(),
            operations: 0,
            behind_schedule: 0,
            writes: 0,
            violations: 0,
            events_delivered: 0,
            events_expected: 0,
            events_lost: 0,
            events_unmatched: 0,
            failure: None,
            progress: None,
            unreported: 0,
        }
    }

    /// Stats that also count measured operations on `board` for the progress bar.
    pub fn with_progress(board: Arc<Board>) -> SessionStats {
        SessionStats { progress: Some(board), ..SessionStats::new() }
    }

    /// Adds what is still unreported to the progress counter (at the end of a session).
    pub fn flush_progress(&mut self) {
        if let Some(board) = &self.progress {
            board.add_progress(u64::from(self.unreported));
        }
        self.unreported = 0;
    }

    pub fn merge(&mut self, other: &SessionStats) {
        self.latency_us.add(&other.latency_us).expect("same bounds");
        if self.latency_us_by_second.len() < other.latency_us_by_second.len() {
            self.latency_us_by_second.resize_with(other.latency_us_by_second.len(), second_histogram);
        }
        for (second, histogram) in other.latency_us_by_second.iter().enumerate() {
            self.latency_us_by_second[second].add(histogram).expect("same bounds");
        }
        for (code, count) in &other.errors {
            *self.errors.entry(*code).or_default() += count;
        }
        if self.timeline.len() < other.timeline.len() {
            self.timeline.resize(other.timeline.len(), 0);
        }
        for (second, count) in other.timeline.iter().enumerate() {
            self.timeline[second] += count;
        }
        self.operations += other.operations;
        self.behind_schedule += other.behind_schedule;
        self.writes += other.writes;
        self.violations += other.violations;
        self.events_delivered += other.events_delivered;
        self.events_expected += other.events_expected;
        self.events_lost += other.events_lost;
        self.events_unmatched += other.events_unmatched;
        if self.failure.is_none() {
            self.failure.clone_from(&other.failure);
        }
    }

    /// Drops what was measured after the measured window (replies still arriving while
    /// the last requests drain).
    pub fn truncate_seconds(&mut self, seconds: usize) {
        self.timeline.truncate(seconds);
        self.latency_us_by_second.truncate(seconds);
    }

    /// The text form a generator process prints for its parent: one line per field,
    /// histograms as `value:count` pairs of their recorded buckets.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let counters = [
            ("operations", self.operations),
            ("behind_schedule", self.behind_schedule),
            ("writes", self.writes),
            ("violations", self.violations),
            ("events_delivered", self.events_delivered),
            ("events_expected", self.events_expected),
            ("events_lost", self.events_lost),
            ("events_unmatched", self.events_unmatched),
        ];
        for (name, value) in counters {
            let _ = writeln!(text, "{name} {value}");
        }
        let errors: Vec<String> = self.errors.iter().map(|(code, count)| format!("{code}:{count}")).collect();
        let _ = writeln!(text, "errors {}", errors.join(","));
        let timeline: Vec<String> = self.timeline.iter().map(u64::to_string).collect();
        let _ = writeln!(text, "timeline {}", timeline.join(","));
        let _ = writeln!(text, "latency {}", encode_histogram(&self.latency_us));
        for histogram in &self.latency_us_by_second {
            let _ = writeln!(text, "second {}", encode_histogram(histogram));
        }
        if let Some(failure) = &self.failure {
            let _ = writeln!(text, "failure {}", failure.replace('\n', " "));
        }
        text
    }

    pub fn decode(text: &str) -> Result<SessionStats, String> {
        let mut stats = SessionStats::new();
        for line in text.lines() {
            let (name, value) = line.split_once(' ').unwrap_or((line, ""));
            let number = || value.parse::<u64>().map_err(|_| format!("bad {name} in generator output: {value}"));
            match name {
                "operations" => stats.operations = number()?,
                "behind_schedule" => stats.behind_schedule = number()?,
                "writes" => stats.writes = number()?,
                "violations" => stats.violations = number()?,
                "events_delivered" => stats.events_delivered = number()?,
                "events_expected" => stats.events_expected = number()?,
                "events_lost" => stats.events_lost = number()?,
                "events_unmatched" => stats.events_unmatched = number()?,
                "errors" => {
                    for (code, count) in pairs(value)? {
                        stats.errors.insert(code as i32, count);
                    }
                }
                "timeline" => {
                    stats.timeline = value
                        .split(',')
                        .filter(|count| !count.is_empty())
                        .map(|count| count.parse().map_err(|_| format!("bad timeline: {value}")))
                        .collect::<Result<_, _>>()?;
                }
                "latency" => decode_histogram(value, &mut stats.latency_us)?,
                "second" => {
                    let mut histogram = second_histogram();
                    decode_histogram(value, &mut histogram)?;
                    stats.latency_us_by_second.push(histogram);
                }
                "failure" => stats.failure = Some(value.to_owned()),
                _ => return Err(format!("unknown line in generator output: {line}")),
            }
        }
        Ok(stats)
    }
}

fn second_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 1).expect("valid bounds")
}

fn encode_histogram<T: Counter>(histogram: &Histogram<T>) -> String {
    let pairs: Vec<String> = histogram
        .iter_recorded()
        .map(|bucket| format!("{}:{}", bucket.value_iterated_to(), bucket.count_at_value().as_u64()))
        .collect();
    pairs.join(",")
}

fn decode_histogram<T: Counter>(text: &str, histogram: &mut Histogram<T>) -> Result<(), String> {
    for (value, count) in pairs(text)? {
        let count = T::from_u64(count).ok_or_else(|| format!("histogram count {count} out of range"))?;
        histogram.record_n(value as u64, count).map_err(|error| format!("bad histogram: {error}"))?;
    }
    Ok(())
}

/// `a:b,c:d` as number pairs; the first of a pair may be negative (error codes).
fn pairs(text: &str) -> Result<Vec<(i64, u64)>, String> {
    text.split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, count) = pair.split_once(':').ok_or_else(|| format!("bad pair {pair}"))?;
            Ok((
                key.parse().map_err(|_| format!("bad pair {pair}"))?,
                count.parse().map_err(|_| format!("bad pair {pair}"))?,
            ))
        })
        .collect()
}

/// Accounts one measured reply: its latency in the run's and its second's histograms,
/// the per-second count, its error code if any, and progress.
pub fn record(stats: &mut SessionStats, measure_from: Instant, latency: Duration, now: Instant, error: i32) {
    let latency_us = (latency.as_micros() as u64).clamp(1, LATENCY_US_MAX);
    let _ = stats.latency_us.record(latency_us);
    stats.operations += 1;
    let second = now.duration_since(measure_from).as_secs() as usize;
    if stats.timeline.len() <= second {
        stats.timeline.resize(second + 1, 0);
        stats.latency_us_by_second.resize_with(second + 1, second_histogram);
    }
    stats.timeline[second] += 1;
    let _ = stats.latency_us_by_second[second].record(latency_us);
    if error != 0 {
        *stats.errors.entry(error).or_default() += 1;
    }
    stats.unreported += 1;
    if stats.unreported >= PROGRESS_BATCH {
        stats.flush_progress();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_survive_the_text_form_a_generator_process_prints() {
        let mut stats = SessionStats::new();
        let start = Instant::now();
        for (offset_ms, latency_us, error) in [(10, 120, 0), (20, 450, -101), (1500, 9000, 0), (1600, 75, -110)] {
            let now = start + Duration::from_millis(offset_ms);
            record(&mut stats, start, Duration::from_micros(latency_us), now, error);
        }
        stats.violations = 2;
        stats.events_lost = 1;
        stats.failure = Some("session 3: reset".into());
        let decoded = SessionStats::decode(&stats.encode()).expect("decodes");
        assert_eq!(decoded.operations, 4);
        assert_eq!(decoded.timeline, vec![2, 2]);
        assert_eq!(decoded.errors, BTreeMap::from([(-110, 1), (-101, 1)]));
        assert_eq!((decoded.violations, decoded.events_lost), (2, 1));
        assert_eq!(decoded.failure.as_deref(), Some("session 3: reset"));
        assert_eq!(decoded.latency_us.len(), 4);
        assert_eq!(decoded.latency_us.max(), stats.latency_us.max());
        assert_eq!(decoded.latency_us.value_at_quantile(0.5), stats.latency_us.value_at_quantile(0.5));
        assert_eq!(decoded.latency_us_by_second.len(), 2);
        assert_eq!(decoded.latency_us_by_second[1].len(), 2);
        assert!(decoded.latency_us_by_second[1].max() >= 9000);
    }

    #[test]
    fn merging_adds_counts_second_by_second() {
        let start = Instant::now();
        let mut one = SessionStats::new();
        let mut two = SessionStats::new();
        record(&mut one, start, Duration::from_micros(100), start, 0);
        record(&mut two, start, Duration::from_micros(200), start + Duration::from_millis(2100), 0);
        one.merge(&two);
        assert_eq!(one.timeline, vec![1, 0, 1]);
        assert_eq!(one.latency_us_by_second.len(), 3);
        assert_eq!(one.latency_us_by_second[1].len(), 0);
        assert_eq!(one.operations, 2);
        one.truncate_seconds(2);
        assert_eq!(one.timeline, vec![1, 0]);
        assert_eq!(one.latency_us_by_second.len(), 2);
    }
}
