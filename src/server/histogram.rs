//! Bucketed histograms of atomic counters: recorded from any core without a lock, read
//! by the metrics endpoint as Prometheus histograms, and as the quantiles of ZooKeeper's
//! summaries (`fsynctime`, `readlatency`, ...) where a dashboard expects those.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds for durations in microseconds: 10 us to 10 s, roughly 1-2.5-5 per decade.
pub const DURATION_BOUNDS_US: &[u64] = &[
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// Upper bounds for counts (records in a group commit): powers of two to 4096.
pub const COUNT_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// One counter per bound, and a last one for values above every bound.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

/// What a histogram held at one moment: cumulative counts per bound, as Prometheus
/// exposes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub cumulative: Vec<(u64, u64)>,
    pub count: u64,
    pub sum: u64,
    /// The smallest and largest value recorded (0 when empty).
    pub min: u64,
    pub max: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [u64]) -> Histogram {
        assert!(!bounds.is_empty() && bounds.windows(2).all(|pair| pair[0] < pair[1]), "bounds ascend");
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }

    pub fn record(&self, value: u64) {
        // min and max first, published by the bucket's release: a snapshot that counts
        // this value sees them.
        self.min.fetch_min(value, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.buckets[bucket].fetch_add(1, Ordering::Release);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            running += bucket.load(Ordering::Acquire);
            cumulative.push((*bound, running));
        }
        let count = running + self.buckets[self.bounds.len()].load(Ordering::Acquire);
        let (min, max) = match count {
            0 => (0, 0),
            _ => (self.min.load(Ordering::Relaxed), self.max.load(Ordering::Relaxed)),
        };
        HistogramSnapshot { cumulative, count, sum: self.sum.load(Ordering::Relaxed), min, max }
    }
}

impl HistogramSnapshot {
    /// One snapshot of several histograms with the same bounds (one per core).
    pub fn merged(snapshots: impl IntoIterator<Item = HistogramSnapshot>) -> HistogramSnapshot {
        let mut merged: Option<HistogramSnapshot> = None;
        for snapshot in snapshots {
            let Some(total) = merged.as_mut() else {
                merged = Some(snapshot);
                continue;
            };
            assert_eq!(total.cumulative.len(), snapshot.cumulative.len(), "merged histograms share bounds");
            for ((bound, count), (other_bound, other_count)) in total.cumulative.iter_mut().zip(&snapshot.cumulative) {
                assert_eq!(bound, other_bound, "merged histograms share bounds");
                *count += other_count;
            }
            if snapshot.count > 0 {
                total.min = if total.count == 0 { snapshot.min } else { total.min.min(snapshot.min) };
                total.max = total.max.max(snapshot.max);
            }
            total.count += snapshot.count;
            total.sum += snapshot.sum;
        }
        merged.expect("at least one histogram")
    }

    /// The bound of the first bucket that holds the `quantile` of the values (the largest
    /// bound for values above every bound); 0 when empty.
    pub fn quantile(&self, quantile: f64) -> u64 {
        assert!((0.0..=1.0).contains(&quantile));
        if self.count == 0 {
            return 0;
        }
        let rank = (quantile * self.count as f64).ceil().max(1.0) as u64;
        self.cumulative
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .or(self.cumulative.last())
            .map_or(0, |(bound, _)| *bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_first_bucket_whose_bound_is_not_below_them() {
        let histogram = Histogram::new(&[10, 100]);
        for value in [0, 10, 11, 100, 101] {
            histogram.record(value);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.cumulative, vec![(10, 2), (100, 4)]);
        assert_eq!((snapshot.count, snapshot.sum), (5, 222));
        assert_eq!((snapshot.min, snapshot.max), (0, 101));
    }

    #[test]
    fn merged_snapshots_add_counts_and_keep_the_extremes() {
        let (first, second, empty) =
            (Histogram::new(&[10, 100]), Histogram::new(&[10, 100]), Histogram::new(&[10, 100]));
        first.record(5);
        second.record(50);
        second.record(500);
        let merged = HistogramSnapshot::merged([empty.snapshot(), first.snapshot(), second.snapshot()]);
        assert_eq!(merged.cumulative, vec![(10, 1), (100, 2)]);
        assert_eq!((merged.count, merged.sum, merged.min, merged.max), (3, 555, 5, 500));
    }

    #[test]
    fn a_quantile_is_the_bound_of_the_bucket_that_reaches_its_rank() {
        let histogram = Histogram::new(COUNT_BOUNDS);
        assert_eq!(histogram.snapshot().quantile(0.5), 0, "empty");
        for value in [1, 1, 1, 3, 100] {
            histogram.record(value);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.quantile(0.5), 1);
        assert_eq!(snapshot.quantile(0.8), 4);
        assert_eq!(snapshot.quantile(0.99), 128);
    }
}
