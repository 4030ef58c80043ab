//! One bench session: a native-protocol client that keeps `depth` requests in flight on
//! one connection, records each reply's latency from its send time, and counts errors.
//! Replies of a session arrive in request order (ZooKeeper's per-session FIFO), so the
//! oldest request in flight is the one a reply answers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};

use super::board::Board;
use super::stats::{record, SessionStats};
use super::stream::BenchStream;
use super::workload::{encode_request as encode_workload_request, Workload};
use crate::proto::connect::ConnectResponse;
use crate::proto::jute::Reader;
use crate::proto::request::{encode_request, Request};
use crate::proto::response::ReplyHeader;
use crate::proto::{frame, opcode};

/// The largest reply accepted: a getChildren of the children workload's parent.
const REPLY_BYTES_MAX: usize = 64 * 1024 * 1024;

/// When measurement starts and when sending stops.
#[derive(Clone, Copy)]
pub struct Schedule {
    /// When sessions start (warm-up).
    pub start: Instant,
    pub measure_from: Instant,
    pub stop_at: Instant,
}

pub struct SessionPlan {
    pub server: SocketAddr,
    pub index: usize,
    pub workload: Workload,
    pub depth: usize,
    pub keys: u64,
    pub value: std::rc::Rc<Vec<u8>>,
    pub schedule: Schedule,
    /// Open loop: this session's requests per second, on a fixed schedule; None for the
    /// closed loop (`depth` in flight).
    pub rate_per_s: Option<f64>,
    /// What the sessions of a run share across generator threads and processes.
    pub board: std::sync::Arc<Board>,
    /// TLS to a secure client port.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

pub async fn run_session(plan: SessionPlan) -> SessionStats {
    let mut stats = SessionStats::with_progress(plan.board.clone());
    let result = match (plan.workload, plan.rate_per_s) {
        (Workload::Watch, _) => super::watch::drive(&plan, &mut stats).await,
        (Workload::Lock, _) => super::lock::drive(&plan, &mut stats).await,
        (Workload::Churn, _) => super::churn::drive(&plan, &mut stats).await,
        (_, Some(rate_per_s)) => drive_open_loop(&plan, rate_per_s, &mut stats).await,
        (_, None) => drive(&plan, &mut stats).await,
    };
    if let Err(error) = result {
        stats.failure = Some(format!("session {}: {error}", plan.index));
    }
    stats.flush_progress();
    stats
}

async fn drive(plan: &SessionPlan, stats: &mut SessionStats) -> std::io::Result<()> {
    let (mut stream, mut input, mut filled) = open_session(plan).await?;
    let mut output = Vec::with_capacity(64 * 1024);

    let mut random = 0x9E37_79B9_7F4A_7C15 ^ (plan.index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut in_flight: VecDeque<Instant> = VecDeque::with_capacity(plan.depth);
    let mut sequence = 0u64;
    let mut xid = 0i32;
    let mut exhausted = false;
    loop {
        // Top up to `depth` requests in flight, in one write.
        output.clear();
        let now = Instant::now();
        while !exhausted && now < plan.schedule.stop_at && in_flight.len() < plan.depth {
            xid = xid.wrapping_add(1).max(1);
            if !encode_workload_request(
                &mut output,
                plan.workload,
                xid,
                plan.index,
                sequence,
                plan.keys,
                &plan.value,
                &mut random,
            ) {
                exhausted = true;
                break;
            }
            sequence += 1;
            in_flight.push_back(now);
        }
        if !output.is_empty() {
            stream.write_all(&output).await?;
            stream.flush().await?;
        }
        if in_flight.is_empty() {
            return Ok(());
        }
        // Read what has arrived and account for every whole reply in it.
        let read = stream.read(&mut input[filled..]).await?;
        if read == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "server closed the connection"));
        }
        filled += read;
        let now = Instant::now();
        let mut offset = 0;
        while let Some(reply) = next_reply(&input[..filled], &mut offset)? {
            let ReplyHeader { xid: reply_xid, error, .. } = reply_header(reply)?;
            if reply_xid < 0 {
                continue; // a notification or ping
            }
            let sent = in_flight.pop_front().ok_or_else(unsolicited)?;
            if sent >= plan.schedule.measure_from {
                record(stats, plan.schedule.measure_from, now.duration_since(sent), now, error);
            }
        }
        input.copy_within(offset..filled, 0);
        filled -= offset;
        if filled == input.len() {
            input.resize(input.len() * 2, 0);
        }
    }
}

/// The next whole reply frame's body in `input` at `offset`, advancing past it; None
/// when only part of a frame has arrived.
fn next_reply<'a>(input: &'a [u8], offset: &mut usize) -> std::io::Result<Option<&'a [u8]>> {
    let Some(prefix) = input.get(*offset..*offset + 4) else { return Ok(None) };
    let length = frame_length(prefix)?;
    let Some(reply) = input.get(*offset + 4..*offset + 4 + length) else { return Ok(None) };
    *offset += 4 + length;
    Ok(Some(reply))
}

/// A frame's length from its prefix: a length no server sends is an error.
fn frame_length(prefix: &[u8]) -> std::io::Result<usize> {
    frame::frame_length(prefix.try_into().expect("4 bytes"), REPLY_BYTES_MAX)
        .map_err(|error| std::io::Error::other(format!("bad frame from the server: {error}")))
}

/// A reply's header: a frame too short for one is an error, not a panic.
fn reply_header(reply: &[u8]) -> std::io::Result<ReplyHeader> {
    ReplyHeader::decode(&mut Reader::new(reply)).map_err(super::client::invalid)
}

