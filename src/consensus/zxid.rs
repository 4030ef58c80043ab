//! Transaction ids: `epoch << 32 | counter`, as ZooKeeper's ZxidUtils.

/// Hands out zxids in order within one epoch.
#[derive(Debug, Clone)]
pub struct ZxidCounter {
    last: i64,
}

impl ZxidCounter {
    pub fn new(epoch: u32, last_counter: u32) -> ZxidCounter {
        ZxidCounter { last: ((epoch as i64) << 32) | last_counter as i64 }
    }

    pub fn last(&self) -> i64 {
        self.last
    }

    /// The next zxid. The counter must not wrap into the next epoch: ZooKeeper forces a
    /// new election when it would, and so will the ensemble here.
    pub fn next_zxid(&mut self) -> i64 {
        assert!(self.last & 0xffff_ffff != 0xffff_ffff, "zxid counter exhausted in epoch");
        self.last += 1;
        self.last
    }
}

pub fn epoch(zxid: i64) -> u32 {
    (zxid >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxids_are_epoch_then_counter() {
        let mut counter = ZxidCounter::new(1, 0);
        assert_eq!(counter.next_zxid(), 0x1_0000_0001);
        assert_eq!(epoch(counter.last()), 1);
    }
}
