//! Transaction ids: `epoch << 32 | counter`, as ZooKeeper's ZxidUtils.

/// Hands out zxids in order within one epoch.
#[derive(Debug, Clone)]
pub struct ZxidCounter {
    last: i64,
}

impl ZxidCounter {
    pub fn new(epoch: u32, last_counter: u32) -> ZxidCounter {
        ZxidCounter { last: make_zxid(epoch, last_counter) }
    }

    pub fn last(&self) -> i64 {
        self.last
    }

    /// The next zxid. The counter never wraps into the next epoch: an ensemble's leader
    /// opens a new epoch before it runs out (`consensus::core`, `counter_limit`).
    pub fn next_zxid(&mut self) -> i64 {
        assert!(self.last & 0xffff_ffff != 0xffff_ffff, "zxid counter exhausted in epoch");
        self.last += 1;
        self.last
    }
}

pub fn make_zxid(epoch: u32, counter: u32) -> i64 {
    ((epoch as i64) << 32) | counter as i64
}

pub fn epoch(zxid: i64) -> u32 {
    (zxid >> 32) as u32
}

pub fn counter(zxid: i64) -> u32 {
    zxid as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxids_are_epoch_then_counter() {
        let mut counter_of_epoch_1 = ZxidCounter::new(1, 0);
        assert_eq!(counter_of_epoch_1.next_zxid(), 0x1_0000_0001);
        assert_eq!(epoch(counter_of_epoch_1.last()), 1);
        assert_eq!(counter(counter_of_epoch_1.last()), 1);
        assert_eq!(make_zxid(7, 9), 0x7_0000_0009);
    }
}
