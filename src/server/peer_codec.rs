//! The peer protocol: how members frame what they say to each other on the quorum port.
//! Sans-IO: `encode` appends a frame to a buffer, `decode` reads one from bytes and never
//! panics on a peer's bytes (a malformed frame is an error and the link closes).
//!
//! ```text
//! frame:  len u32 LE (bytes after it) | kind u8 | body, little-endian throughout
//! 1 Hello       member u64                                  (first frame of a link)
//! 2 Vote        epoch u32 | last_zxid i64 | pre u8
//! 3 VoteReply   for_epoch u32 | voter_epoch u32 | granted u8 | pre u8
//! 4 Append      epoch u32 | prev i64 | commit i64 | count u32 | count x (first i64 | last i64 | bytes u32)
//!               | the batches' bytes, one after another: framed records exactly as the log holds them
//! 5 AppendReply epoch u32 | 0 Ack zxid i64 | 1 Diverged base i64 | runs u32 | runs x (first i64 | last i64) | 2 Stale
//! 6 Snapshot    epoch u32 | zxid i64 | bytes u32 | a snapshot image
//! 7 Forward     a follower's client traffic for the leader (see `Forwarded`)
//! 8 Routed      core u32 | after_zxid i64 | a control for one of the follower's cores
//! 9 Durable     epoch u32 | zxid i64                        (the leader's log is durable through zxid)
//! ```

use std::sync::Arc;

use rkyv::util::AlignedVec;

use super::messages::Control;
use crate::consensus::history::{History, Run};
use crate::consensus::message::{AppendOutcome, MemberId, Message};
use crate::consensus::record_batch::RecordBatch;
use crate::log::record::Records;
use crate::proto::connect::PASSWORD_SIZE_BYTES;

/// The largest frame accepted: a snapshot of a large tree travels in one.
pub const FRAME_BYTES_MAX: usize = 1 << 30;
/// The most batches in one Append (the leader sends far fewer).
const BATCHES_MAX: usize = 1 << 16;

#[derive(Debug, Clone)]
pub enum PeerFrame {
    Hello {
        member: MemberId,
    },
    Consensus(Message<RecordBatch>),
    Forward(Forwarded),
    /// A control the leader placed for one core of the receiving member: it takes effect
    /// once that member has applied `after_zxid`.
    Routed {
        core: u32,
        after_zxid: i64,
        control: Control,
    },
}

/// A follower's client traffic, forwarded to the leader's ordering point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Forwarded {
    Connect {
        core: u32,
        connection: u64,
        session_id: i64,
        timeout_ms: i32,
        password: Vec<u8>,
    },
    /// `request` is the client's request frame as received, decoded again by the leader;
    /// `connection` is the one it came through (the session's owner must match).
    Write {
        connection: u64,
        session_id: i64,
        xid: i32,
        identities: Arc<Vec<(String, String)>>,
        request: Vec<u8>,
    },
    Sync {
        core: u32,
        connection: u64,
        xid: i32,
    },
    Touch {
        sessions: Vec<i64>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// More bytes are needed for a whole frame.
    Incomplete,
    Malformed(&'static str),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Incomplete => write!(f, "incomplete frame"),
            DecodeError::Malformed(what) => write!(f, "malformed peer frame: {what}"),
        }
    }
}

/// Appends one frame.
pub fn encode(frame: &PeerFrame, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    match frame {
        PeerFrame::Hello { member } => {
            out.push(1);
            out.extend_from_slice(&member.to_le_bytes());
        }
        PeerFrame::Consensus(message) => encode_message(message, out),
        PeerFrame::Forward(forwarded) => {
            out.push(7);
            encode_forwarded(forwarded, out);
        }
        PeerFrame::Routed { core, after_zxid, control } => {
            out.push(8);
            out.extend_from_slice(&core.to_le_bytes());
            out.extend_from_slice(&after_zxid.to_le_bytes());
            encode_control(control, out);
        }
    }
    let length = out.len() - start - 4;
    assert!(length <= FRAME_BYTES_MAX, "a peer frame of {length} bytes");
    out[start..start + 4].copy_from_slice(&(length as u32).to_le_bytes());
}

