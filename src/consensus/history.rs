//! The shape of a log: which zxids it holds, without the records themselves.
//!
//! A leader hands out consecutive counters within its epoch, so a log is a committed base
//! (everything up to a snapshot, identical on every member) followed by at most one run
//! of consecutive zxids per epoch. Two logs that hold the same zxid hold the same record
//! there and the same records before it (one leader per epoch, and a follower appends only
//! after the record it already shares with the leader). So the point where two logs part
//! is the largest zxid both hold, found from their shapes alone: the leader cuts a
//! follower back to it (ZooKeeper's TRUNC) and sends what follows (DIFF).

use super::zxid::epoch;

/// Consecutive zxids of one epoch, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub first: i64,
    pub last: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// Everything up to and including `base` is committed (a snapshot holds it).
    base: i64,
    /// After `base`, in zxid order, at most one run per epoch.
    runs: Vec<Run>,
}

/// Runs per history: one per epoch the log spans. A log never spans more epochs than it
/// has records, and the leader sends its whole history in a rejection, so keep it small.
pub const RUNS_MAX: usize = 4096;

impl History {
    pub fn new(base: i64) -> History {
        assert!(base >= 0);
        History { base, runs: Vec::new() }
    }

    pub fn base(&self) -> i64 {
        self.base
    }

    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// Rebuilds a history from its parts, as received from a peer; None if they break
    /// the invariants (a peer's bytes are not trusted).
    pub fn from_parts(base: i64, runs: Vec<Run>) -> Option<History> {
        if base < 0 || runs.len() > RUNS_MAX {
            return None;
        }
        let mut previous = base;
        for run in &runs {
            let ordered = run.first > previous && run.last >= run.first;
            if !ordered || epoch(run.first) != epoch(run.last) {
                return None;
            }
            previous = run.last;
        }
        let epochs_rise = runs.windows(2).all(|pair| epoch(pair[0].last) < epoch(pair[1].first));
        epochs_rise.then_some(History { base, runs })
    }

    /// The last zxid of the log (the base if nothing follows it).
    pub fn last(&self) -> i64 {
        self.runs.last().map_or(self.base, |run| run.last)
    }

    /// Whether the log holds `zxid`. Anything at or below the base counts: it is
    /// committed, and every leader holds every committed record.
    pub fn contains(&self, zxid: i64) -> bool {
        zxid <= self.base || self.runs.iter().any(|run| run.first <= zxid && zxid <= run.last)
    }

    /// The largest zxid the log holds below `zxid`.
    pub fn before(&self, zxid: i64) -> i64 {
        for run in self.runs.iter().rev() {
            if run.first < zxid {
                return run.last.min(zxid - 1);
            }
        }
        self.base.min(zxid - 1)
    }

