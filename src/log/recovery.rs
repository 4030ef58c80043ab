//! Recovery: finds the log's segment files, maps them read-only, checks every record, cuts
//! off a torn tail and refuses to start on corruption anywhere else, naming the file and
//! offset. The records are then replayed in place from the maps: no deserialization.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::record::{RecordError, Records};
use super::segment::{self, Scan, SegmentError, SEGMENT_HEADER_BYTES};
use crate::txn::ArchivedTxn;

/// One segment as found on disk.
pub struct RecoveredSegment {
    pub path: PathBuf,
    pub map: Mmap,
    /// Offset just past the last valid record.
    pub valid_end: usize,
}

/// The log found on disk, ready to replay.
#[derive(Default)]
pub struct RecoveredLog {
    pub segments: Vec<RecoveredSegment>,
}

impl RecoveredLog {
    /// Every record, in zxid order, read in place from the maps.
    pub fn records(&self) -> impl Iterator<Item = (i64, &ArchivedTxn)> {
        self.segments.iter().flat_map(|segment| {
            Records::written(&segment.map[SEGMENT_HEADER_BYTES..segment.valid_end])
                .map(|record| record.expect("recovery verified every record"))
        })
    }

    /// The records after `zxid` (those a snapshot at `zxid` does not hold).
    pub fn records_after(&self, zxid: i64) -> impl Iterator<Item = (i64, &ArchivedTxn)> {
        self.records().filter(move |(record_zxid, _)| *record_zxid > zxid)
    }

    /// The last segment and where appending resumes in it.
    pub fn tail(&self) -> Option<(&Path, u64)> {
        self.segments.last().map(|segment| (segment.path.as_path(), segment.valid_end as u64))
    }
}

fn last_zxid_of(segment: &RecoveredSegment) -> Option<i64> {
    Records::written(&segment.map[SEGMENT_HEADER_BYTES..segment.valid_end])
        .filter_map(Result::ok)
        .map(|(zxid, _)| zxid)
        .last()
}

/// Why the log cannot be recovered. The server refuses to start rather than lose records.
#[derive(Debug)]
pub enum RecoveryError {
    Io { path: PathBuf, error: std::io::Error },
    Corrupt { path: PathBuf, offset: usize, detail: String },
}

impl std::fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoveryError::Io { path, error } => write!(f, "{}: {error}", path.display()),
            RecoveryError::Corrupt { path, offset, detail } => {
                write!(f, "{} is corrupt at offset {offset}: {detail}; refusing to start", path.display())
            }
        }
    }
}

impl std::error::Error for RecoveryError {}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> RecoveryError + '_ {
    move |error| RecoveryError::Io { path: path.to_owned(), error }
}