/// Connects and opens a session; returns the stream and the input buffer with what
/// arrived after the connect response.
async fn open_session(plan: &SessionPlan) -> std::io::Result<(BenchStream, Vec<u8>, usize)> {
    let mut stream = super::stream::connect(plan.server, plan.tls.as_ref()).await?;
    let mut output = Vec::new();
    super::workload::encode_connect(&mut output);
    stream.write_all(&output).await?;
    stream.flush().await?;
    let mut input = vec![0u8; 256 * 1024];
    let mut filled = 0;
    let connect_length = read_frame_length(&mut stream, &mut input, &mut filled).await?;
    let response = ConnectResponse::decode(&input[4..4 + connect_length]).map_err(super::client::invalid)?;
    // A timeout of 0 means the server refused the session.
    if response.timeout_ms <= 0 {
        return Err(std::io::Error::other("the server refused the session"));
    }
    consume(&mut input, &mut filled, 4 + connect_length);
    Ok((stream, input, filled))
}

/// A reply with no request waiting for it.
fn unsolicited() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, "a reply answers no request in flight")
}

/// Whether a request scheduled at `scheduled` and sent at `sent` was late enough to count
/// as the generator falling behind.
fn is_behind(scheduled: Instant, sent: Instant) -> bool {
    sent.duration_since(scheduled) > Duration::from_millis(1)
}

/// Open loop: requests go out on a fixed schedule (one every 1/rate s, however slowly the
/// server answers) from a sender task, and a reply's latency counts from its request's
/// scheduled time, not from when it was sent, so a stalled server (or a generator that
/// fell behind) shows in the latencies instead of hiding in fewer requests (coordinated
/// omission). After its last request the sender sends a ping: replies come in order, so
/// the ping's reply tells the reader everything has been answered.
async fn drive_open_loop(plan: &SessionPlan, rate_per_s: f64, stats: &mut SessionStats) -> std::io::Result<()> {
    use std::cell::{Cell, RefCell};
    use std::rc::Rc;
    assert!(rate_per_s > 0.0);
    let (stream, mut input, mut filled) = open_session(plan).await?;

    let (mut reader, mut writer) = futures_lite::io::split(stream);
    let scheduled: Rc<RefCell<VecDeque<Instant>>> = Rc::new(RefCell::new(VecDeque::new()));
    let behind = Rc::new(Cell::new(0u64));
    let interval = Duration::from_secs_f64(1.0 / rate_per_s);
    let sender = {
        let (scheduled, behind) = (scheduled.clone(), behind.clone());
        let (workload, index, keys, value, stop_at) =
            (plan.workload, plan.index, plan.keys, plan.value.clone(), plan.schedule.stop_at);
        // Sessions start staggered across one interval so their requests interleave.
        let mut due = Instant::now() + interval.mul_f64((index % 97) as f64 / 97.0);
        glommio::spawn_local(async move {
            let mut random = 0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
            let (mut sequence, mut xid) = (0u64, 0i32);
            let mut output = Vec::with_capacity(64 * 1024);
            'schedule: while due < stop_at {
                let now = Instant::now();
                if due > now {
                    glommio::timer::sleep(due - now).await;
                    continue;
                }
                output.clear();
                // Everything due by now goes in one write.
                while due <= now && due < stop_at {
                    xid = xid.wrapping_add(1).max(1);
                    if !encode_workload_request(&mut output, workload, xid, index, sequence, keys, &value, &mut random)
                    {
                        break 'schedule;
                    }
                    sequence += 1;
                    scheduled.borrow_mut().push_back(due);
                    if is_behind(due, now) {
                        behind.set(behind.get() + 1);
                    }
                    due += interval;
                }
                writer.write_all(&output).await?;
                writer.flush().await?;
            }
            // A ping last: its reply, in order behind every other, ends the reading side.
            let mut ping = Vec::new();
            encode_request(&mut ping, 0, &Request::Ping);
            writer.write_all(&ping).await?;
            writer.flush().await
        })
    };
    loop {
        let read = reader.read(&mut input[filled..]).await?;
        if read == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "server closed the connection"));
        }
        filled += read;
        let now = Instant::now();
        let mut offset = 0;
        let mut finished = false;
        while let Some(reply) = next_reply(&input[..filled], &mut offset)? {
            let ReplyHeader { xid: reply_xid, error, .. } = reply_header(reply)?;
            if reply_xid == opcode::XID_PING {
                finished = true;
                break;
            }
            if reply_xid < 0 {
                continue; // a notification
            }
            let due = scheduled.borrow_mut().pop_front().ok_or_else(unsolicited)?;
            if due >= plan.schedule.measure_from {
                record(stats, plan.schedule.measure_from, now.duration_since(due), now, error);
            }
        }
        if finished {
            sender.await?;
            stats.behind_schedule = behind.get();
            return Ok(());
        }
        input.copy_within(offset..filled, 0);
        filled -= offset;
        if filled == input.len() {
            input.resize(input.len() * 2, 0);
        }
    }
}

async fn read_frame_length(stream: &mut BenchStream, input: &mut [u8], filled: &mut usize) -> std::io::Result<usize> {
    loop {
        if *filled >= 4 {
            let length = frame_length(&input[0..4])?;
            if *filled >= 4 + length {
                return Ok(length);
            }
        }
        let read = stream.read(&mut input[*filled..]).await?;
        if read == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed during the handshake"));
        }
        *filled += read;
    }
}

fn consume(input: &mut [u8], filled: &mut usize, count: usize) {
    input.copy_within(count..*filled, 0);
    *filled -= count;
}

/// A bounded wait used by set-up code.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