fn encode_message(message: &Message<RecordBatch>, out: &mut Vec<u8>) {
    match message {
        Message::Vote { epoch, last_zxid, pre } => {
            out.push(2);
            out.extend_from_slice(&epoch.to_le_bytes());
            out.extend_from_slice(&last_zxid.to_le_bytes());
            out.push(*pre as u8);
        }
        Message::VoteReply { for_epoch, voter_epoch, granted, pre } => {
            out.push(3);
            out.extend_from_slice(&for_epoch.to_le_bytes());
            out.extend_from_slice(&voter_epoch.to_le_bytes());
            out.push(*granted as u8);
            out.push(*pre as u8);
        }
        Message::Append { epoch, prev_zxid, batches, commit_zxid } => {
            out.push(4);
            out.extend_from_slice(&epoch.to_le_bytes());
            out.extend_from_slice(&prev_zxid.to_le_bytes());
            out.extend_from_slice(&commit_zxid.to_le_bytes());
            out.extend_from_slice(&(batches.len() as u32).to_le_bytes());
            for batch in batches {
                out.extend_from_slice(&batch.first_zxid.to_le_bytes());
                out.extend_from_slice(&batch.last_zxid.to_le_bytes());
                out.extend_from_slice(&(batch.bytes.len() as u32).to_le_bytes());
            }
            for batch in batches {
                out.extend_from_slice(&batch.bytes);
            }
        }
        Message::AppendReply { epoch, outcome } => {
            out.push(5);
            out.extend_from_slice(&epoch.to_le_bytes());
            match outcome {
                AppendOutcome::Ack { zxid } => {
                    out.push(0);
                    out.extend_from_slice(&zxid.to_le_bytes());
                }
                AppendOutcome::Diverged { history } => {
                    out.push(1);
                    out.extend_from_slice(&history.base().to_le_bytes());
                    out.extend_from_slice(&(history.runs().len() as u32).to_le_bytes());
                    for run in history.runs() {
                        out.extend_from_slice(&run.first.to_le_bytes());
                        out.extend_from_slice(&run.last.to_le_bytes());
                    }
                }
                AppendOutcome::Stale => out.push(2),
            }
        }
        Message::Durable { epoch, zxid } => {
            out.push(9);
            out.extend_from_slice(&epoch.to_le_bytes());
            out.extend_from_slice(&zxid.to_le_bytes());
        }
        Message::Snapshot { epoch, zxid, data } => {
            out.push(6);
            out.extend_from_slice(&epoch.to_le_bytes());
            out.extend_from_slice(&zxid.to_le_bytes());
            put_bytes(out, data);
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode_forwarded(forwarded: &Forwarded, out: &mut Vec<u8>) {
    match forwarded {
        Forwarded::Connect { core, connection, session_id, timeout_ms, password } => {
            out.push(1);
            out.extend_from_slice(&core.to_le_bytes());
            out.extend_from_slice(&connection.to_le_bytes());
            out.extend_from_slice(&session_id.to_le_bytes());
            out.extend_from_slice(&timeout_ms.to_le_bytes());
            put_bytes(out, password);
        }
        Forwarded::Write { connection, session_id, xid, identities, request } => {
            out.push(2);
            out.extend_from_slice(&connection.to_le_bytes());
            out.extend_from_slice(&session_id.to_le_bytes());
            out.extend_from_slice(&xid.to_le_bytes());
            out.extend_from_slice(&(identities.len() as u32).to_le_bytes());
            for (scheme, id) in identities.iter() {
                put_bytes(out, scheme.as_bytes());
                put_bytes(out, id.as_bytes());
            }
            put_bytes(out, request);
        }
        Forwarded::Sync { core, connection, xid } => {
            out.push(3);
            out.extend_from_slice(&core.to_le_bytes());
            out.extend_from_slice(&connection.to_le_bytes());
            out.extend_from_slice(&xid.to_le_bytes());
        }
        Forwarded::Touch { sessions } => {
            out.push(4);
            out.extend_from_slice(&(sessions.len() as u32).to_le_bytes());
            for session in sessions {
                out.extend_from_slice(&session.to_le_bytes());
            }
        }
    }
}

fn encode_control(control: &Control, out: &mut Vec<u8>) {
    match control {
        Control::Connected { connection, session } => {
            out.push(1);
            out.extend_from_slice(&connection.to_le_bytes());
            match session {
                Some((session_id, password)) => {
                    out.push(1);
                    out.extend_from_slice(&session_id.to_le_bytes());
                    out.extend_from_slice(password);
                }
                None => out.push(0),
            }
        }
        Control::Synced { connection, xid } => {
            out.push(2);
            out.extend_from_slice(&connection.to_le_bytes());
            out.extend_from_slice(&xid.to_le_bytes());
        }
        Control::SessionMoved { session_id, keep } => {
            out.push(3);
            out.extend_from_slice(&session_id.to_le_bytes());
            match keep {
                Some(connection) => {
                    out.push(1);
                    out.extend_from_slice(&connection.to_le_bytes());
                }
                None => out.push(0),
            }
        }
        Control::CloseAll => out.push(4),
        Control::CloseReadOnly => out.push(5),
        Control::Replaced | Control::PublishListings => unreachable!("a member's own control; no peer routes it"),
    }
}

/// A cursor over a frame's body; every read checks the bytes are there.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < count {
            return Err(DecodeError::Malformed("frame ends early"));
        }
        let (taken, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(taken)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Malformed("a flag is neither 0 nor 1")),
        }
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let length = self.u32()? as usize;
        self.take(length)
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError::Malformed("a string is not UTF-8"))
    }

    fn count(&mut self, element_bytes_min: usize) -> Result<usize, DecodeError> {
        let count = self.u32()? as usize;
        if count.saturating_mul(element_bytes_min) > self.bytes.len() {
            return Err(DecodeError::Malformed("a count larger than the frame"));
        }
        Ok(count)
    }

    fn finish(&self) -> Result<(), DecodeError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Malformed("bytes after the frame's body"))
        }
    }
}

