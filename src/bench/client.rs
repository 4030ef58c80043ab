//! A native-protocol client for the recipe workloads (watch, lock, churn), on `proto`'s
//! codec: requests are encoded and replies decoded by the server's own types. It keeps
//! its buffers across requests and sessions, and pings the server when it has sent
//! nothing for a third of the negotiated session timeout, as a real client does while it
//! waits for a watch. A reply the codec cannot read is an error, never a panic.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::proto::connect::ConnectResponse;
use crate::proto::request::{encode_request, Request};
use crate::proto::response::{decode_notification, decode_reply, ReplyBody, ReplyHeader};
use crate::proto::watch_event::WatcherEvent;
use crate::proto::{frame, opcode};

/// The largest reply accepted (getChildren of a crowded lock parent is the biggest).
const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Requests a client may have sent and not seen answered (the watch writer's depth).
const IN_FLIGHT_MAX: usize = 1 << 16;

/// The buffers a client reads into and encodes into, kept when a session closes so the
/// next session (churn) allocates nothing.
pub struct Buffers {
    /// Bytes received; grows (doubling) only for a frame larger than it.
    pub input: Vec<u8>,
    /// Requests encoded and not yet written.
    pub output: Vec<u8>,
}

impl Buffers {
    pub fn new() -> Buffers {
        Buffers { input: vec![0; 64 * 1024], output: Vec::with_capacity(4 * 1024) }
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// What the server sent: the reply to the oldest request in flight, or a watch event.
pub enum Incoming {
    Reply { header: ReplyHeader, body: Option<ReplyBody> },
    Event(WatcherEvent),
}

pub struct Client {
    stream: TcpStream,
    buffers: Buffers,
    /// The first byte of `buffers.input` not yet handed out as a frame.
    start: usize,
    /// The end of the bytes received in `buffers.input`.
    filled: usize,
    /// The last xid used; requests carry increasing positive xids.
    xid: i32,
    /// Each request sent and not yet answered: its xid and opcode, which says what its
    /// reply holds. The server answers a session's requests in order.
    in_flight: VecDeque<(i32, i32)>,
    /// A ping request frame, encoded once.
    ping: Vec<u8>,
    /// When a request (or ping) was last written, to know when a ping is due.
    last_sent: Instant,
    /// A third of the negotiated session timeout.
    ping_interval: Duration,
}

impl Client {
    /// Opens a TCP connection and a new session on it.
    pub async fn connect(server: SocketAddr, mut buffers: Buffers) -> std::io::Result<Client> {
        let stream = TcpStream::connect(server).await?;
        stream.set_nodelay(true)?;
        buffers.output.clear();
        super::workload::encode_connect(&mut buffers.output);
        let mut ping = Vec::new();
        encode_request(&mut ping, 0, &Request::Ping);
        let mut client = Client {
            stream,
            buffers,
            start: 0,
            filled: 0,
            xid: 0,
            in_flight: VecDeque::new(),
            ping,
            last_sent: Instant::now(),
            ping_interval: Duration::from_secs(10),
        };
        client.send().await?;
        let deadline = Instant::now() + super::session::SETUP_TIMEOUT;
        let frame = client.next_frame(deadline).await?.ok_or_else(|| timed_out("the handshake"))?;
        let response = ConnectResponse::decode(&client.buffers.input[frame]).map_err(invalid)?;
        // A timeout of 0 means the server refused the session.
        if response.timeout_ms <= 0 {
            return Err(std::io::Error::other("the server refused the session"));
        }
        client.ping_interval = Duration::from_millis(response.timeout_ms as u64 / 3).max(Duration::from_millis(50));
        Ok(client)
    }

    /// Gives the buffers back (the connection closes when the stream drops).
    pub fn into_buffers(self) -> Buffers {
        self.buffers
    }

    /// Encodes one request into the output buffer and returns its xid; `send` writes it.
    pub fn request(&mut self, request: &Request) -> i32 {
        assert!(self.in_flight.len() < IN_FLIGHT_MAX, "requests in flight are bounded");
        // Their xids are fixed by the protocol, and their replies are not matched here.
        assert!(!matches!(request, Request::Ping | Request::Auth { .. } | Request::SetWatches(_)), "{request:?}");
        self.xid = self.xid.wrapping_add(1).max(1);
        encode_request(&mut self.buffers.output, self.xid, request);
        self.in_flight.push_back((self.xid, request.opcode()));
        self.xid
    }

    /// Writes every request encoded so far.
    pub async fn send(&mut self) -> std::io::Result<()> {
        assert!(!self.buffers.output.is_empty(), "send without a request");
        self.stream.write_all(&self.buffers.output).await?;
        self.buffers.output.clear();
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Sends one request and waits for its reply, passing over watch events (they are
    /// counted in `events_passed`). Returns the reply's error code (0 for success) and
    /// its body.
    pub async fn call(
        &mut self,
        request: &Request,
        events_passed: &mut u64,
    ) -> std::io::Result<(i32, Option<ReplyBody>)> {
        assert!(self.in_flight.is_empty(), "a call waits for its own reply only");
        let xid = self.request(request);
        self.send().await?;
        let deadline = Instant::now() + super::session::SETUP_TIMEOUT;
        loop {
            match self.next(deadline).await?.ok_or_else(|| timed_out("a reply"))? {
                Incoming::Event(_) => *events_passed += 1,
                Incoming::Reply { header, body } => {
                    assert_eq!(header.xid, xid, "replies come in request order");
                    return Ok((header.error, body));
                }
            }
        }
    }

    /// Closes the session (opcode -11) and waits for the server to confirm it, so its
    /// ephemeral nodes are gone when this returns.
    pub async fn close(&mut self) -> std::io::Result<()> {
        let mut passed = 0;
        match self.call(&Request::CloseSession, &mut passed).await? {
            (0, _) => Ok(()),
            (error, _) => Err(std::io::Error::other(format!("closeSession failed with error {error}"))),
        }
    }

    /// The next reply or event, or None once `deadline` passes. A reply answers the
    /// oldest request in flight: one with another xid is an error.
    pub async fn next(&mut self, deadline: Instant) -> std::io::Result<Option<Incoming>> {
        let Some(frame) = self.next_frame(deadline).await? else { return Ok(None) };
        let bytes = &self.buffers.input[frame];
        let xid = bytes.get(..4).map_or(0, |xid| i32::from_be_bytes(xid.try_into().expect("4 bytes")));
        if xid == opcode::XID_NOTIFICATION {
            return Ok(Some(Incoming::Event(decode_notification(bytes).map_err(invalid)?)));
        }
        let Some((expected_xid, request_opcode)) = self.in_flight.pop_front() else {
            return Err(std::io::Error::other(format!("reply xid {xid} with no request in flight")));
        };
        let (header, body) = decode_reply(bytes, request_opcode).map_err(invalid)?;
        if header.xid != expected_xid {
            return Err(std::io::Error::other(format!(
                "reply xid {} answers no request (expected {expected_xid})",
                header.xid
            )));
        }
        Ok(Some(Incoming::Reply { header, body }))
    }

    /// Where the next whole frame (without its length prefix) lies in the input buffer,
    /// ping replies left out, or None once `deadline` passes. Valid until the next call.
    async fn next_frame(&mut self, deadline: Instant) -> std::io::Result<Option<std::ops::Range<usize>>> {
        loop {
            let available = self.filled - self.start;
            if available >= 4 {
                let prefix: [u8; 4] = self.buffers.input[self.start..self.start + 4].try_into().expect("4 bytes");
                let length = frame::frame_length(prefix, FRAME_BYTES_MAX)
                    .map_err(|error| std::io::Error::other(format!("bad frame from the server: {error}")))?;
                if available >= 4 + length {
                    let frame = self.start + 4..self.start + 4 + length;
                    self.start += 4 + length;
                    assert!(self.start <= self.filled);
                    let xid = self.buffers.input[frame.clone()]
                        .get(..4)
                        .map(|xid| i32::from_be_bytes(xid.try_into().expect("4 bytes")));
                    if xid == Some(opcode::XID_PING) {
                        continue;
                    }
                    return Ok(Some(frame));
                }
                if 4 + length > self.buffers.input.len() {
                    let size = (4 + length).next_power_of_two();
                    self.buffers.input.resize(size, 0);
                }
            }
            // Keep the partial frame at the front, so the read has the rest of the buffer.
            self.buffers.input.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.start = 0;
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let ping_due = self.last_sent + self.ping_interval;
            if now >= ping_due {
                self.stream.write_all(&self.ping).await?;
                self.last_sent = now;
                continue;
            }
            let wait = (deadline.min(ping_due) - now).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(wait))?;
            match self.stream.read(&mut self.buffers.input[self.filled..]).await {
                Ok(0) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "server closed the connection"))
                }
                Ok(read) => self.filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
                Err(error) => return Err(error),
            }
        }
    }
}

fn timed_out(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no answer to {what} within the set-up timeout"))
}

/// A frame the codec could not read.
pub fn invalid(error: crate::proto::jute::DecodeError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("a frame from the server does not decode: {error}"))
}

/// The world-readable, world-writable ACL every bench node gets.
pub fn open_acl() -> Vec<crate::proto::acl::Acl> {
    vec![crate::proto::acl::Acl::open_unsafe()]
}
