//! What a core keeps for each client connection: its session, the requests waiting for
//! their turn, and the bytes waiting to be written.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use glommio::channels::local_channel::LocalSender;

use crate::proto::request::Request;
use crate::session::replies::WriteKind;
use crate::session::ConnectionId;

/// A connection's output is capped (`output_cap_bytes`): a client that stops reading while
/// its events pile up is disconnected instead of growing the server without bound. The
/// cap leaves room above the high water mark for every waiting read to be answered at
/// once with a reply as large as a client accepts (jute.maxbuffer), so a client that
/// pipelines large reads is paused, never cut off, as ZooKeeper would keep it.
pub fn output_cap_bytes(jute_max_buffer_bytes: usize) -> usize {
    OUTPUT_BYTES_HIGH_WATER + QUEUED_READS_MAX * jute_max_buffer_bytes.max(1024)
}
/// Above this the connection stops reading requests until the output drains.
pub const OUTPUT_BYTES_HIGH_WATER: usize = 4 * 1024 * 1024;
/// Requests a connection may have in flight before it stops reading.
pub const QUEUED_REQUESTS_MAX: usize = 10_000;
/// Reads a connection may have waiting (for its earlier writes, or for this core to catch
/// up) before it stops reading. They are answered at once when they can be, so this bounds
/// the burst of replies that lands in the output past the high water mark: a client that
/// pipelines reads of large nodes and never reads the answers is held back before its
/// output reaches the cap, and keeps its connection, as ZooKeeper keeps it.
pub const QUEUED_READS_MAX: usize = 64;

/// A request waiting for its turn. Per-session order: a read queued behind a write is
/// served only after that write is applied (ZooKeeper's CommitProcessor rule).
#[derive(Debug)]
pub enum Queued {
    Write {
        xid: i32,
        kind: WriteKind,
        received: Instant,
    },
    Close {
        xid: i32,
        received: Instant,
    },
    Sync {
        xid: i32,
        path: String,
        received: Instant,
        /// Everything ordered before it is delivered: it is answered in its turn, once
        /// the reads ahead of it are.
        synced: bool,
    },
    /// A read, served once the core's tree has applied `min_zxid`: everything committed
    /// when the read arrived.
    Read {
        xid: i32,
        request: Request,
        received: Instant,
        min_zxid: i64,
    },
}

impl Queued {
    /// Whether the request waits for the ordering point (as opposed to the queue ahead).
    pub fn is_ordered(&self) -> bool {
        !matches!(self, Queued::Read { .. })
    }

    pub fn xid(&self) -> i32 {
        match self {
            Queued::Write { xid, .. }
            | Queued::Close { xid, .. }
            | Queued::Sync { xid, .. }
            | Queued::Read { xid, .. } => *xid,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for the ordering point to open or re-attach the session.
    Connecting,
    Connected,
    /// Flushing the last bytes, then the socket closes.
    Closing,
}

pub struct Connection {
    pub id: ConnectionId,
    pub peer: SocketAddr,
    pub phase: Phase,
    pub session_id: i64,
    pub timeout_ms: i32,
    /// Whether the client sent the readOnly byte in its ConnectRequest.
    pub read_only_byte: Option<bool>,
    /// A read-only session of this member's own (readonlymode.enabled, no quorum): its
    /// writes fail with NotReadOnly and nothing of it reaches a leader.
    pub read_only_session: bool,
    pub queue: VecDeque<Queued>,
    /// How many of `queue` are reads.
    pub queued_reads: usize,
    pub output: Vec<u8>,
    /// `output_cap_bytes` for the server's jute.maxbuffer.
    pub output_cap_bytes: usize,
    /// Wakes the connection's writer task.
    pub writer_wake: LocalSender<()>,
    /// Wakes the reader when the handshake completes or the output drains.
    pub reader_wake: LocalSender<()>,
    pub received: u64,
    pub sent: u64,
    pub last_zxid: i64,
    /// The identities ACLs are checked against: ip always, digest and super after auth.
    /// Shared with the ordering point, which checks writes. In `auth_ids`' order.
    pub identities: std::sync::Arc<Vec<(String, String)>>,
    /// The same identities, kept in ZooKeeper's order (see `AuthIds`).
    pub auth_ids: crate::session::auth::AuthIds,
    /// The subject of the client's TLS certificate (secure port), for `addauth x509`.
    pub certificate_subject: Option<String>,
    /// For `cons`: when the session was established, and per-request figures.
    pub stats: ConnectionStats,
}

/// What `cons` reports of a connection (ZooKeeper's ServerCnxn stats).
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectionStats {
    pub established_ms: i64,
    pub last_cxid: i32,
    pub last_response_ms: i64,
    pub latency_last_ms: u64,
    pub latency_min_ms: u64,
    pub latency_max_ms: u64,
    pub latency_total_ms: u64,
    pub latency_count: u64,
}

impl ConnectionStats {
    pub fn record(&mut self, cxid: i32, latency_ms: u64, now_ms: i64) {
        self.last_cxid = cxid;
        self.last_response_ms = now_ms;
        self.latency_last_ms = latency_ms;
        self.latency_min_ms = if self.latency_count == 0 { latency_ms } else { self.latency_min_ms.min(latency_ms) };
        self.latency_max_ms = self.latency_max_ms.max(latency_ms);
        self.latency_total_ms += latency_ms;
        self.latency_count += 1;
    }

    /// `crst` (ZooKeeper's `ServerCnxn.resetStats`): everything but when the connection
    /// was established starts again.
    pub fn reset(&mut self) {
        *self = ConnectionStats { established_ms: self.established_ms, last_cxid: -1, ..ConnectionStats::default() };
    }
}

impl Connection {
    /// Asks the writer to flush. A full wake-up channel means a wake-up is already
    /// pending, which is all we need.
    pub fn wake_writer(&self) {
        let _ = self.writer_wake.try_send(());
    }

    pub fn wake_reader(&self) {
        let _ = self.reader_wake.try_send(());
    }

    /// Starts closing: the writer flushes what is queued and shuts the socket.
    pub fn close(&mut self) {
        self.phase = Phase::Closing;
        self.wake_writer();
        self.wake_reader();
    }

    /// Called after appending to the output: wakes the writer, and disconnects a client
    /// whose unread output passed the cap.
    pub fn output_appended(&mut self) {
        self.wake_writer();
        if self.output.len() > self.output_cap_bytes {
            tracing::warn!(
                session = format_args!("{:#x}", self.session_id),
                output = self.output.len(),
                queued = self.queue.len(),
                reads = self.queued_reads,
                "output over limit; closing connection"
            );
            self.close();
        }
    }
}
