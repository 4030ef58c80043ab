//! The floors under a single request (issue 11's targets): a loopback TCP round trip of a
//! small request and reply, and one 4 KiB O_DSYNC write, the durable part of a set. An
//! unloaded get cannot beat the first, an unloaded set the sum of both; `perf/floor.sh`
//! runs this beside `ringkeeper bench` with one session and one request in flight, and
//! prints the ratios.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

#[path = "support/dsync_file.rs"]
mod dsync_file;

use criterion::{criterion_group, criterion_main, Criterion};

/// About the size of a getData request and its reply for a short path and 100 bytes.
const MESSAGE_BYTES: usize = 128;
const WRITE_BYTES: usize = 4096;

/// A client and an echo thread on loopback, both with TCP_NODELAY as the server's
/// sockets; each iteration sends one message and waits for it to come back.
fn loopback_round_trip(c: &mut Criterion) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = listener.local_addr().expect("address");
    let echo = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_nodelay(true).expect("nodelay");
        let mut message = [0u8; MESSAGE_BYTES];
        while stream.read_exact(&mut message).is_ok() {
            if stream.write_all(&message).is_err() {
                break;
            }
        }
    });
    let mut client = TcpStream::connect(address).expect("connect");
    client.set_nodelay(true).expect("nodelay");
    let mut message = [7u8; MESSAGE_BYTES];
    let mut group = floor_group(c);
    group.bench_function("loopback_round_trip", |b| {
        b.iter(|| {
            client.write_all(&message).expect("send");
            client.read_exact(&mut message).expect("receive");
        })
    });
    group.finish();
    drop(client);
    echo.join().expect("echo thread");
}

/// Every floor in one group, `target/criterion/floor/<name>/` (read by perf/floor.sh).
fn floor_group(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group("floor");
    group.sample_size(20).measurement_time(Duration::from_secs(5));
    group
}

/// One 4 KiB pwrite to an O_DSYNC file, into space already written once (as a log
/// segment's is by the time it is reused) and into space only fallocated (as a new
/// segment's is).
fn dsync_write(c: &mut Criterion) {
    let mut group = floor_group(c);
    for (name, zero_filled) in [("dsync_write_4k_written", true), ("dsync_write_4k_fallocated", false)] {
        group.bench_function(name, |b| b.iter_custom(|iterations| dsync_writes(iterations, zero_filled)));
    }
    group.finish();
}

fn dsync_writes(iterations: u64, zero_filled: bool) -> Duration {
    let dir = std::env::current_dir().expect("cwd").join("target").join(format!("bench-floor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create bench dir");
    let capacity = (iterations as usize + 1) * WRITE_BYTES;
    let file = dsync_file::prepared(&dir.join("floor"), capacity, zero_filled);
    let page = vec![0x5Au8; WRITE_BYTES];
    let started = Instant::now();
    for i in 0..iterations {
        file.write_all_at(&page, i * WRITE_BYTES as u64).expect("pwrite");
    }
    let elapsed = started.elapsed();
    drop(file);
    std::fs::remove_dir_all(&dir).expect("remove bench dir");
    elapsed
}

criterion_group!(benches, loopback_round_trip, dsync_write);
criterion_main!(benches);
