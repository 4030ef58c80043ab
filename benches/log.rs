//! The log's hot paths: framing a transaction into a record, verifying and reading
//! records in place, and appending a batch with group commit (one O_DSYNC write, on the
//! executor's thread as a standalone server's log writer does it, or through io_uring as
//! an ensemble member's does).
//!
//!     cargo bench --bench log

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[path = "support/dsync_file.rs"]
mod dsync_file;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rkyv::util::AlignedVec;

use ringkeeper::log::record::{self, Records};
use ringkeeper::server::log_writer::{LogWriter, WritePath};
use ringkeeper::txn::{AclEntry, CreateTxn, Step, Txn, TxnOp};

const VALUE_BYTES: usize = 100;

fn set_data(zxid: i64) -> Txn {
    Txn {
        session_id: 0x1_0000_0001,
        cxid: zxid as i32,
        zxid,
        time_ms: 1_764_000_000_000,
        op: TxnOp::Single(Step::SetData {
            path: format!("/bench/key-{:06}", zxid % 1000),
            data: Some(vec![7; VALUE_BYTES]),
            version: 3,
        }),
    }
}

fn create(zxid: i64) -> Txn {
    Txn {
        session_id: 0x1_0000_0001,
        cxid: zxid as i32,
        zxid,
        time_ms: 1_764_000_000_000,
        op: TxnOp::Single(Step::Create(CreateTxn {
            path: format!("/bench/n-{zxid:010}"),
            data: Some(vec![7; VALUE_BYTES]),
            acl: vec![AclEntry { perms: 31, scheme: "world".into(), id: "anyone".into() }],
            ephemeral_owner: 0,
            parent_cversion: zxid as i32,
        })),
    }
}

fn batch_of(records: usize, first_zxid: i64) -> AlignedVec<16> {
    let mut batch = AlignedVec::new();
    for zxid in first_zxid..first_zxid + records as i64 {
        record::append(&mut batch, &set_data(zxid));
    }
    batch
}

/// Framing one record: rkyv serialization, crc32c and the copy into the batch.
fn encoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("record_encode");
    group.throughput(Throughput::Elements(1));
    for (name, txn) in [("set_data_100b", set_data(42)), ("create_100b", create(42))] {
        let mut batch = AlignedVec::<16>::with_capacity(1 << 20);
        group.bench_function(name, |b| {
            b.iter(|| {
                if batch.len() > (1 << 20) - 4096 {
                    batch.clear();
                }
                record::append(&mut batch, &txn);
            })
        });
    }
    group.finish();
}

/// Reading each record in place: verified (checksum and rkyv's validation, as recovery
/// and a follower receiving records do) and written (checksum only, as apply does).
fn scanning(c: &mut Criterion) {
    let records = 1024;
    let batch = batch_of(records, 1);
    let mut group = c.benchmark_group("record_scan");
    group.throughput(Throughput::Elements(records as u64));
    for verify in [true, false] {
        let name = if verify { "verified_set_data_100b_x1024" } else { "written_set_data_100b_x1024" };
        group.bench_function(name, |b| {
            b.iter(|| {
                let records = if verify { Records::verified(&batch) } else { Records::written(&batch) };
                let mut zxid_sum = 0i64;
                for entry in records {
                    let (zxid, txn) = entry.expect("valid records");
                    assert_eq!(zxid, txn.zxid.to_native());
                    zxid_sum += zxid;
                }
                zxid_sum
            })
        });
    }
    group.finish();
}

/// Appending one batch of N records with group commit: one O_DSYNC write per batch, so
/// the time per record falls as batches grow. The directory is a temporary one on the
/// file system of the working directory (the disk the server's dataDir would be on).
fn group_commit(c: &mut Criterion) {
    for (name, write_path) in
        [("append_group_commit", WritePath::Ring), ("append_group_commit_on_executor", WritePath::Executor)]
    {
        bench_batches(c, name, |batch, records, iterations| append_batches(batch, records, iterations, write_path));
    }
}

/// One criterion group timing `append` for batches of 1, 16 and 256 records; `append`
/// gets a batch, its record count and the iterations, and returns the time they took.
fn bench_batches(c: &mut Criterion, name: &str, append: impl Fn(&AlignedVec<16>, usize, u64) -> Duration) {
    let mut group = c.benchmark_group(name);
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    for records in [1usize, 16, 256] {
        let batch = batch_of(records, 1);
        group.throughput(Throughput::Elements(records as u64));
        group.bench_function(format!("batch_{records}"), |b| {
            b.iter_custom(|iterations| append(&batch, records, iterations))
        });
    }
    group.finish();
}

/// The floor under `append_group_commit`: the same batches written with a plain
/// `pwrite` to an O_DSYNC file, from this thread, with no io_uring and no executor. The
/// gap between the two is what the log writer adds. Two ways to prepare the file: only
/// fallocated, as the log's segments are (each write into a still unwritten block also
/// commits the extent's conversion), and fallocated then written once with zeros, as a
/// log padded ahead of its writes would be (no metadata change per write).
fn pwrite_floor(c: &mut Criterion) {
    for (name, zero_filled) in [("append_pwrite_floor", false), ("append_pwrite_floor_zero_filled", true)] {
        bench_batches(c, name, |batch, _, iterations| pwrite_batches(batch, iterations, zero_filled));
    }
}

/// Writes `iterations` copies of `batch` one after another with pwrite into a prepared
/// O_DSYNC file and returns the time the writes took (preparing excluded).
fn pwrite_batches(batch: &AlignedVec<16>, iterations: u64, zero_filled: bool) -> Duration {
    use std::os::unix::fs::FileExt;
    let dir = tempdir();
    let capacity = (iterations as usize + 1) * batch.len() + 4096;
    let file = dsync_file::prepared(&dir.join("floor"), capacity, zero_filled);
    let started = Instant::now();
    for i in 0..iterations {
        file.write_all_at(batch, i * batch.len() as u64).expect("pwrite");
    }
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_dir_all(&dir).expect("remove bench dir");
    elapsed
}

/// Appends `iterations` copies of `batch` through a LogWriter on a glommio executor and
/// returns the time the appends took (opening and the first segment's preallocation
/// excluded; preparing the next segment in the background and moving to it included, as
/// in a server).
fn append_batches(batch: &AlignedVec<16>, records: usize, iterations: u64, write_path: WritePath) -> Duration {
    let dir = tempdir();
    let bytes = batch.to_vec();
    let elapsed = glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let mut writer = LogWriter::open(&dir, None, 256 << 20, true, write_path).await.expect("open log");
            // The first append creates and preallocates the segment: not what is measured.
            writer.append(&bytes, 1).await.expect("append");
            let started = Instant::now();
            for i in 0..iterations {
                writer.append(&bytes, 2 + (i as i64) * records as i64).await.expect("append");
            }
            let elapsed = started.elapsed();
            drop(writer);
            std::fs::remove_dir_all(&dir).expect("remove bench dir");
            elapsed
        })
        .expect("spawn executor")
        .join()
        .expect("executor ran");
    elapsed
}

/// A fresh directory under target/ for one run of appends.
fn tempdir() -> std::path::PathBuf {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::current_dir().expect("cwd").join("target").join(format!("bench-log-{}-{run}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create bench dir");
    dir
}

criterion_group!(benches, encoding, scanning, group_commit, pwrite_floor);
criterion_main!(benches);
