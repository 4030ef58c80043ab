//! Messages between cores. Every core has one bounded channel to the ordering point on
//! core 0 and receives one ordered stream back: batches of committed records followed
//! by the control messages that must be seen after them.

use std::sync::Arc;

use crate::proto::connect::PASSWORD_SIZE_BYTES;
use crate::proto::request::Request;
use crate::session::ConnectionId;
use crate::tree::{DataTree, Outcome, Trigger};

/// From a session's core to the ordering point.
#[derive(Debug)]
pub enum ToLeader {
    /// A new session (`session_id == 0`) or a re-attach, from a connection on `core` of
    /// ensemble member `member` (the ordering point's own member for its own cores).
    Connect { member: u64, core: usize, connection: ConnectionId, session_id: i64, password: Vec<u8>, timeout_ms: i32 },
    /// A write request, in the session's order, with the request frame as the client sent
    /// it (`frame`), which an ensemble follower forwards to its leader.
    /// A write, from `connection` on `member`.
    Write {
        member: u64,
        connection: ConnectionId,
        session_id: i64,
        identities: Arc<Vec<(String, String)>>,
        xid: i32,
        request: Request,
        frame: Vec<u8>,
    },
    /// A sync: answered once everything ordered before it is applied on the core.
    Sync { member: u64, core: usize, connection: ConnectionId, xid: i32 },
    /// Sessions with activity since the last touch.
    Touch { sessions: Vec<i64> },
    /// A four-letter word wants fresh numbers from every core of this member; never
    /// leaves the member.
    PublishListings,
}

/// What the ordering point tells one core after a batch of records.
#[derive(Debug, Clone)]
pub enum Control {
    /// The answer to `ToLeader::Connect`: the negotiated session, or `None` if the
    /// session is unknown or the password is wrong.
    Connected { connection: ConnectionId, session: Option<(i64, [u8; PASSWORD_SIZE_BYTES])> },
    /// Everything ordered before the sync is applied on this core.
    Synced { connection: ConnectionId, xid: i32 },
    /// The session now lives on another connection: close the one here, except
    /// `keep` (the connection that re-attached, if it is on this core).
    SessionMoved { session_id: i64, keep: Option<ConnectionId> },
    /// This member left its quorum or changed leader: its clients reconnect, to it or
    /// another member (ZooKeeper closes them the same way when a server stops serving).
    CloseAll,
    /// The tree was replaced by a leader's snapshot (SNAP): every connection closes, as
    /// when the member leaves its quorum, and the core reads the batch's version, older
    /// or newer than its own.
    Replaced,
    /// Publish the connection list and numbers the four-letter words report (the watch
    /// listing too if one asked for it).
    PublishListings,
    /// The member has a quorum again: its read-only sessions end (ZooKeeper's read-only
    /// server shuts down the same way) and their clients reconnect read-write.
    CloseReadOnly,
}

/// A Routed control with this core number is for every core of the member.
pub const EVERY_CORE: u32 = u32::MAX;

/// A control for a core of another ensemble member, sent over the peer link.
#[derive(Debug, Clone)]
pub struct RemoteControl {
    pub member: u64,
    pub core: u32,
    pub after_zxid: i64,
    pub control: Control,
}

/// A control message and its place in the committed stream: it takes effect once the
/// core has applied this zxid and before any record after it, exactly where it was
/// ordered (a sync answered after the writes before it and before the writes after it).
pub type PlacedControl = (i64, Control);

/// One step of the committed stream to a core.
#[derive(Debug)]
pub struct CommittedBatch {
    /// What applying the batch's records did, shared by every core.
    pub applied: Arc<AppliedBatch>,
    pub controls: Vec<PlacedControl>,
}

/// A batch of committed records applied once, on core 0: the tree version it produced
/// and, per record, what each core needs to fire watches and answer the write.
pub struct AppliedBatch {
    /// The tree as of the batch's last record (the core's current one if it has none).
    pub version: Arc<DataTree>,
    /// `version`'s number (`PublishedVersion`).
    pub number: u64,
    pub writes: Vec<AppliedWrite>,
}

impl std::fmt::Debug for AppliedBatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AppliedBatch")
            .field("last_zxid", &self.version.last_zxid())
            .field("writes", &self.writes.len())
            .finish()
    }
}

/// One applied record.
pub struct AppliedWrite {
    /// The tree just before this record, kept only when its session sent it after a read
    /// that is still waiting: that read is served from this.
    pub version_before: Option<Arc<DataTree>>,
    pub zxid: i64,
    pub session_id: i64,
    pub cxid: i32,
    pub is_close: bool,
    pub outcome: Outcome,
    pub triggers: Vec<Trigger>,
}
