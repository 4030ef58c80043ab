//! ZooKeeper's transaction log files (`FileTxnLog`): a 16-byte header (`ZKLG`, 2, dbid),
//! then records of `[Adler-32 of the entry, i64][entry length, i32][entry][0x42]`, where
//! an entry is the TxnHeader, the transaction's record and (since 3.6) the tree digest
//! after it, and zeros after the last record (the file is preallocated). Sans-IO.
//!
//! As ZooKeeper's reader (`FileTxnIterator`): zeros, a record cut short or one without its
//! end marker end the file (a torn tail); a complete record whose checksum does not match
//! is corruption, and the import stops there.

use std::path::Path;

use super::error::ImportError;
use super::java::adler32;
use crate::proto::acl::{decode_acl_vec, Acl};
use crate::proto::jute::{DecodeError, Reader};
use crate::tree::prepare::{ttl_owner, CONTAINER_OWNER, TTL_MAX_MS};

const MAGIC: i32 = 0x5A4B_4C47; // "ZKLG"
const END_OF_RECORD: u8 = 0x42;

/// One transaction of a ZooKeeper log.
#[derive(Debug, Clone, PartialEq)]
pub struct ZookeeperTxn {
    /// Where its record starts in the log file.
    pub offset: usize,
    pub session_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time_ms: i64,
    pub op: ZookeeperOp,
    /// The tree's digest after this transaction, where ZooKeeper logged one.
    pub digest: Option<u64>,
}

/// A transaction's change, in ZooKeeper's terms (`SerializeUtils.deserializeTxn`).
#[derive(Debug, Clone, PartialEq)]
pub enum ZookeeperOp {
    CreateSession {
        timeout_ms: i32,
    },
    /// The session's ephemerals as the leader listed them; None for a log written without
    /// `CloseSessionTxn` (every ephemeral of the session goes).
    CloseSession {
        paths: Option<Vec<String>>,
    },
    Error {
        code: i32,
    },
    /// `ephemeral_owner` is the session (ephemeral), 0, or a container's or TTL node's
    /// mark. `fixes_parent` is ZooKeeper's replay fix-up of a plain create (type 1) whose
    /// node already exists: the parent's cversion and pzxid are raised anyway.
    Create {
        path: String,
        data: Option<Vec<u8>>,
        acl: Vec<Acl>,
        ephemeral_owner: i64,
        parent_cversion: i32,
        fixes_parent: bool,
    },
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
    Check {
        path: String,
    },
    Multi(Vec<ZookeeperOp>),
}

/// The zxid of a log file's name (`log.<hex>`), if it names one.
pub fn zxid_of_name(name: &str) -> Option<i64> {
    i64::from_str_radix(name.strip_prefix("log.")?, 16).ok()
}

/// A log file's complete transactions, in order, and where a record a crash cut short
/// was found, if one was (the rest of the file is not read, as in ZooKeeper).
#[derive(Debug)]
pub struct LogFile {
    pub txns: Vec<ZookeeperTxn>,
    pub cut_at: Option<usize>,
}

enum Next<'a> {
    Entry(&'a [u8]),
    /// Zeros: the preallocated space after the last record.
    End,
    /// A record cut short, at this offset.
    Cut(usize),
}

pub fn read(file: &Path, bytes: &[u8]) -> Result<LogFile, ImportError> {
    let mut reader = Reader::new(bytes);
    let magic = reader.read_i32().map_err(|error| ImportError::new(file, 0, error.to_string()))?;
    if magic != MAGIC {
        return Err(ImportError::new(file, 0, format!("magic {magic:#x} is not a ZooKeeper log's (ZKLG)")));
    }
    let version = reader.read_i32().map_err(|error| ImportError::new(file, 4, error.to_string()))?;
    if version != 2 {
        return Err(ImportError::new(file, 4, format!("log format version {version}, not 2")));
    }
    reader.read_i64().map_err(|error| ImportError::new(file, 8, error.to_string()))?;
    let mut txns = Vec::new();
    loop {
        let offset = reader.position();
        match next_entry(file, &mut reader)? {
            Next::Entry(entry) => {
                txns.push(parse_entry(entry, offset).map_err(|reason| ImportError::new(file, offset, reason))?)
            }
            Next::End => return Ok(LogFile { txns, cut_at: None }),
            // Fewer zeros than a record header are still the end.
            Next::Cut(at) if bytes[at..].iter().all(|&byte| byte == 0) => return Ok(LogFile { txns, cut_at: None }),
            Next::Cut(at) => return Ok(LogFile { txns, cut_at: Some(at) }),
        }
    }
}

