//! The fuzz targets' bodies: every decoder of bytes from a socket or a file, and a
//! structure-aware run of client operations against the sans-IO tree. Each function takes
//! arbitrary bytes and panics only where an invariant breaks; an error answer is a pass.
//!
//! `fuzz_targets/` hands them to libFuzzer (`cargo +nightly fuzz run <target>`), and
//! `tests/fuzz_corpora.rs` in the server's crate replays every file of `corpus/` through
//! them on the stable toolchain, so a crash once found stays a regression test.

use std::path::Path;

use ringkeeper::config::Config;
use ringkeeper::import::{java::adler32, replay::Replay, zookeeper_log, zookeeper_snapshot};
use ringkeeper::log::{dump, record, recovery, segment};
use ringkeeper::proto::connect::ConnectRequest;
use ringkeeper::proto::request::{decode_request, CreateRequest, Request, WriteOp};
use ringkeeper::proto::{acl::Acl, four_letter, frame, opcode};
use ringkeeper::tree::{prepare, snapshot, Caller, DataTree, PendingChanges};
use ringkeeper::txn::{access_written, Txn};
use rkyv::util::AlignedVec;

/// jute.maxbuffer's default: the largest frame a server accepts.
const FRAME_BYTES_MAX: usize = 0xfffff;

/// Bytes copied to a 16-byte boundary, as the log and snapshot files are mapped.
fn aligned(bytes: &[u8]) -> AlignedVec<16> {
    let mut copy = AlignedVec::<16>::with_capacity(bytes.len());
    copy.extend_from_slice(bytes);
    copy
}

/// A request frame's body (header and record), as a connection hands it to the decoder.
pub fn request(data: &[u8]) {
    if let Ok((_, request)) = decode_request(data) {
        let _ = request.is_write();
    }
}

/// A connection's first bytes: a four-letter word, or a length prefix and the connect
/// request it frames.
pub fn connect(data: &[u8]) {
    let Some(prefix) = data.get(..4) else { return };
    let prefix: [u8; 4] = prefix.try_into().expect("4 bytes");
    if four_letter::parse(prefix).is_some() {
        return;
    }
    let Ok(length) = frame::frame_length(prefix, FRAME_BYTES_MAX) else { return };
    let body = &data[4..data.len().min(4 + length)];
    if let Ok(connect) = ConnectRequest::decode(body) {
        let mut encoded = Vec::new();
        connect.encode(&mut encoded);
        assert_eq!(ConnectRequest::decode(&encoded).as_ref(), Ok(&connect), "a connect request round-trips");
    }
}

/// A four-letter word against a whitelist from the configuration.
pub fn four_letter(data: &[u8]) {
    let Some((word, whitelist)) = data.split_first_chunk::<4>() else { return };
    let text = format!("4lw.commands.whitelist={}\n", String::from_utf8_lossy(whitelist));
    let Ok((config, _)) = Config::parse(&text) else { return };
    if let Some(command) = four_letter::parse(*word) {
        let _ = four_letter::is_allowed(&config.four_letter_whitelist, command);
    }
}

/// zoo.cfg text.
pub fn zoo_cfg(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok((config, _)) = Config::parse(text) {
        let _ = config.membership_text();
        for requested_ms in [0, 1, i32::MAX, -1] {
            let _ = config.negotiate_timeout_ms(requested_ms);
        }
    }
}

/// A log segment file: scanned, read record by record, dumped, cut at a point the input
/// names (a torn write) and recovered from a data directory.
pub fn log_segment(data: &[u8]) {
    let Some((cut, file)) = data.split_first_chunk::<2>() else { return };
    let bytes = aligned(file);
    let Ok(scan) = segment::scan(&bytes) else { return };
    let intact: Vec<i64> = record::Records::verified(&bytes[segment::SEGMENT_HEADER_BYTES..scan.valid_end])
        .map(|record| record.expect("a scan's valid range holds intact records").0)
        .collect();
    assert_eq!(intact.len() as u64, scan.record_count);
    let _ = dump::dump(&bytes, false);
    let _ = dump::dump(&bytes, true);
    // A torn write keeps a prefix of the records and never invents one.
    let cut_at = (u16::from_le_bytes(*cut) as usize).min(bytes.len());
    if let Ok(torn) = segment::scan(&aligned(&bytes[..cut_at])) {
        let kept: Vec<i64> = record::Records::verified(&bytes[segment::SEGMENT_HEADER_BYTES..torn.valid_end])
            .map(|record| record.expect("intact").0)
            .collect();
        assert!(intact.starts_with(&kept), "a cut keeps a prefix of the records");
    }
    recover_from_directory(&bytes);
}

