//! The in-memory log: the most recent committed batches, kept until the durable log
//! (segment files with group commit) replaces it. It is bounded, so a long-running
//! server does not grow without limit; the tree holds the state.

use std::collections::VecDeque;
use std::sync::Arc;

use rkyv::util::AlignedVec;

pub struct MemoryLog {
    batches: VecDeque<Arc<AlignedVec<16>>>,
    retained_bytes: usize,
    retained_bytes_max: usize,
    appended_records: u64,
}

impl MemoryLog {
    pub fn new(retained_bytes_max: usize) -> MemoryLog {
        MemoryLog { batches: VecDeque::new(), retained_bytes: 0, retained_bytes_max, appended_records: 0 }
    }

    /// Appends a batch of framed records; drops the oldest batches beyond the bound.
    pub fn append(&mut self, batch: Arc<AlignedVec<16>>, record_count: u64) {
        self.retained_bytes += batch.len();
        self.appended_records += record_count;
        self.batches.push_back(batch);
        while self.retained_bytes > self.retained_bytes_max && self.batches.len() > 1 {
            let oldest = self.batches.pop_front().expect("more than one batch");
            self.retained_bytes -= oldest.len();
        }
        debug_assert!(self.batches.iter().map(|batch| batch.len()).sum::<usize>() == self.retained_bytes);
    }

    pub fn appended_records(&self) -> u64 {
        self.appended_records
    }

    pub fn retained_bytes(&self) -> usize {
        self.retained_bytes
    }
}
