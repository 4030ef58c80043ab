//! The server's batches: framed rkyv records (`log::record`), shared by reference count.
//! The same bytes are written to the leader's log, sent to followers, appended to theirs
//! and applied in place by every core.

use std::sync::Arc;

use rkyv::util::AlignedVec;

use super::payload::Payload;
use crate::log::record;
use crate::txn::Txn;

#[derive(Debug, Clone)]
pub struct RecordBatch {
    pub bytes: Arc<AlignedVec<16>>,
    pub first_zxid: i64,
    pub last_zxid: i64,
}

impl RecordBatch {
    /// A batch of records the caller framed, from `first_zxid` to `last_zxid`.
    pub fn new(bytes: Arc<AlignedVec<16>>, first_zxid: i64, last_zxid: i64) -> RecordBatch {
        assert!(!bytes.is_empty() && first_zxid <= last_zxid);
        RecordBatch { bytes, first_zxid, last_zxid }
    }
}

impl Payload for RecordBatch {
    /// A snapshot image (`tree::snapshot`) at the leader's applied zxid.
    type Snapshot = Arc<Vec<u8>>;

    fn first_zxid(&self) -> i64 {
        self.first_zxid
    }

    fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    fn size_bytes(&self) -> usize {
        self.bytes.len()
    }

    fn slice(&self, after: i64, through: i64) -> RecordBatch {
        let bytes = record::slice(&self.bytes, after, through);
        let first = record::Records::written(&bytes).next().and_then(Result::ok).map(|(zxid, _)| zxid);
        let first_zxid = first.expect("a slice holds records");
        RecordBatch::new(Arc::new(bytes), first_zxid, through.min(self.last_zxid))
    }

    fn epoch_marker(zxid: i64) -> RecordBatch {
        let mut bytes = AlignedVec::<16>::new();
        record::append(&mut bytes, &Txn::epoch_marker(zxid));
        RecordBatch::new(Arc::new(bytes), zxid, zxid)
    }
}