/// Recovery of a data directory that holds this one segment.
fn recover_from_directory(bytes: &[u8]) {
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("ringkeeper-fuzz-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let first_zxid = bytes.get(8..16).map_or(0, |zxid| i64::from_le_bytes(zxid.try_into().expect("8 bytes")));
    std::fs::write(dir.join(segment::file_name(first_zxid.max(1))), bytes).expect("the segment is written");
    if let Ok(log) = recovery::recover(&dir) {
        let zxids: Vec<i64> = log.records().map(|(zxid, _)| zxid).collect();
        assert!(zxids.windows(2).all(|pair| pair[0] < pair[1]), "recovered records are in zxid order");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A snapshot file. Half the inputs are taken as they are; the other half are taken as
/// an archive under a header that checks out, so the fuzzer reaches rkyv's validation
/// instead of stopping at the checksum.
pub fn snapshot_file(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else { return };
    let bytes = if mode & 1 == 0 { aligned(body) } else { aligned(&with_valid_header(body)) };
    if let Ok(tree) = snapshot::access(&bytes).and_then(snapshot::load) {
        tree.check_invariants();
    }
    let _ = dump::dump_snapshot(&bytes, false);
    let _ = dump::dump_snapshot(&bytes, true);
}

fn with_valid_header(archive: &[u8]) -> Vec<u8> {
    let mut bytes = snapshot::encode(&DataTree::new());
    bytes.truncate(snapshot::HEADER_BYTES);
    bytes[16..24].copy_from_slice(&(archive.len() as u64).to_le_bytes());
    bytes[24..28].copy_from_slice(&crc32c::crc32c(archive).to_le_bytes());
    bytes.extend_from_slice(archive);
    bytes
}

/// Client operations, drawn from the input, prepared and applied as the ordering point
/// does: several prepared against pending changes, then applied as one batch. After each
/// batch the tree's structure holds; at the end a snapshot of it loads to the same tree.
pub fn tree_ops(data: &[u8]) {
    let mut input = Draw { bytes: data };
    let mut tree = DataTree::new();
    let mut pending = PendingChanges::default();
    let mut zxid = 0;
    let mut now_ms = 1_000;
    let identities = Vec::new();
    for _ in 0..64 {
        if input.bytes.is_empty() {
            break;
        }
        let mut batch = Vec::new();
        for _ in 0..1 + input.below(4) {
            let session_id = 1 + input.below(3) as i64;
            let caller = Caller {
                session_id,
                identities: &identities,
                extended_types: true,
                enforce_quota: true,
                x509_acls: true,
            };
            let request = input.request(&tree, now_ms);
            zxid += 1;
            now_ms += 1 + input.below(2_000) as i64;
            let op = prepare(&tree, &mut pending, caller, zxid, &request);
            batch.push(Txn { session_id, cxid: zxid as i32, zxid, time_ms: now_ms, op }.to_bytes());
        }
        for bytes in &batch {
            tree.apply(access_written(bytes), &mut Vec::new());
        }
        pending.applied_through(zxid);
        tree.check_invariants();
    }
    let image = aligned(&snapshot::encode(&tree));
    let loaded = snapshot::access(&image).and_then(snapshot::load).expect("this process's own snapshot loads");
    loaded.check_invariants();
    assert_eq!(loaded.node_count(), tree.node_count());
    for (path, node) in tree.nodes() {
        let other = loaded.node(path).expect("every node is in the snapshot");
        assert_eq!((node.stat(), &node.data), (other.stat(), &other.data), "{path} loads as it was");
    }
}

/// Draws choices from the fuzzer's bytes; zeros once they run out.
struct Draw<'a> {
    bytes: &'a [u8],
}

/// Few paths, so operations meet: parents and children, system nodes, a quota, and
/// paths ZooKeeper refuses.
const PATHS: [&str; 12] = [
    "/a",
    "/a/b",
    "/a/b/c",
    "/b",
    "/b/a",
    "/",
    "/zookeeper",
    "/zookeeper/quota/a",
    "/zookeeper/quota/a/zookeeper_limits",
    "/a/",
    "a",
    "/a/./b",
];

impl Draw<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&byte, rest)) = self.bytes.split_first() else { return 0 };
        self.bytes = rest;
        byte
    }

    fn below(&mut self, bound: u32) -> u32 {
        u32::from(self.byte()) % bound
    }

    fn path(&mut self) -> String {
        PATHS[self.below(PATHS.len() as u32) as usize].to_owned()
    }

    fn version(&mut self) -> i32 {
        self.below(4) as i32 - 1
    }

    fn data(&mut self) -> Option<Vec<u8>> {
        match self.below(4) {
            0 => None,
            1 => Some(b"n=3,b=100".to_vec()),
            length => Some(vec![7; length as usize * 40]),
        }
    }

    fn acl(&mut self) -> Vec<Acl> {
        match self.below(4) {
            0 => Vec::new(),
            1 => vec![Acl::read_unsafe()],
            2 => vec![Acl { perms: 31, scheme: "digest".into(), id: "nobody:x".into() }],
            _ => vec![Acl::open_unsafe()],
        }
    }

    fn write(&mut self, tree: &DataTree, now_ms: i64) -> WriteOp {
        match self.below(7) {
            0 | 1 => {
                let flags = self.below(7) as i32;
                let opcode = match flags {
                    4 => opcode::CREATE_CONTAINER,
                    5 | 6 => opcode::CREATE_TTL,
                    _ => opcode::CREATE2,
                };
                let ttl_ms = i64::from(self.below(3)) * 500;
                WriteOp::Create(CreateRequest {
                    opcode,
                    path: self.path(),
                    data: self.data(),
                    acl: self.acl(),
                    flags,
                    ttl_ms,
                })
            }
            2 => WriteOp::Delete { path: self.path(), version: self.version() },
            3 => WriteOp::SetData { path: self.path(), data: self.data(), version: self.version() },
            4 => WriteOp::Check { path: self.path(), version: self.version() },
            5 => WriteOp::SetAcl { path: self.path(), acl: self.acl(), version: self.version() },
            _ => {
                // The reaper's request: a node it found reapable, or any path.
                let reapable = tree.reapable(now_ms, 4);
                let path = reapable.first().cloned().unwrap_or_else(|| self.path());
                WriteOp::DeleteContainer { path }
            }
        }
    }

    fn request(&mut self, tree: &DataTree, now_ms: i64) -> Request {
        match self.below(8) {
            0 => Request::CloseSession,
            1 => {
                let count = 1 + self.below(4);
                Request::Multi((0..count).map(|_| self.write(tree, now_ms)).collect())
            }
            _ => Request::Write(self.write(tree, now_ms)),
        }
    }
}

