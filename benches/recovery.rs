//! Recovery of a tree of one million znodes (1,000 parents x 1,000 children, 100-byte
//! values): from the log alone (map, verify every checksum, apply every record read in
//! place) and from a snapshot (map, verify, rebuild the tree). What a restart costs is
//! the snapshot load (of which `snapshot_validation` is the bytes' validation) plus the
//! replay of the log written after it; `perf/restart.py`
//! measures whole restarts against Apache ZooKeeper. `snapshot_encode` is the
//! snapshotter's work on the same tree, built by the log's creates as a server builds it
//! (nodes in memory in creation order, which the trie's order is not), into a sink.
//!
//!     cargo bench --bench recovery
//!
//! The fixture (about 300 MB) is built once under target/bench-recovery-1m/ and reused.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rkyv::util::AlignedVec;

use ringkeeper::log::{record, recovery, segment, snapshot_file};
use ringkeeper::tree::DataTree;
use ringkeeper::txn::{AclEntry, CreateTxn, Step, Txn, TxnOp};

const PARENTS: usize = 1000;
const CHILDREN: usize = 1000;
const VALUE_BYTES: usize = 100;
const SEGMENT_BYTES: usize = 64 << 20;

fn znode_count() -> u64 {
    (1 + PARENTS + PARENTS * CHILDREN) as u64
}

/// The creates of the fixture tree, in order: /r, its parents, then their children.
fn creates() -> impl Iterator<Item = (String, i32)> {
    let parents = (0..PARENTS).map(|p| (format!("/r/p{p:04}"), 1 + p as i32));
    let children = (0..PARENTS).flat_map(|p| (0..CHILDREN).map(move |c| (format!("/r/p{p:04}/n{c:04}"), 1 + c as i32)));
    std::iter::once(("/r".to_owned(), 2)).chain(parents).chain(children)
}

fn create_txn(zxid: i64, path: String, parent_cversion: i32) -> Txn {
    let data = if path.matches('/').count() == 3 { vec![7; VALUE_BYTES] } else { Vec::new() };
    Txn {
        session_id: 0x1_0000_0001,
        cxid: zxid as i32,
        zxid,
        time_ms: 1_764_000_000_000 + zxid,
        op: TxnOp::Single(Step::Create(CreateTxn {
            path,
            data: Some(data),
            acl: vec![AclEntry { perms: 31, scheme: "world".into(), id: "anyone".into() }],
            ephemeral_owner: 0,
            parent_cversion,
        })),
    }
}

/// Writes the log segments of the fixture into `log_dir` and returns the tree they build.
fn write_log(log_dir: &Path) -> DataTree {
    std::fs::create_dir_all(log_dir).expect("create log dir");
    let mut tree = DataTree::new();
    let mut triggers = Vec::new();
    let mut segment_bytes: Vec<u8> = Vec::new();
    let mut record_bytes = AlignedVec::<16>::new();
    let mut zxid = 0i64;
    for (path, parent_cversion) in creates() {
        zxid += 1;
        let txn = create_txn(zxid, path, parent_cversion);
        record_bytes.clear();
        record::append(&mut record_bytes, &txn);
        let bytes = txn.to_bytes();
        tree.apply(ringkeeper::txn::access_written(&bytes), &mut triggers);
        triggers.clear();
        if segment_bytes.len() + record_bytes.len() > SEGMENT_BYTES {
            flush_segment(log_dir, &mut segment_bytes);
        }
        if segment_bytes.is_empty() {
            segment_bytes.extend_from_slice(&segment::header(zxid));
        }
        segment_bytes.extend_from_slice(&record_bytes);
    }
    flush_segment(log_dir, &mut segment_bytes);
    tree
}

fn flush_segment(log_dir: &Path, bytes: &mut Vec<u8>) {
    let first_zxid = i64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    std::fs::write(log_dir.join(segment::file_name(first_zxid)), &bytes).expect("write segment");
    bytes.clear();
}

/// The fixture: a log-only directory and a snapshot-only directory of the same tree.
fn fixture() -> (PathBuf, PathBuf) {
    let root = std::env::current_dir().expect("cwd").join("target").join("bench-recovery-1m");
    let (log_dir, snapshot_dir, done) = (root.join("log"), root.join("snapshot"), root.join("complete"));
    if !done.exists() {
        let _ = std::fs::remove_dir_all(&root);
        let tree = write_log(&log_dir);
        assert_eq!(tree.node_count() as u64, DataTree::new().node_count() as u64 + znode_count());
        std::fs::create_dir_all(&snapshot_dir).expect("create snapshot dir");
        snapshot_file::write(&snapshot_dir, &tree, snapshot_file::installs()).expect("write snapshot");
        std::fs::write(&done, b"").expect("mark fixture complete");
    }
    (log_dir, snapshot_dir)
}

fn replay_log(log_dir: &Path) -> DataTree {
    let log = recovery::recover(log_dir).expect("recover");
    let mut tree = DataTree::new();
    let mut triggers = Vec::new();
    for (_, txn) in log.records() {
        tree.apply(txn, &mut triggers);
        triggers.clear();
    }
    tree
}

fn load_snapshot(snapshot_dir: &Path) -> DataTree {
    snapshot_file::newest_valid(snapshot_dir).expect("read snapshots").expect("a snapshot").tree().expect("a tree")
}

fn recovery_of_a_million_znodes(c: &mut Criterion) {
    let (log_dir, snapshot_dir) = fixture();
    let mut group = c.benchmark_group("recover_1m_znodes");
    group.sample_size(10).measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(znode_count()));
    // The trees are dropped outside the measured time: freeing a million nodes is not
    // part of a restart.
    group.bench_function("from_log", |b| b.iter_with_large_drop(|| replay_log(&log_dir)));
    group.bench_function("from_snapshot", |b| b.iter_with_large_drop(|| load_snapshot(&snapshot_dir)));
    // The part of a snapshot load that validates the file's bytes (rkyv's bytecheck),
    // once per file, before any of it is read in place.
    let (_, path) = snapshot_file::snapshot_files(&snapshot_dir).expect("read snapshots").pop().expect("a snapshot");
    let file = std::fs::File::open(path).expect("open snapshot");
    // SAFETY: a read-only map of the fixture, which nothing modifies.
    let map = unsafe { memmap2::Mmap::map(&file) }.expect("map snapshot");
    group.bench_function("snapshot_validation", |b| b.iter(|| ringkeeper::tree::snapshot::access(&map).is_ok()));
    let tree = replay_log(&log_dir);
    group.bench_function("snapshot_encode", |b| {
        b.iter(|| ringkeeper::tree::snapshot::encode_archive(&tree, std::io::sink()).expect("a sink takes anything"))
    });
    group.finish();
}

criterion_group!(benches, recovery_of_a_million_znodes);
criterion_main!(benches);