/// The next record's entry, checked.
fn next_entry<'a>(file: &Path, reader: &mut Reader<'a>) -> Result<Next<'a>, ImportError> {
    let offset = reader.position();
    if reader.is_empty() {
        return Ok(Next::End);
    }
    let Ok(crc) = reader.read_i64() else { return Ok(Next::Cut(offset)) };
    // A zero length is preallocated space; a length past the end, a missing end marker
    // or a marker that is not 0x42 is a record a crash cut short.
    let entry = match reader.read_buffer() {
        Ok(Some(entry)) if !entry.is_empty() => entry,
        Ok(Some(_)) if crc == 0 => return Ok(Next::End),
        _ => return Ok(Next::Cut(offset)),
    };
    if reader.read_u8() != Ok(END_OF_RECORD) {
        return Ok(Next::Cut(offset));
    }
    if i64::from(adler32(entry)) != crc {
        return Err(ImportError::new(file, offset, "a complete record whose checksum does not match its contents"));
    }
    Ok(Next::Entry(entry))
}

fn parse_entry(entry: &[u8], offset: usize) -> Result<ZookeeperTxn, String> {
    let mut reader = Reader::new(entry);
    let header = |error: DecodeError| format!("a transaction header: {error}");
    let session_id = reader.read_i64().map_err(header)?;
    let cxid = reader.read_i32().map_err(header)?;
    let zxid = reader.read_i64().map_err(header)?;
    let time_ms = reader.read_i64().map_err(header)?;
    let kind = reader.read_i32().map_err(header)?;
    let op = parse_op(kind, session_id, &mut reader, true).map_err(|reason| format!("zxid {zxid:#x}: {reason}"))?;
    // The tree digest after the transaction, when ZooKeeper logged one (TxnDigest: the
    // digest version, then the digest).
    let digest = (reader.remaining() >= 12).then(|| {
        let _version = reader.read_i32();
        reader.read_i64().map(|digest| digest as u64).ok()
    });
    Ok(ZookeeperTxn { offset, session_id, cxid, zxid, time_ms, op, digest: digest.flatten() })
}

