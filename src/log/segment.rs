//! Segment files: the log on disk is a series of preallocated files, each named after the
//! zxid of its first record (`log.<hex zxid>`, as ZooKeeper names its logs) and holding a
//! 16-byte header followed by framed records (see `record`). Sans-IO: this module reads
//! and writes bytes; the caller owns the files.
//!
//! ```text
//! 0                8                16
//! +----------------+----------------+--------- records ... ---------+--- zeros ---+
//! | "RKLOG\0\0\x01"| first zxid LE  | [len][crc32c][zxid][payload]   | preallocated|
//! +----------------+----------------+--------------------------------+-------------+
//! ```
//!
//! The end of the log is the first frame whose header is all zeros: preallocated space is
//! zero-filled, and no record has zero length.

use super::record::{RecordError, Records, HEADER_SIZE_BYTES};

pub const MAGIC: [u8; 8] = *b"RKLOG\0\0\x01";
pub const SEGMENT_HEADER_BYTES: usize = 16;
/// Default preallocated size of a segment (ZooKeeper's preAllocSize is 64 MiB too).
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

pub fn file_name(first_zxid: i64) -> String {
    format!("log.{first_zxid:x}")
}

/// The first zxid of a segment file name, if it is one.
pub fn parse_file_name(name: &str) -> Option<i64> {
    let hex = name.strip_prefix("log.")?;
    i64::from_str_radix(hex, 16).ok()
}

pub fn header(first_zxid: i64) -> [u8; SEGMENT_HEADER_BYTES] {
    let mut bytes = [0; SEGMENT_HEADER_BYTES];
    bytes[..8].copy_from_slice(&MAGIC);
    bytes[8..].copy_from_slice(&first_zxid.to_le_bytes());
    bytes
}

/// What a scan of one segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Offset just past the last valid record: where appending resumes.
    pub valid_end: usize,
    pub record_count: u64,
    pub first_zxid: Option<i64>,
    pub last_zxid: Option<i64>,
    /// A damaged record: its offset and what is wrong. Everything from here on is not
    /// part of the log.
    pub damage: Option<(usize, RecordError)>,
    /// Whether a valid record follows the damage: then it is not a torn tail but
    /// corruption inside the log.
    pub valid_after_damage: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentError {
    BadHeader,
    /// Records are not in increasing zxid order at this offset.
    OutOfOrder {
        offset: usize,
    },
}

/// Scans a whole segment file's bytes (which must be 16-byte aligned in memory).
pub fn scan(bytes: &[u8]) -> Result<Scan, SegmentError> {
    if bytes.len() < SEGMENT_HEADER_BYTES || bytes[..8] != MAGIC {
        return Err(SegmentError::BadHeader);
    }
    let body = &bytes[SEGMENT_HEADER_BYTES..];
    let mut scan = Scan {
        valid_end: SEGMENT_HEADER_BYTES,
        record_count: 0,
        first_zxid: None,
        last_zxid: None,
        damage: None,
        valid_after_damage: false,
    };
    let end = log_end(body);
    let mut records = Records::verified(&body[..end]);
    let mut offset = 0;
    for record in records.by_ref() {
        match record {
            Ok((zxid, _)) => {
                if scan.last_zxid.is_some_and(|last| zxid <= last) {
                    return Err(SegmentError::OutOfOrder { offset: SEGMENT_HEADER_BYTES + offset });
                }
                scan.first_zxid.get_or_insert(zxid);
                scan.last_zxid = Some(zxid);
                scan.record_count += 1;
                offset = records_offset(&body[..end], offset);
                scan.valid_end = SEGMENT_HEADER_BYTES + offset;
            }
            Err(error) => {
                scan.damage = Some((scan.valid_end, shift(error, SEGMENT_HEADER_BYTES)));
                scan.valid_after_damage = any_valid_record_after(body, offset + HEADER_SIZE_BYTES);
                break;
            }
        }
    }
    Ok(scan)
}

/// The offset after the record that starts at `offset`.
fn records_offset(body: &[u8], offset: usize) -> usize {
    let length = u32::from_le_bytes(body[offset..offset + 4].try_into().expect("4 bytes")) as usize;
    offset + (HEADER_SIZE_BYTES + length).div_ceil(16) * 16
}