/// Reads one frame from the front of `bytes`; returns it and the bytes it took.
pub fn decode(bytes: &[u8]) -> Result<(PeerFrame, usize), DecodeError> {
    if bytes.len() < 4 {
        return Err(DecodeError::Incomplete);
    }
    let length = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    if length == 0 || length > FRAME_BYTES_MAX {
        return Err(DecodeError::Malformed("frame length out of range"));
    }
    if bytes.len() < 4 + length {
        return Err(DecodeError::Incomplete);
    }
    let mut cursor = Cursor { bytes: &bytes[4..4 + length] };
    let frame = match cursor.u8()? {
        1 => PeerFrame::Hello { member: cursor.u64()? },
        2 => {
            PeerFrame::Consensus(Message::Vote { epoch: cursor.u32()?, last_zxid: cursor.i64()?, pre: cursor.bool()? })
        }
        3 => PeerFrame::Consensus(Message::VoteReply {
            for_epoch: cursor.u32()?,
            voter_epoch: cursor.u32()?,
            granted: cursor.bool()?,
            pre: cursor.bool()?,
        }),
        4 => PeerFrame::Consensus(decode_append(&mut cursor)?),
        5 => {
            let epoch = cursor.u32()?;
            let outcome = match cursor.u8()? {
                0 => AppendOutcome::Ack { zxid: cursor.i64()? },
                1 => {
                    let base = cursor.i64()?;
                    let count = cursor.count(16)?;
                    let runs = (0..count)
                        .map(|_| Ok(Run { first: cursor.i64()?, last: cursor.i64()? }))
                        .collect::<Result<Vec<Run>, DecodeError>>()?;
                    let history =
                        History::from_parts(base, runs).ok_or(DecodeError::Malformed("a history out of order"))?;
                    AppendOutcome::Diverged { history }
                }
                2 => AppendOutcome::Stale,
                _ => return Err(DecodeError::Malformed("unknown append outcome")),
            };
            PeerFrame::Consensus(Message::AppendReply { epoch, outcome })
        }
        6 => {
            let (epoch, zxid) = (cursor.u32()?, cursor.i64()?);
            let data = Arc::new(cursor.bytes()?.to_vec());
            PeerFrame::Consensus(Message::Snapshot { epoch, zxid, data })
        }
        7 => PeerFrame::Forward(decode_forwarded(&mut cursor)?),
        8 => {
            let (core, after_zxid) = (cursor.u32()?, cursor.i64()?);
            PeerFrame::Routed { core, after_zxid, control: decode_control(&mut cursor)? }
        }
        9 => PeerFrame::Consensus(Message::Durable { epoch: cursor.u32()?, zxid: cursor.i64()? }),
        _ => return Err(DecodeError::Malformed("unknown frame kind")),
    };
    cursor.finish()?;
    Ok((frame, 4 + length))
}

