//! Record framing. A batch of records is a byte run of frames:
//!
//! ```text
//! 0        4        8                16
//! +--------+--------+----------------+---------------------------+---------+
//! | len    | crc32c | zxid           | rkyv payload (len bytes)  | padding |
//! | u32 LE | u32 LE | i64 LE         |                           | to 16   |
//! +--------+--------+----------------+---------------------------+---------+
//! ```
//!
//! The crc32c covers the zxid and the payload. Every frame starts 16-byte aligned, so the
//! payload is aligned for rkyv and is read in place.
//!
//! A checksum is not validation: crafted or unlucky bytes can match it and still not be a
//! transaction, and reading those in place is undefined behaviour. Frames that come from
//! a file or a peer are therefore read with `Records::verified`, which also runs rkyv's
//! validation on every payload, once, where they enter the process. Frames this process
//! wrote, or verified when they arrived, are read with `Records::written`.

use rkyv::util::AlignedVec;

use crate::txn::{access_checked, access_written, ArchivedTxn, Txn};

pub const HEADER_SIZE_BYTES: usize = 16;
pub const ALIGNMENT_BYTES: usize = 16;

/// Appends one framed record to `batch`.
pub fn append(batch: &mut AlignedVec<16>, txn: &Txn) {
    assert_eq!(batch.len() % ALIGNMENT_BYTES, 0, "frames start aligned");
    let payload = txn.to_bytes();
    let length = u32::try_from(payload.len()).expect("a txn is smaller than 4 GiB");
    let mut crc = crc32c::crc32c(&txn.zxid.to_le_bytes());
    crc = crc32c::crc32c_append(crc, &payload);
    batch.extend_from_slice(&length.to_le_bytes());
    batch.extend_from_slice(&crc.to_le_bytes());
    batch.extend_from_slice(&txn.zxid.to_le_bytes());
    batch.extend_from_slice(&payload);
    let padding = (ALIGNMENT_BYTES - batch.len() % ALIGNMENT_BYTES) % ALIGNMENT_BYTES;
    batch.extend_from_slice(&[0; ALIGNMENT_BYTES][..padding]);
    assert_eq!(batch.len() % ALIGNMENT_BYTES, 0);
}

/// The frames of an intact run of frames (one the log or a peer already checked): each
/// one's zxid and byte range, in order. Stops at the first header that does not fit.
pub fn frame_spans(frames: &[u8]) -> impl Iterator<Item = (i64, std::ops::Range<usize>)> + '_ {
    let mut offset = 0;
    std::iter::from_fn(move || {
        if frames.len() - offset < HEADER_SIZE_BYTES {
            return None;
        }
        let length = u32::from_le_bytes(frames[offset..offset + 4].try_into().expect("4 bytes")) as usize;
        let zxid = i64::from_le_bytes(frames[offset + 8..offset + 16].try_into().expect("8 bytes"));
        let padded = (HEADER_SIZE_BYTES + length).div_ceil(ALIGNMENT_BYTES) * ALIGNMENT_BYTES;
        if length == 0 || offset + padded > frames.len() {
            return None;
        }
        let span = offset..offset + padded;
        offset += padded;
        Some((zxid, span))
    })
}

/// The frames with zxids in `(after, through]`, copied into a batch of their own.
pub fn slice(frames: &[u8], after: i64, through: i64) -> AlignedVec<16> {
    assert!(after < through);
    let mut sliced = AlignedVec::<16>::new();
    for (_, span) in frame_spans(frames).filter(|(zxid, _)| *zxid > after && *zxid <= through) {
        sliced.extend_from_slice(&frames[span]);
    }
    sliced
}

/// The offset just past the last frame with a zxid at or below `zxid`, in a run of intact
/// frames in zxid order.
pub fn frame_end_after(frames: &[u8], zxid: i64) -> usize {
    frame_spans(frames).take_while(|(frame_zxid, _)| *frame_zxid <= zxid).last().map_or(0, |(_, span)| span.end)
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// The bytes end inside a frame (a torn write, on disk).
    Truncated { offset: usize },
    /// The checksum does not match the bytes.
    Checksum { offset: usize },
    /// The checksum matches but the payload is not a transaction.
    Invalid { offset: usize },
}

/// Iterates over the records of a batch, verifying each checksum before access.
pub struct Records<'a> {
    bytes: &'a [u8],
    offset: usize,
    validate: bool,
}