/// A ZooKeeper data directory's files as `ringkeeper import` reads them. The first byte
/// picks a snapshot or a log; checksums are made to match (a snapshot's last seal, every
/// log record's), so inputs reach the records behind them. A snapshot that reads becomes
/// a tree; a log's transactions are replayed onto one. Either way it stays a tree.
pub fn zookeeper_files(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else { return };
    if mode & 1 == 0 {
        let bytes = with_matching_seal(body);
        let path = Path::new("snapshot.1");
        if let Ok(snapshot) = zookeeper_snapshot::read(path, &bytes) {
            if let Ok(tree) = ringkeeper::import::tree_of(path, &snapshot) {
                tree.check_invariants();
            }
        }
        return;
    }
    let bytes = with_matching_record_checksums(body);
    let Ok(log) = zookeeper_log::read(Path::new("log.1"), &bytes) else { return };
    let mut replay = Replay::new(DataTree::new());
    for txn in &log.txns {
        if replay.apply(txn).is_err() {
            break;
        }
    }
    replay.tree.check_invariants();
}

/// A snapshot with matching seals (the Adler-32 of what precedes, then "/", 13 bytes):
/// the last one, and the one before the 20 bytes of a tree digest if it is there.
fn with_matching_seal(snapshot: &[u8]) -> Vec<u8> {
    const SEAL_BYTES: usize = 13;
    const DIGEST_BYTES: usize = 20;
    let mut bytes = snapshot.to_vec();
    let seal = |bytes: &mut Vec<u8>, at: usize| {
        let checksum = adler32(&bytes[..at]);
        bytes[at..at + 8].copy_from_slice(&i64::from(checksum).to_be_bytes());
    };
    if let Some(first) = bytes.len().checked_sub(2 * SEAL_BYTES + DIGEST_BYTES) {
        if bytes[first + 8..first + SEAL_BYTES] == [0, 0, 0, 1, b'/'] {
            seal(&mut bytes, first);
        }
    }
    if let Some(last) = bytes.len().checked_sub(SEAL_BYTES) {
        seal(&mut bytes, last);
    }
    bytes
}

/// A log whose records, each `[checksum i64][length i32][entry][0x42]` after the 16-byte
/// header, carry their entries' Adler-32.
fn with_matching_record_checksums(log: &[u8]) -> Vec<u8> {
    let mut bytes = log.to_vec();
    let mut offset = 16;
    while let Some(header) = bytes.get(offset..offset + 12) {
        let length = i32::from_be_bytes(header[8..12].try_into().expect("four bytes"));
        let Some(end) = usize::try_from(length).ok().filter(|&length| length > 0).map(|length| offset + 12 + length)
        else {
            break;
        };
        let Some(entry) = bytes.get(offset + 12..end) else { break };
        let checksum = adler32(entry);
        bytes[offset..offset + 8].copy_from_slice(&i64::from(checksum).to_be_bytes());
        offset = end + 1;
    }
    bytes
}

/// A client certificate's subject (the x509 ACL id): any bytes, from a client on the
/// secure port after rustls accepted them, are a name or an error.
pub fn certificate_subject(data: &[u8]) {
    let _ = ringkeeper::tls::subject::certificate_subject(data);
}

/// A JKS key store (`ssl.keyStore.location`): a file an operator points at may hold any
/// bytes; each read is a store or an error. The input is a store's body: the integrity
/// digest is appended here, so the parser behind it is what gets fuzzed.
pub fn key_store(data: &[u8]) {
    use ringkeeper::tls::jks;
    let store = [data, &jks::integrity_digest("changeit", data)[..]].concat();
    let _ = jks::read(&store, "changeit");
}