/// An Append's batches, each copied once into 16-byte aligned storage (the records are
/// read in place from there) after every record's checksum and zxid were checked.
fn decode_append(cursor: &mut Cursor<'_>) -> Result<Message<RecordBatch>, DecodeError> {
    let (epoch, prev_zxid, commit_zxid) = (cursor.u32()?, cursor.i64()?, cursor.i64()?);
    let count = cursor.count(20)?;
    if count > BATCHES_MAX {
        return Err(DecodeError::Malformed("too many batches"));
    }
    let mut shapes = Vec::with_capacity(count);
    for _ in 0..count {
        shapes.push((cursor.i64()?, cursor.i64()?, cursor.u32()? as usize));
    }
    let mut batches = Vec::with_capacity(count);
    for (first_zxid, last_zxid, length) in shapes {
        let mut bytes = AlignedVec::<16>::with_capacity(length);
        bytes.extend_from_slice(cursor.take(length)?);
        check_batch(&bytes, first_zxid, last_zxid)?;
        batches.push(RecordBatch::new(Arc::new(bytes), first_zxid, last_zxid));
    }
    Ok(Message::Append { epoch, prev_zxid, batches, commit_zxid })
}

/// A batch holds intact records with consecutive zxids from `first` to `last`.
fn check_batch(bytes: &[u8], first: i64, last: i64) -> Result<(), DecodeError> {
    if bytes.is_empty() || bytes.len() % 16 != 0 || first > last {
        return Err(DecodeError::Malformed("a batch's shape"));
    }
    let mut expected = first;
    for record in Records::verified(bytes) {
        let (zxid, _) = record.map_err(|_| DecodeError::Malformed("a damaged record"))?;
        if zxid != expected {
            return Err(DecodeError::Malformed("a batch's zxids are not consecutive"));
        }
        expected += 1;
    }
    if expected != last + 1 {
        return Err(DecodeError::Malformed("a batch ends elsewhere than it says"));
    }
    Ok(())
}

fn decode_forwarded(cursor: &mut Cursor<'_>) -> Result<Forwarded, DecodeError> {
    Ok(match cursor.u8()? {
        1 => Forwarded::Connect {
            core: cursor.u32()?,
            connection: cursor.u64()?,
            session_id: cursor.i64()?,
            timeout_ms: cursor.i32()?,
            password: cursor.bytes()?.to_vec(),
        },
        2 => {
            let (connection, session_id, xid) = (cursor.u64()?, cursor.i64()?, cursor.i32()?);
            let count = cursor.count(8)?;
            let identities = (0..count)
                .map(|_| Ok((cursor.string()?, cursor.string()?)))
                .collect::<Result<Vec<(String, String)>, DecodeError>>()?;
            let request = cursor.bytes()?.to_vec();
            Forwarded::Write { connection, session_id, xid, identities: Arc::new(identities), request }
        }
        3 => Forwarded::Sync { core: cursor.u32()?, connection: cursor.u64()?, xid: cursor.i32()? },
        4 => {
            let count = cursor.count(8)?;
            Forwarded::Touch { sessions: (0..count).map(|_| cursor.i64()).collect::<Result<_, _>>()? }
        }
        _ => return Err(DecodeError::Malformed("unknown forwarded kind")),
    })
}