impl<'a> Records<'a> {
    /// Records from a file or a peer: each payload is validated before it is read.
    pub fn verified(bytes: &'a [u8]) -> Records<'a> {
        Records::over(bytes, true)
    }

    /// Records this process wrote, or read with `verified` when they arrived.
    pub fn written(bytes: &'a [u8]) -> Records<'a> {
        Records::over(bytes, false)
    }

    fn over(bytes: &'a [u8], validate: bool) -> Records<'a> {
        assert!(bytes.is_empty() || bytes.as_ptr() as usize % ALIGNMENT_BYTES == 0, "batches are 16-byte aligned");
        Records { bytes, offset: 0, validate }
    }

    /// Ends the iteration with `error`: nothing after a damaged frame is read.
    fn fail(&mut self, error: RecordError) -> Option<Result<(i64, &'a ArchivedTxn), RecordError>> {
        self.offset = self.bytes.len();
        Some(Err(error))
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<(i64, &'a ArchivedTxn), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.offset == self.bytes.len() {
            return None;
        }
        let offset = self.offset;
        let rest = &self.bytes[offset..];
        if rest.len() < HEADER_SIZE_BYTES {
            return self.fail(RecordError::Truncated { offset });
        }
        let length = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        let zxid_bytes = &rest[8..16];
        let zxid = i64::from_le_bytes(zxid_bytes.try_into().expect("8 bytes"));
        let padded = (HEADER_SIZE_BYTES + length).div_ceil(ALIGNMENT_BYTES) * ALIGNMENT_BYTES;
        if rest.len() < padded {
            return self.fail(RecordError::Truncated { offset });
        }
        let payload = &rest[HEADER_SIZE_BYTES..HEADER_SIZE_BYTES + length];
        if crc32c::crc32c_append(crc32c::crc32c(zxid_bytes), payload) != crc {
            return self.fail(RecordError::Checksum { offset });
        }
        let txn = if self.validate {
            match access_checked(payload) {
                Some(txn) if txn.zxid.to_native() == zxid => txn,
                _ => return self.fail(RecordError::Invalid { offset }),
            }
        } else {
            access_written(payload)
        };
        assert_eq!(txn.zxid.to_native(), zxid, "a frame's zxid is its record's");
        self.offset += padded;
        Some(Ok((zxid, txn)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{Step, TxnOp};

    fn txn(zxid: i64) -> Txn {
        Txn { session_id: 1, cxid: 2, zxid, time_ms: 3, op: TxnOp::Single(Step::Delete { path: format!("/n{zxid}") }) }
    }

    #[test]
    fn records_round_trip_in_order() {
        let mut batch = AlignedVec::<16>::new();
        for zxid in 1..=5 {
            append(&mut batch, &txn(zxid));
        }
        let zxids: Vec<i64> = Records::written(&batch).map(|record| record.unwrap().0).collect();
        assert_eq!(zxids, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_slice_keeps_the_frames_of_its_zxids_whole() {
        let mut batch = AlignedVec::<16>::new();
        for zxid in 1..=5 {
            append(&mut batch, &txn(zxid));
        }
        let sliced = slice(&batch, 2, 4);
        let zxids: Vec<i64> = Records::written(&sliced).map(|record| record.unwrap().0).collect();
        assert_eq!(zxids, vec![3, 4]);
    }

    #[test]
    fn a_flipped_bit_fails_the_checksum() {
        let mut batch = AlignedVec::<16>::new();
        append(&mut batch, &txn(1));
        let last = batch.len() - 20;
        batch[last] ^= 1;
        assert!(matches!(Records::written(&batch).next(), Some(Err(RecordError::Checksum { offset: 0 }))));
    }

    #[test]
    fn a_payload_that_matches_its_checksum_but_is_not_a_txn_is_refused_where_bytes_enter() {
        let mut batch = AlignedVec::<16>::new();
        append(&mut batch, &txn(1));
        let length = u32::from_le_bytes(batch[0..4].try_into().unwrap()) as usize;
        for byte in &mut batch[HEADER_SIZE_BYTES..HEADER_SIZE_BYTES + length] {
            *byte = 0xff;
        }
        let crc =
            crc32c::crc32c_append(crc32c::crc32c(&batch[8..16]), &batch[HEADER_SIZE_BYTES..HEADER_SIZE_BYTES + length]);
        batch[4..8].copy_from_slice(&crc.to_le_bytes());
        assert!(matches!(Records::verified(&batch).next(), Some(Err(RecordError::Invalid { offset: 0 }))));
    }

    #[test]
    fn a_torn_tail_is_reported_as_truncated() {
        let mut batch = AlignedVec::<16>::new();
        append(&mut batch, &txn(1));
        append(&mut batch, &txn(2));
        let mut torn = AlignedVec::<16>::new();
        torn.extend_from_slice(&batch[..batch.len() - 16]);
        let results: Vec<_> = Records::written(&torn).collect();
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(RecordError::Truncated { .. })));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::txn::{Step, TxnOp};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_sequence_of_records_reads_back_and_a_cut_anywhere_is_detected(
            paths in prop::collection::vec("/[a-z]{1,12}", 1..20),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut batch = AlignedVec::<16>::new();
            for (index, path) in paths.iter().enumerate() {
                let op = TxnOp::Single(Step::Delete { path: path.clone() });
                append(&mut batch, &Txn { session_id: 1, cxid: index as i32, zxid: index as i64 + 1, time_ms: 0, op });
            }
            let read: Vec<i64> = Records::written(&batch).map(|record| record.unwrap().0).collect();
            prop_assert_eq!(read.len(), paths.len());
            let cut_at = cut.index(batch.len());
            let mut torn = AlignedVec::<16>::new();
            torn.extend_from_slice(&batch[..cut_at]);
            let results: Vec<_> = Records::written(&torn).collect();
            let whole = results.iter().take_while(|result| result.is_ok()).count();
            prop_assert!(whole <= paths.len());
            prop_assert!(results.iter().skip(whole).all(|result| result.is_err()));
        }
    }
}