fn shift(error: RecordError, by: usize) -> RecordError {
    match error {
        RecordError::Truncated { offset } => RecordError::Truncated { offset: offset + by },
        RecordError::Checksum { offset } => RecordError::Checksum { offset: offset + by },
        RecordError::Invalid { offset } => RecordError::Invalid { offset: offset + by },
    }
}

/// The length of the written part: up to the first all-zero frame header on a 16-byte
/// boundary that starts a run of zeros to the end or to the next frame.
fn log_end(body: &[u8]) -> usize {
    let mut offset = 0;
    while offset + HEADER_SIZE_BYTES <= body.len() {
        let header = &body[offset..offset + HEADER_SIZE_BYTES];
        if header.iter().all(|&byte| byte == 0) {
            return offset;
        }
        let length = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        let next = offset.saturating_add((HEADER_SIZE_BYTES + length).div_ceil(16) * 16);
        if next > body.len() || next <= offset {
            return body.len();
        }
        offset = next;
    }
    body.len()
}

/// Looks for a record with a valid checksum at any 16-byte boundary from `from` on.
fn any_valid_record_after(body: &[u8], from: usize) -> bool {
    let mut offset = from.div_ceil(16) * 16;
    while offset + HEADER_SIZE_BYTES <= body.len() {
        let header = &body[offset..offset + HEADER_SIZE_BYTES];
        let length = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        if length > 0 && offset + HEADER_SIZE_BYTES + length <= body.len() {
            let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
            let payload = &body[offset + HEADER_SIZE_BYTES..offset + HEADER_SIZE_BYTES + length];
            if crc32c::crc32c_append(crc32c::crc32c(&header[8..16]), payload) == crc {
                return true;
            }
        }
        offset += 16;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::append;
    use crate::txn::{Step, Txn, TxnOp};
    use rkyv::util::AlignedVec;

    fn segment(zxids: std::ops::RangeInclusive<i64>, preallocated: usize) -> AlignedVec<16> {
        let mut bytes = AlignedVec::<16>::new();
        bytes.extend_from_slice(&header(*zxids.start()));
        for zxid in zxids {
            let txn = Txn {
                session_id: 1,
                cxid: 1,
                zxid,
                time_ms: 0,
                op: TxnOp::Single(Step::Delete { path: format!("/p{zxid}") }),
            };
            append(&mut bytes, &txn);
        }
        while bytes.len() < preallocated {
            bytes.push(0);
        }
        bytes
    }

    #[test]
    fn a_clean_segment_scans_to_its_last_record() {
        let bytes = segment(1..=10, 4096);
        let scan = scan(&bytes).unwrap();
        assert_eq!((scan.record_count, scan.first_zxid, scan.last_zxid), (10, Some(1), Some(10)));
        assert!(scan.damage.is_none());
        assert!(bytes[scan.valid_end..].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_torn_tail_is_damage_with_nothing_valid_after() {
        let clean = segment(1..=10, 4096);
        let end = scan(&clean).unwrap().valid_end;
        let mut torn = segment(1..=10, 4096);
        // A half-written eleventh record: a header with a length but garbage payload.
        torn[end..end + 4].copy_from_slice(&40u32.to_le_bytes());
        torn[end + 4] = 0x55;
        torn[end + 20] = 0x77;
        let scan = scan(&torn).unwrap();
        assert_eq!(scan.record_count, 10);
        assert_eq!(scan.valid_end, end);
        assert!(scan.damage.is_some());
        assert!(!scan.valid_after_damage);
    }

    #[test]
    fn a_flipped_bit_in_the_middle_is_corruption() {
        let mut bytes = segment(1..=10, 4096);
        bytes[SEGMENT_HEADER_BYTES + 20] ^= 1;
        let scan = scan(&bytes).unwrap();
        assert_eq!(scan.record_count, 0);
        assert!(scan.valid_after_damage);
    }

    #[test]
    fn names_carry_the_first_zxid_in_hex() {
        assert_eq!(file_name(0x1_0000_002a), "log.10000002a");
        assert_eq!(parse_file_name("log.10000002a"), Some(0x1_0000_002a));
        assert_eq!(parse_file_name("snapshot.5"), None);
    }
}