/// Lists the segment files of `dir` in zxid order.
pub fn segment_files(dir: &Path) -> Result<Vec<(i64, PathBuf)>, RecoveryError> {
    let mut files = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(error) => return Err(RecoveryError::Io { path: dir.to_owned(), error }),
    };
    for entry in entries {
        let entry = entry.map_err(io_error(dir))?;
        if let Some(zxid) = entry.file_name().to_str().and_then(segment::parse_file_name) {
            files.push((zxid, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Recovers the log in `dir`. A torn tail in the last segment is cut off (zeroed and
/// synced) and logged; damage anywhere else is an error.
pub fn recover(dir: &Path) -> Result<RecoveredLog, RecoveryError> {
    let files = segment_files(dir)?;
    let mut log = RecoveredLog::default();
    let count = files.len();
    for (index, (first_zxid, path)) in files.into_iter().enumerate() {
        let is_last = index + 1 == count;
        let file = File::open(&path).map_err(io_error(&path))?;
        // SAFETY: the map is read-only and this process is the only writer of the log;
        // the file is not truncated while mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(io_error(&path))?;
        let scan = match segment::scan(&map) {
            Ok(scan) => scan,
            Err(SegmentError::BadHeader) if is_last && map.iter().all(|&byte| byte == 0) => {
                // The server stopped while creating this segment: it holds nothing.
                tracing::warn!(path = %path.display(), "removing an empty segment left by a crash");
                drop(map);
                std::fs::remove_file(&path).map_err(io_error(&path))?;
                continue;
            }
            Err(SegmentError::BadHeader) => {
                return Err(RecoveryError::Corrupt { path, offset: 0, detail: "bad segment header".into() })
            }
            Err(SegmentError::OutOfOrder { offset }) => {
                return Err(RecoveryError::Corrupt { path, offset, detail: "zxids out of order".into() })
            }
        };
        // A record whose checksum matches but whose bytes are not a transaction was not
        // torn by a crash (a torn write almost never matches its crc32c): it may have been
        // acknowledged, so it is never cut off; the server refuses to start.
        if let Some((offset, damage @ RecordError::Invalid { .. })) = &scan.damage {
            return Err(RecoveryError::Corrupt { path, offset: *offset, detail: format!("{damage:?}") });
        }
        if is_last && scan.record_count == 0 && !scan.valid_after_damage {
            // The server stopped after creating this segment and before its first batch
            // was durable (or a cut left none in it): it holds nothing, and the next record
            // appended need not have the zxid the file is named after.
            tracing::warn!(path = %path.display(), "removing a last segment that holds no records");
            drop(map);
            std::fs::remove_file(&path).map_err(io_error(&path))?;
            continue;
        }
        check_continuity(&log, &path, first_zxid, &scan)?;
        if let Some((offset, damage)) = &scan.damage {
            if !is_last || scan.valid_after_damage {
                return Err(RecoveryError::Corrupt {
                    path,
                    offset: *offset,
                    detail: format!("{damage:?} with valid records after it"),
                });
            }
            tracing::warn!(path = %path.display(), offset, ?damage, "cutting off a torn tail: these records were never acknowledged");
            zero_from(&path, scan.valid_end as u64, map.len() as u64)?;
        }
        log.segments.push(RecoveredSegment { path, map, valid_end: scan.valid_end });
    }
    Ok(log)
}

fn check_continuity(log: &RecoveredLog, path: &Path, first_zxid: i64, scan: &Scan) -> Result<(), RecoveryError> {
    if scan.first_zxid.is_some_and(|zxid| zxid != first_zxid) {
        return Err(RecoveryError::Corrupt {
            path: path.to_owned(),
            offset: SEGMENT_HEADER_BYTES,
            detail: "first record does not match the file name".into(),
        });
    }
    if let Some(previous) = log.segments.last().and_then(last_zxid_of) {
        if scan.first_zxid.is_some_and(|zxid| zxid <= previous) {
            return Err(RecoveryError::Corrupt {
                path: path.to_owned(),
                offset: SEGMENT_HEADER_BYTES,
                detail: format!("starts at or before the previous segment's last zxid {previous:#x}"),
            });
        }
    }
    Ok(())
}

/// Overwrites a torn tail with zeros and syncs, so later appends never sit next to stale
/// bytes that could pass for records.
fn zero_from(path: &Path, from: u64, to: u64) -> Result<(), RecoveryError> {
    let mut file = OpenOptions::new().write(true).open(path).map_err(io_error(path))?;
    file.seek(SeekFrom::Start(from)).map_err(io_error(path))?;
    let zeros = vec![0u8; 1 << 20];
    let mut position = from;
    while position < to {
        let chunk = ((to - position) as usize).min(zeros.len());
        file.write_all(&zeros[..chunk]).map_err(io_error(path))?;
        position += chunk as u64;
    }
    file.sync_data().map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::append;
    use crate::txn::{Step, Txn, TxnOp};

    fn segment_bytes(first_zxid: i64, zxids: std::ops::Range<i64>) -> Vec<u8> {
        let mut bytes = rkyv::util::AlignedVec::<16>::new();
        bytes.extend_from_slice(&segment::header(first_zxid));
        for zxid in zxids {
            let op = TxnOp::Single(Step::Delete { path: format!("/n{zxid}") });
            append(&mut bytes, &Txn { session_id: 1, cxid: 1, zxid, time_ms: 0, op });
        }
        bytes.extend_from_slice(&[0; 4096]);
        bytes.to_vec()
    }

    #[test]
    fn a_last_segment_with_only_its_header_is_removed_and_the_log_ends_before_it() {
        // A crash between writing a new segment's header and its first batch leaves a
        // segment named after a zxid it never held; appending the next epoch's records
        // there would name the file wrongly, so recovery drops it.
        let dir = std::env::temp_dir().join(format!("ringkeeper-recovery-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(segment::file_name(1)), segment_bytes(1, 1..4)).unwrap();
        std::fs::write(dir.join(segment::file_name(4)), segment_bytes(4, 4..4)).unwrap();
        let log = recover(&dir).unwrap();
        assert!(!dir.join(segment::file_name(4)).exists());
        assert_eq!(log.records().map(|(zxid, _)| zxid).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(log.tail().unwrap().0, dir.join(segment::file_name(1)));
        drop(log);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_last_record_that_matches_its_checksum_but_is_not_a_txn_stops_recovery_and_is_kept() {
        // A crash tears a write; it does not leave bytes whose crc32c matches. Such a
        // record may have been acknowledged: it is corruption, never a tail to cut.
        let dir = std::env::temp_dir().join(format!("ringkeeper-recovery-invalid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut bytes = segment_bytes(1, 1..3);
        let (_, frame) = crate::log::record::frame_spans(&bytes[SEGMENT_HEADER_BYTES..]).nth(1).unwrap();
        let second = SEGMENT_HEADER_BYTES + frame.start;
        let length = u32::from_le_bytes(bytes[second..second + 4].try_into().unwrap()) as usize;
        let payload = second + 16..second + 16 + length;
        bytes[payload.clone()].fill(0xff);
        let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[second + 8..second + 16]), &bytes[payload]);
        bytes[second + 4..second + 8].copy_from_slice(&crc.to_le_bytes());
        let path = dir.join(segment::file_name(1));
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(recover(&dir), Err(RecoveryError::Corrupt { .. })));
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing was cut");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
