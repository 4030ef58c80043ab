//! The progress bar a terminal shows during a run: warm-up, then the measured seconds
//! with the throughput of the last second, redrawn in place on standard error.

use std::io::Write as _;
use std::time::{Duration, Instant};

use super::session::Schedule;

/// Characters of the bar itself.
const BAR_WIDTH: usize = 30;

pub struct ProgressBar {
    enabled: bool,
    last_count: u64,
    last_at: Option<Instant>,
    rate_per_s: f64,
}

impl ProgressBar {
    pub fn new(enabled: bool) -> ProgressBar {
        ProgressBar { enabled, last_count: 0, last_at: None, rate_per_s: 0.0 }
    }

    /// Redraws the bar for `now`, with `count` measured operations so far.
    pub fn draw(&mut self, schedule: &Schedule, now: Instant, count: u64, unit: &str) {
        if !self.enabled {
            return;
        }
        let line = if now < schedule.measure_from {
            format!("warming up, measuring in {:.1} s", (schedule.measure_from - now).as_secs_f64())
        } else {
            if self.last_at.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
                if let Some(at) = self.last_at {
                    self.rate_per_s = (count - self.last_count) as f64 / now.duration_since(at).as_secs_f64();
                }
                self.last_count = count;
                self.last_at = Some(now);
            }
            let total = schedule.stop_at.duration_since(schedule.measure_from).as_secs_f64();
            let done = now.min(schedule.stop_at).duration_since(schedule.measure_from).as_secs_f64();
            let filled = ((done / total) * BAR_WIDTH as f64).round() as usize;
            format!(
                "[{}{}] {:.0}/{total:.0} s  {:.0} {unit}/s",
                "#".repeat(filled.min(BAR_WIDTH)),
                ".".repeat(BAR_WIDTH - filled.min(BAR_WIDTH)),
                done.floor(),
                self.rate_per_s
            )
        };
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[K{line}");
        let _ = stderr.flush();
    }

    /// Clears the bar before the report is printed.
    pub fn clear(&self) {
        if self.enabled {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[K");
            let _ = stderr.flush();
        }
    }
}
