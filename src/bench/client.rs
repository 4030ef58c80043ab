//! A one-request-at-a-time native-protocol client for the recipe workloads (watch, lock,
//! churn): it keeps its buffers across requests and sessions (no allocation per request),
//! hands back whole frames in place, and pings the server when it has sent nothing for a
//! third of the negotiated session timeout, as a real client does while it waits for a
//! watch.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::proto::jute::Writer;
use crate::proto::{frame, opcode};

/// The largest reply accepted (getChildren of a crowded lock parent is the biggest).
const FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

/// A ping request frame: length 8, xid -2, opcode 11.
const PING_FRAME: [u8; 12] = [0, 0, 0, 8, 0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11];

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

pub struct Client {
    stream: TcpStream,
    buffers: Buffers,
    /// The first byte of `buffers.input` not yet handed out as a frame.
    start: usize,
    /// The end of the bytes received in `buffers.input`.
    filled: usize,
    /// The last xid used; requests carry increasing positive xids.
    xid: i32,
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
        let mut client = Client {
            stream,
            buffers,
            start: 0,
            filled: 0,
            xid: 0,
            last_sent: Instant::now(),
            ping_interval: Duration::from_secs(10),
        };
        client.send().await?;
        let deadline = Instant::now() + super::session::SETUP_TIMEOUT;
        let response = client.next_frame(deadline).await?.ok_or_else(|| timed_out("the handshake"))?;
        // ConnectResponse: protocolVersion, timeOut, sessionId, passwd. A timeout of 0
        // means the server refused the session.
        let timeout_ms = i32::from_be_bytes(response[4..8].try_into().expect("4 bytes"));
        if timeout_ms <= 0 {
            return Err(std::io::Error::other("the server refused the session"));
        }
        client.ping_interval = Duration::from_millis(timeout_ms as u64 / 3).max(Duration::from_millis(50));
        Ok(client)
    }

    /// Gives the buffers back (the connection closes when the stream drops).
    pub fn into_buffers(self) -> Buffers {
        self.buffers
    }

    /// Encodes one request (header then what `body` writes) into the output buffer and
    /// returns its xid; `send` writes it.
    pub fn request(&mut self, request_opcode: i32, body: impl FnOnce(&mut Writer<'_>)) -> i32 {
        self.xid = self.xid.wrapping_add(1).max(1);
        let start = frame::begin(&mut self.buffers.output);
        let mut writer = Writer::new(&mut self.buffers.output);
        writer.write_i32(self.xid);
        writer.write_i32(request_opcode);
        body(&mut writer);
        frame::end(&mut self.buffers.output, start);
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

    /// Sends the request encoded and waits for its reply, passing over notifications
    /// (they are counted in `notifications_passed`).
    pub async fn call(&mut self, xid: i32, notifications_passed: &mut u64) -> std::io::Result<&[u8]> {
        self.send().await?;
        let deadline = Instant::now() + super::session::SETUP_TIMEOUT;
        loop {
            let reply = self.next_frame(deadline).await?.ok_or_else(|| timed_out("a reply"))?;
            let reply_xid = reply_xid(reply);
            if reply_xid == opcode::XID_NOTIFICATION {
                *notifications_passed += 1;
                continue;
            }
            if reply_xid != xid {
                return Err(std::io::Error::other(format!(
                    "reply xid {reply_xid} answers no request (expected {xid})"
                )));
            }
            // The borrow checker cannot see that the frame outlives the loop; hand it out
            // again by position.
            let length = reply.len();
            return Ok(&self.buffers.input[self.start - length..self.start]);
        }
    }

    /// Closes the session (opcode -11) and waits for the server to confirm it, so its
    /// ephemeral nodes are gone when this returns.
    pub async fn close(&mut self) -> std::io::Result<()> {
        let xid = self.request(opcode::CLOSE_SESSION, |_| {});
        let mut passed = 0;
        let reply = self.call(xid, &mut passed).await?;
        match reply_error(reply) {
            0 => Ok(()),
            error => Err(std::io::Error::other(format!("closeSession failed with error {error}"))),
        }
    }

    /// The next whole frame (without its length prefix), ping replies left out, or None
    /// once `deadline` passes. The frame stays valid until the next call.
    pub async fn next_frame(&mut self, deadline: Instant) -> std::io::Result<Option<&[u8]>> {
        loop {
            let available = self.filled - self.start;
            if available >= 4 {
                let prefix: [u8; 4] = self.buffers.input[self.start..self.start + 4].try_into().expect("4 bytes");
                let length = frame::frame_length(prefix, FRAME_BYTES_MAX)
                    .map_err(|error| std::io::Error::other(format!("bad frame from the server: {error}")))?;
                if available >= 4 + length {
                    let frame_start = self.start + 4;
                    self.start += 4 + length;
                    assert!(self.start <= self.filled);
                    if length >= 4 && reply_xid(&self.buffers.input[frame_start..]) == opcode::XID_PING {
                        continue;
                    }
                    return Ok(Some(&self.buffers.input[frame_start..frame_start + length]));
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
                self.stream.write_all(&PING_FRAME).await?;
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

/// A reply's xid (the first field of every reply header and notification).
pub fn reply_xid(reply: &[u8]) -> i32 {
    i32::from_be_bytes(reply[0..4].try_into().expect("4 bytes"))
}

/// A reply's ZooKeeper error code (0 for success).
pub fn reply_error(reply: &[u8]) -> i32 {
    i32::from_be_bytes(reply[12..16].try_into().expect("4 bytes"))
}

/// What follows a reply's header (xid, zxid, err).
pub fn reply_body(reply: &[u8]) -> &[u8] {
    &reply[16..]
}

/// The `version` of a Stat that starts at `stat` (after czxid, mzxid, ctime, mtime).
pub fn stat_version(stat: &[u8]) -> i32 {
    i32::from_be_bytes(stat[32..36].try_into().expect("a whole Stat"))
}

/// Reads a jute string or buffer at `*offset` (a length, then the bytes), moving past it.
pub fn read_bytes<'a>(bytes: &'a [u8], offset: &mut usize) -> &'a [u8] {
    let length = i32::from_be_bytes(bytes[*offset..*offset + 4].try_into().expect("4 bytes"));
    *offset += 4;
    let length = length.max(0) as usize;
    let value = &bytes[*offset..*offset + length];
    *offset += length;
    value
}

/// Writes the ACL list `[world:anyone, ALL]` without building an `Acl` (which allocates).
pub fn write_open_acl(writer: &mut Writer<'_>) {
    writer.write_i32(1);
    writer.write_i32(31);
    writer.write_str("world");
    writer.write_str("anyone");
}

/// A notification's event type and path.
pub fn notification(reply: &[u8]) -> (i32, &[u8]) {
    let body = reply_body(reply);
    let event_type = i32::from_be_bytes(body[0..4].try_into().expect("4 bytes"));
    let mut offset = 8;
    (event_type, read_bytes(body, &mut offset))
}