/// A transaction's record by its type; `top_level` is false inside a multi, where only
/// ZooKeeper's multi operations may appear.
fn parse_op(kind: i32, session_id: i64, reader: &mut Reader<'_>, top_level: bool) -> Result<ZookeeperOp, String> {
    let record = |error: DecodeError| format!("a type {kind} record: {error}");
    Ok(match kind {
        -10 if top_level => ZookeeperOp::CreateSession { timeout_ms: reader.read_i32().map_err(record)? },
        -11 if top_level => {
            // Without CloseSessionTxn the record is empty, or holds only the digest: the
            // paths are the body only if they parse and leave nothing or a digest.
            let mut attempt = reader.clone();
            let paths = match attempt.read_string_vec() {
                Ok(paths) if matches!(attempt.remaining(), 0 | 12) => {
                    *reader = attempt;
                    Some(paths)
                }
                _ => None,
            };
            ZookeeperOp::CloseSession { paths }
        }
        -1 => ZookeeperOp::Error { code: reader.read_i32().map_err(record)? },
        1 | 15 | 19 | 21 => {
            let path = reader.read_string().map_err(record)?;
            let data = reader.read_buffer().map_err(record)?.map(<[u8]>::to_vec);
            let acl = decode_acl_vec(reader).map_err(record)?;
            let (ephemeral_owner, parent_cversion) = match kind {
                19 => (CONTAINER_OWNER, reader.read_i32().map_err(record)?),
                21 => {
                    let parent_cversion = reader.read_i32().map_err(record)?;
                    let ttl_ms = reader.read_i64().map_err(record)?;
                    if !(1..=TTL_MAX_MS).contains(&ttl_ms) {
                        return Err(format!("a TTL of {ttl_ms} ms"));
                    }
                    (ttl_owner(ttl_ms), parent_cversion)
                }
                _ => {
                    let ephemeral = reader.read_bool().map_err(record)?;
                    // CreateTxnV0 (before 3.3) has no parentCVersion: -1 means "one more".
                    let parent_cversion =
                        if kind == 1 && reader.remaining() < 4 { -1 } else { reader.read_i32().map_err(record)? };
                    (if ephemeral { session_id } else { 0 }, parent_cversion)
                }
            };
            ZookeeperOp::Create { path, data, acl, ephemeral_owner, parent_cversion, fixes_parent: kind == 1 }
        }
        2 | 20 => ZookeeperOp::Delete { path: reader.read_string().map_err(record)? },
        5 | 16 if top_level || kind == 5 => {
            let path = reader.read_string().map_err(record)?;
            let data = reader.read_buffer().map_err(record)?.map(<[u8]>::to_vec);
            ZookeeperOp::SetData { path, data, version: reader.read_i32().map_err(record)? }
        }
        7 if top_level => {
            let path = reader.read_string().map_err(record)?;
            let acl = decode_acl_vec(reader).map_err(record)?;
            ZookeeperOp::SetAcl { path, acl, version: reader.read_i32().map_err(record)? }
        }
        13 if !top_level => {
            let path = reader.read_string().map_err(record)?;
            reader.read_i32().map_err(record)?;
            ZookeeperOp::Check { path }
        }
        14 if top_level => {
            let count = reader.read_count(8).map_err(record)?;
            let mut ops = Vec::with_capacity(count);
            for _ in 0..count {
                let inner_kind = reader.read_i32().map_err(record)?;
                let inner = reader.read_buffer().map_err(record)?.unwrap_or(&[]);
                ops.push(parse_op(inner_kind, session_id, &mut Reader::new(inner), false)?);
            }
            ZookeeperOp::Multi(ops)
        }
        _ => {
            return Err(format!(
                "transaction type {kind} is not one ZooKeeper logs{}",
                if top_level { "" } else { " in a multi" }
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::jute::Writer;

    fn record(entry: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer = Writer::new(&mut bytes);
        writer.write_i64(i64::from(adler32(entry)));
        writer.write_buffer(Some(entry));
        bytes.push(END_OF_RECORD);
        bytes
    }

    fn entry(zxid: i64, kind: i32, body: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer = Writer::new(&mut bytes);
        writer.write_i64(0x77);
        writer.write_i32(1);
        writer.write_i64(zxid);
        writer.write_i64(1000);
        writer.write_i32(kind);
        body(&mut writer);
        bytes
    }

    fn log(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer = Writer::new(&mut bytes);
        writer.write_i32(MAGIC);
        writer.write_i32(2);
        writer.write_i64(0);
        for entry in entries {
            bytes.extend_from_slice(&record(entry));
        }
        bytes
    }

    fn create(zxid: i64, path: &str, ephemeral: bool) -> Vec<u8> {
        entry(zxid, 1, |writer| {
            writer.write_str(path);
            writer.write_buffer(Some(b"v"));
            crate::proto::acl::encode_acl_vec(&[Acl::open_unsafe()], writer);
            writer.write_bool(ephemeral);
            writer.write_i32(1);
            // The tree digest ZooKeeper 3.6+ appends.
            writer.write_i32(2);
            writer.write_i64(99);
        })
    }

    #[test]
    fn records_read_in_order_until_the_zeros_of_preallocated_space() {
        let mut bytes = log(&[create(1, "/a", false), create(2, "/e", true)]);
        bytes.extend_from_slice(&[0; 64]);
        let log = read(Path::new("log.1"), &bytes).unwrap();
        assert_eq!(log.cut_at, None);
        let txns = log.txns;
        assert_eq!(txns.len(), 2);
        assert_eq!((txns[0].offset, txns[1].offset), (16, 16 + record(&create(1, "/a", false)).len()));
        assert_eq!(txns[1].digest, Some(99));
        let ZookeeperOp::Create { ephemeral_owner, parent_cversion, fixes_parent, .. } = &txns[1].op else { panic!() };
        assert_eq!((*ephemeral_owner, *parent_cversion, *fixes_parent), (0x77, 1, true));
    }

    #[test]
    fn a_torn_last_record_ends_the_log_and_a_corrupt_one_stops_the_import() {
        let whole = log(&[create(1, "/a", false), create(2, "/b", false)]);
        let second = 16 + record(&create(1, "/a", false)).len();
        for cut in [whole.len() - 1, whole.len() - 10, whole.len() - 30] {
            let log = read(Path::new("log.1"), &whole[..cut]).unwrap();
            assert_eq!((log.txns.len(), log.cut_at), (1, Some(second)), "cut at {cut}");
        }
        let mut corrupt = whole.clone();
        let last = corrupt.len() - 5;
        corrupt[last] ^= 0xff;
        let error = read(Path::new("log.1"), &corrupt).unwrap_err();
        assert!(error.reason.contains("checksum") && error.offset > 16, "{error}");
    }

    #[test]
    fn multis_close_sessions_and_extended_creates_parse_as_zookeeper_logs_them() {
        let multi = entry(3, 14, |writer| {
            writer.write_i32(2);
            for kind in [2, 13] {
                writer.write_i32(kind);
                let mut body = Vec::new();
                let mut inner_writer = Writer::new(&mut body);
                inner_writer.write_str("/a");
                if kind == 13 {
                    inner_writer.write_i32(0);
                }
                writer.write_buffer(Some(&body));
            }
        });
        let close_without_body = entry(4, -11, |_| {});
        let ttl = entry(5, 21, |writer| {
            writer.write_str("/t");
            writer.write_buffer(None);
            crate::proto::acl::encode_acl_vec(&[Acl::open_unsafe()], writer);
            writer.write_i32(3);
            writer.write_i64(5000);
        });
        let txns = read(Path::new("log.3"), &log(&[multi, close_without_body, ttl])).unwrap().txns;
        assert_eq!(
            txns[0].op,
            ZookeeperOp::Multi(vec![
                ZookeeperOp::Delete { path: "/a".into() },
                ZookeeperOp::Check { path: "/a".into() }
            ])
        );
        assert_eq!(txns[1].op, ZookeeperOp::CloseSession { paths: None });
        let ZookeeperOp::Create { ephemeral_owner, data, .. } = &txns[2].op else { panic!() };
        assert_eq!((*ephemeral_owner, data), (ttl_owner(5000), &None));
        let check_alone = log(&[entry(6, 13, |writer| writer.write_str("/a"))]);
        assert!(read(Path::new("log.6"), &check_alone).unwrap_err().reason.contains("type 13"));
    }
}