fn decode_control(cursor: &mut Cursor<'_>) -> Result<Control, DecodeError> {
    Ok(match cursor.u8()? {
        1 => {
            let connection = cursor.u64()?;
            let session = if cursor.bool()? {
                let session_id = cursor.i64()?;
                let password: [u8; PASSWORD_SIZE_BYTES] =
                    cursor.take(PASSWORD_SIZE_BYTES)?.try_into().expect("the password's size");
                Some((session_id, password))
            } else {
                None
            };
            Control::Connected { connection, session }
        }
        2 => Control::Synced { connection: cursor.u64()?, xid: cursor.i32()? },
        3 => {
            let session_id = cursor.i64()?;
            let keep = if cursor.bool()? { Some(cursor.u64()?) } else { None };
            Control::SessionMoved { session_id, keep }
        }
        4 => Control::CloseAll,
        5 => Control::CloseReadOnly,
        _ => return Err(DecodeError::Malformed("unknown control kind")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::payload::Payload;

    fn round_trip(frame: PeerFrame) -> PeerFrame {
        let mut bytes = Vec::new();
        encode(&frame, &mut bytes);
        let (decoded, used) = decode(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        decoded
    }

    #[test]
    fn an_append_carries_the_logs_record_bytes_unchanged() {
        let marker = RecordBatch::epoch_marker(0x3_0000_0000);
        let frame = PeerFrame::Consensus(Message::Append {
            epoch: 3,
            prev_zxid: 0x2_0000_0007,
            batches: vec![marker.clone()],
            commit_zxid: 0x2_0000_0005,
        });
        let PeerFrame::Consensus(Message::Append { batches, prev_zxid, .. }) = round_trip(frame) else { panic!() };
        assert_eq!(prev_zxid, 0x2_0000_0007);
        assert_eq!(batches[0].bytes.as_slice(), marker.bytes.as_slice());
        assert_eq!((batches[0].first_zxid, batches[0].last_zxid), (0x3_0000_0000, 0x3_0000_0000));
    }

    #[test]
    fn a_leaders_durable_point_round_trips() {
        let frame = PeerFrame::Consensus(Message::Durable { epoch: 4, zxid: 0x4_0000_0009 });
        let PeerFrame::Consensus(Message::Durable { epoch, zxid }) = round_trip(frame) else { panic!() };
        assert_eq!((epoch, zxid), (4, 0x4_0000_0009));
    }

    #[test]
    fn forwarded_traffic_and_controls_round_trip() {
        let write = Forwarded::Write {
            connection: 3,
            session_id: 7,
            xid: 9,
            identities: Arc::new(vec![("ip".into(), "127.0.0.1".into())]),
            request: vec![1, 2, 3],
        };
        let PeerFrame::Forward(decoded) = round_trip(PeerFrame::Forward(write.clone())) else { panic!() };
        assert_eq!(decoded, write);
        let control = Control::Connected { connection: 5, session: Some((11, [7; PASSWORD_SIZE_BYTES])) };
        let PeerFrame::Routed { core, after_zxid, control: decoded } =
            round_trip(PeerFrame::Routed { core: 1, after_zxid: 42, control })
        else {
            panic!()
        };
        assert_eq!((core, after_zxid), (1, 42));
        assert!(matches!(decoded, Control::Connected { connection: 5, session: Some((11, _)) }));
    }

    #[test]
    fn a_damaged_record_or_a_short_frame_is_an_error_not_a_panic() {
        let frame = PeerFrame::Consensus(Message::Append {
            epoch: 3,
            prev_zxid: 0,
            batches: vec![RecordBatch::epoch_marker(0x3_0000_0000)],
            commit_zxid: 0,
        });
        let mut bytes = Vec::new();
        encode(&frame, &mut bytes);
        assert_eq!(decode(&bytes[..bytes.len() - 1]).unwrap_err(), DecodeError::Incomplete);
        let last = bytes.len() - 20;
        bytes[last] ^= 0xff;
        assert!(matches!(decode(&bytes), Err(DecodeError::Malformed(_))));
        for cut in 0..bytes.len() {
            let mut truncated = bytes[..cut].to_vec();
            if truncated.len() >= 4 {
                truncated[..4].copy_from_slice(&((cut - 4) as u32).to_le_bytes());
            }
            let _ = decode(&truncated);
        }
    }
}
