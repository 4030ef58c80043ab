//! What members of an ensemble say to each other. The consensus core makes and reads
//! these; `server::peer` puts them on the wire.

use super::history::History;
use super::payload::Payload;

/// A member's number, `N` of zoo.cfg's `server.N` and `dataDir/myid`.
pub type MemberId = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<P: Payload> {
    /// A candidate asks for a vote in `epoch`. A pre-vote (`pre`) asks whether the member
    /// would vote, without anyone changing epoch: it is granted only by members that have
    /// lost their leader, so a restarted or cut-off member cannot depose a healthy one.
    Vote {
        epoch: u32,
        last_zxid: i64,
        pre: bool,
    },
    VoteReply {
        for_epoch: u32,
        voter_epoch: u32,
        granted: bool,
        pre: bool,
    },
    /// The leader's log after `prev_zxid`, and its commit point. With no batches it is a
    /// heartbeat (and carries commits).
    Append {
        epoch: u32,
        prev_zxid: i64,
        batches: Vec<P>,
        commit_zxid: i64,
    },
    AppendReply {
        epoch: u32,
        outcome: AppendOutcome,
    },
    /// The leader's own log is durable through `zxid`. Sent only where the leader and one
    /// follower make a quorum (two or three voters): such a follower, durable through the
    /// same records, knows them committed without waiting for the leader's commit point.
    /// It is not answered.
    Durable {
        epoch: u32,
        zxid: i64,
    },
    /// The leader's state at `zxid`, for a follower it can no longer DIFF (SNAP).
    Snapshot {
        epoch: u32,
        zxid: i64,
        data: P::Snapshot,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The follower's log equals the leader's through `zxid`, and is durable through it.
    Ack { zxid: i64 },
    /// The follower does not hold `prev_zxid`: here is its log's shape, to find where the
    /// two part (TRUNC there, DIFF after).
    Diverged { history: History },
    /// The sender's epoch is older than the follower's: it is no longer leader.
    Stale,
}

impl<P: Payload> Message<P> {
    /// The epoch a message speaks for, to drop messages from older epochs.
    pub fn epoch(&self) -> u32 {
        match self {
            Message::Vote { epoch, .. }
            | Message::Append { epoch, .. }
            | Message::AppendReply { epoch, .. }
            | Message::Durable { epoch, .. }
            | Message::Snapshot { epoch, .. } => *epoch,
            Message::VoteReply { voter_epoch, .. } => *voter_epoch,
        }
    }
}