    /// The last zxid of `first..=last` (consecutive, one epoch) the log holds, if any. A
    /// log holds a prefix of such a range.
    pub fn held_prefix(&self, first: i64, last: i64) -> Option<i64> {
        assert!(first <= last && epoch(first) == epoch(last));
        let (mut low, mut high) = (first, last + 1);
        // The first zxid of the range the log does not hold.
        while low < high {
            let middle = low + (high - low) / 2;
            if self.contains(middle) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        (low > first).then_some(low - 1)
    }

    /// Appends the zxids `first..=last`: consecutive after the last run of the same
    /// epoch, or the start of a later epoch.
    pub fn append(&mut self, first: i64, last: i64) {
        assert!(first <= last, "an appended run is not empty");
        assert!(epoch(first) == epoch(last), "an appended run stays in one epoch");
        assert!(first > self.last(), "zxids are appended in order: {first:#x} after {:#x}", self.last());
        match self.runs.last_mut() {
            Some(run) if epoch(run.last) == epoch(first) => {
                assert_eq!(first, run.last + 1, "a leader's zxids are consecutive within its epoch");
                run.last = last;
            }
            _ => {
                assert!(self.runs.len() < RUNS_MAX, "too many epochs in one log");
                self.runs.push(Run { first, last });
            }
        }
    }

    /// Drops every zxid after `zxid`, which the log must hold.
    pub fn truncate_after(&mut self, zxid: i64) {
        assert!(self.contains(zxid), "truncating at {zxid:#x}, which the log does not hold");
        assert!(zxid >= self.base, "the committed base is never cut");
        self.runs.retain(|run| run.first <= zxid);
        if let Some(run) = self.runs.last_mut() {
            run.last = run.last.min(zxid);
        }
        assert_eq!(self.last(), zxid);
    }

    /// Everything up to `zxid` is now in a snapshot: the log restarts from there.
    pub fn reset(&mut self, base: i64) {
        self.base = base;
        self.runs.clear();
    }

    /// The largest zxid both logs hold: where they part.
    pub fn common_point(&self, other: &History) -> i64 {
        let mut common = self.base.min(other.base);
        for mine in &self.runs {
            for theirs in other.runs.iter().filter(|theirs| epoch(theirs.first) == epoch(mine.first)) {
                let (low, high) = (mine.first.max(theirs.first), mine.last.min(theirs.last));
                if low <= high {
                    common = common.max(high);
                }
            }
        }
        if self.contains(other.base) {
            common = common.max(other.base);
        }
        if other.contains(self.base) {
            common = common.max(self.base);
        }
        assert!(self.contains(common) && other.contains(common));
        common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zxid(epoch: i64, counter: i64) -> i64 {
        epoch << 32 | counter
    }

    #[test]
    fn a_log_holds_runs_of_consecutive_zxids_per_epoch() {
        let mut history = History::new(0);
        history.append(zxid(1, 0), zxid(1, 5));
        history.append(zxid(1, 6), zxid(1, 9));
        history.append(zxid(3, 0), zxid(3, 2));
        assert_eq!(history.runs().len(), 2);
        assert!(history.contains(zxid(1, 7)));
        assert!(!history.contains(zxid(2, 1)));
        assert_eq!(history.last(), zxid(3, 2));
    }

    #[test]
    fn two_logs_part_at_the_last_zxid_they_share() {
        // A follower wrote 1:0..1:9 and 2:0..2:3 that the new leader never saw; the leader
        // has 1:0..1:7 then 3:0..3:4. They share up to 1:7: TRUNC there, then DIFF.
        let mut follower = History::new(0);
        follower.append(zxid(1, 0), zxid(1, 9));
        follower.append(zxid(2, 0), zxid(2, 3));
        let mut leader = History::new(0);
        leader.append(zxid(1, 0), zxid(1, 7));
        leader.append(zxid(3, 0), zxid(3, 4));
        assert_eq!(leader.common_point(&follower), zxid(1, 7));
        assert_eq!(follower.common_point(&leader), zxid(1, 7));
        follower.truncate_after(zxid(1, 7));
        assert_eq!(follower.last(), zxid(1, 7));
        assert_eq!(follower.runs().len(), 1);
    }

    #[test]
    fn a_snapshot_base_counts_as_shared() {
        let mut leader = History::new(0);
        leader.append(zxid(1, 0), zxid(1, 100));
        let mut follower = History::new(zxid(1, 50));
        follower.append(zxid(1, 51), zxid(1, 60));
        assert_eq!(leader.common_point(&follower), zxid(1, 60));
    }

    #[test]
    fn a_log_holds_a_prefix_of_a_leaders_batch() {
        let mut history = History::new(0);
        history.append(zxid(1, 0), zxid(1, 5));
        assert_eq!(history.held_prefix(zxid(1, 3), zxid(1, 9)), Some(zxid(1, 5)));
        assert_eq!(history.held_prefix(zxid(2, 0), zxid(2, 9)), None);
        assert_eq!(history.before(zxid(2, 0)), zxid(1, 5));
        assert_eq!(history.before(zxid(1, 3)), zxid(1, 2));
    }

    #[test]
    fn a_peers_history_that_breaks_the_rules_is_refused() {
        assert!(History::from_parts(0, vec![Run { first: 5, last: 3 }]).is_none());
        assert!(History::from_parts(10, vec![Run { first: 5, last: 12 }]).is_none());
        let two_epochs = Run { first: zxid(1, 1), last: zxid(2, 1) };
        assert!(History::from_parts(0, vec![two_epochs]).is_none());
        assert!(History::from_parts(0, vec![Run { first: 1, last: 3 }]).is_some());
    }
}
