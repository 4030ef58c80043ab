//! What the consensus core needs to know of a batch of records. The server's batches are
//! framed rkyv records (`log::record`); the simulator's are plain lists.

/// A run of records with consecutive zxids of one epoch, as the leader made it.
pub trait Payload: Clone + std::fmt::Debug {
    /// A leader's state machine at one zxid, for a follower too far behind (SNAP).
    type Snapshot: Clone + std::fmt::Debug + PartialEq + Eq;

    fn first_zxid(&self) -> i64;
    fn last_zxid(&self) -> i64;
    fn size_bytes(&self) -> usize;
    /// The records with zxids in `(after, through]`, which this batch holds.
    fn slice(&self, after: i64, through: i64) -> Self;
    /// The record that opens an epoch: zxid `epoch << 32` (counter 0, which no client
    /// write takes). Once a quorum holds it, everything before it is committed.
    fn epoch_marker(zxid: i64) -> Self;
}
