//! Crash tests: every write the server acknowledged survives kill -9. Writers pipeline
//! creates and setData on their own keys through real clients and record each
//! acknowledgement; the server is killed at a random moment, restarted, and every
//! acknowledged write must be there with its data and version.
//!
//! `RINGKEEPER_CRASH_CYCLES` sets the number of kill -9 cycles (default 50).

mod support;

use support::persistent;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Server;
use zookeeper_client as zk;

/// A write in flight: resolves to the version the server acknowledged.
type PendingVersion<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, zk::Error>> + Send + 'a>>;

/// What a writer was told: path -> (data, version).
type Acknowledged = Arc<Mutex<HashMap<String, (Vec<u8>, i32)>>>;

const WRITERS: usize = 4;
const WINDOW: usize = 16;

/// Writes until the server dies: creates new keys and overwrites earlier ones, up to
/// WINDOW requests in flight.
async fn write_until_failure(address: String, writer: usize, cycle: usize, acknowledged: Acknowledged) {
    let Ok(client) = zk::Client::connector()
        .with_session_timeout(Duration::from_secs(4))
        .with_connection_timeout(Duration::from_secs(2))
        .connect(&address)
        .await
    else {
        return;
    };
    let mut in_flight: VecDeque<(String, Vec<u8>, PendingVersion<'_>)> = VecDeque::new();
    for n in 0.. {
        let (path, data) = if n % 3 == 2 {
            (format!("/crash/c{cycle}w{writer}k{}", n - 2), format!("over-{n}").into_bytes())
        } else {
            (format!("/crash/c{cycle}w{writer}k{n}"), format!("new-{n}").into_bytes())
        };
        let future: std::pin::Pin<Box<dyn std::future::Future<Output = Result<i32, zk::Error>> + Send>> = if n % 3 == 2
        {
            let request = client.set_data(&path, &data, None);
            Box::pin(async move { request.await.map(|stat| stat.version) })
        } else {
            // The client borrows the path until the reply; the test leaks it (a few MB).
            let leaked: &'static str = Box::leak(path.clone().into_boxed_str());
            let request = client.create(leaked, &data, &persistent());
            Box::pin(async move { request.await.map(|(stat, _)| stat.version) })
        };
        in_flight.push_back((path, data, future));
        if in_flight.len() >= WINDOW {
            let (path, data, future) = in_flight.pop_front().unwrap();
            match future.await {
                Ok(version) => {
                    acknowledged.lock().unwrap().insert(path, (data, version));
                }
                Err(_) => return,
            }
        }
    }
}

/// Checks the acknowledged writes whose path contains `filter`, reading with a window
/// of requests in flight.
async fn verify(address: &str, acknowledged: &Acknowledged, filter: &str) -> usize {
    let client = zk::Client::connector().connect(address).await.expect("connects after restart");
    let expected: Vec<(String, (Vec<u8>, i32))> = acknowledged
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.contains(filter))
        .map(|(path, value)| (path.clone(), value.clone()))
        .collect();
    for chunk in expected.chunks(64) {
        let reads: Vec<_> = chunk.iter().map(|(path, _)| client.get_data(path)).collect();
        for ((path, (data, version)), read) in chunk.iter().zip(reads) {
            let (found_data, stat) =
                read.await.unwrap_or_else(|error| panic!("acknowledged write to {path} lost after kill -9: {error}"));
            assert!(stat.version >= *version, "{path}: version {} went back from {version}", stat.version);
            if stat.version == *version {
                assert_eq!(&found_data, data, "{path}: data of acknowledged version {version} lost");
            }
        }
    }
    expected.len()
}

#[test]
fn acknowledged_writes_survive_kill_minus_nine() {
    let cycles: usize = std::env::var("RINGKEEPER_CRASH_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(50);
    let mut server = Server::start();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let acknowledged: Acknowledged = Arc::default();
    runtime.block_on(async {
        let client = zk::Client::connector().connect(&server.address()).await.unwrap();
        client.create("/crash", b"", &persistent()).await.unwrap();
    });
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    for cycle in 0..cycles {
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| runtime.spawn(write_until_failure(server.address(), writer, cycle, acknowledged.clone())))
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let run_ms = 50 + seed % 250;
        std::thread::sleep(Duration::from_millis(run_ms));
        server.crash_and_restart();
        runtime.block_on(async {
            for writer in writers {
                let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
            }
        });
        let checked = runtime
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(60),
                    verify(&server.address(), &acknowledged, &format!("/c{cycle}w")),
                )
                .await
            })
            .expect("verification finishes in time");
        assert!(cycle > 0 || checked > 0, "the first cycle acknowledged some writes");
    }
    // One last kill -9, then every write acknowledged in every cycle.
    server.crash_and_restart();
    let total = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(120), verify(&server.address(), &acknowledged, "/crash/")).await
    });
    let total = total.expect("final verification finishes in time");
    eprintln!("{cycles} kill -9 cycles, {total} acknowledged writes (each cycle's checked after its crash, all after the last), 0 lost");
}

/// Writes `count` nodes /f/n0.. and returns the server.
fn server_with_nodes(count: usize) -> Server {
    let server = Server::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = zk::Client::connector().connect(&server.address()).await.unwrap();
        client.create("/f", b"", &persistent()).await.unwrap();
        for n in 0..count {
            client.create(&format!("/f/n{n}"), format!("v{n}").as_bytes(), &persistent()).await.unwrap();
        }
    });
    server
}

fn children_of_f(server: &Server) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = zk::Client::connector().connect(&server.address()).await.unwrap();
        client.list_children("/f").await.unwrap().len()
    })
}

/// The offset just past the last record (the first zero frame header) of a segment.
fn log_end(bytes: &[u8]) -> usize {
    let mut offset = 16;
    loop {
        let length = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        if length == 0 {
            return offset;
        }
        offset += (16 + length).div_ceil(16) * 16;
    }
}

/// The offset of the last record of a segment.
fn last_record(bytes: &[u8]) -> usize {
    let mut offset = 16;
    let mut last = 16;
    loop {
        let length = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        if length == 0 {
            return last;
        }
        last = offset;
        offset += (16 + length).div_ceil(16) * 16;
    }
}

#[test]
fn a_record_torn_by_a_crash_is_cut_off_and_the_rest_recovered() {
    // A write interrupted mid-record was never acknowledged: recovery drops it and keeps
    // everything before it.
    let mut server = server_with_nodes(20);
    server.kill();
    let segment = server.log_segments().pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = last_record(&bytes);
    let end = log_end(&bytes);
    // Zero the second half of the last record, as a write that stopped halfway leaves it.
    let middle = last + (end - last) / 2;
    bytes[middle..end].fill(0);
    std::fs::write(&segment, &bytes).unwrap();
    server.start_again();
    assert_eq!(children_of_f(&server), 19);
}

#[test]
fn a_flipped_bit_in_the_last_record_is_a_torn_tail() {
    let mut server = server_with_nodes(20);
    server.kill();
    let segment = server.log_segments().pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = last_record(&bytes);
    bytes[last + 20] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    server.start_again();
    assert_eq!(children_of_f(&server), 19);
}

#[test]
fn a_flipped_bit_before_the_tail_refuses_to_start_and_names_file_and_offset() {
    // Corruption in the middle of the log is never silently dropped.
    let mut server = server_with_nodes(20);
    server.kill();
    let segment = server.log_segments().pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[16 + 24] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let (status, stderr) = server.run_to_exit();
    assert!(!status.success());
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains(name) && stderr.contains("corrupt at offset 16"), "{stderr}");
}

#[test]
fn a_logged_write_that_does_not_apply_to_the_tree_refuses_to_start_with_an_error_not_an_abort() {
    // A record that passes its checksum and rkyv's validation but changes a node the tree
    // does not hold (a crafted or foreign log) stops the start with a line that says so.
    let mut server = server_with_nodes(3);
    server.kill();
    let segment = server.log_segments().pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = last_record(&bytes);
    let end = log_end(&bytes);
    let zxid = i64::from_le_bytes(bytes[last + 8..last + 16].try_into().unwrap()) + 1;
    let op = ringkeeper::txn::TxnOp::Single(ringkeeper::txn::Step::SetData {
        path: "/missing".into(),
        data: Some(b"x".to_vec()),
        version: 1,
    });
    let mut frame = rkyv::util::AlignedVec::<16>::new();
    ringkeeper::log::record::append(&mut frame, &ringkeeper::txn::Txn { session_id: 1, cxid: 1, zxid, time_ms: 0, op });
    bytes[end..end + frame.len()].copy_from_slice(&frame);
    std::fs::write(&segment, &bytes).unwrap();
    let (status, stderr) = server.run_to_exit();
    assert_eq!(status.code(), Some(1), "an exit with an error, not a signal: {stderr}");
    assert!(stderr.contains("does not apply"), "{stderr}");
}

#[test]
fn sessions_survive_a_restart_until_they_expire() {
    // "Sessions and their ephemerals survive a restart until they expire."
    let mut server = Server::start();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let session = runtime.block_on(async {
        let client = zk::Client::connector()
            .with_session_timeout(Duration::from_millis(3000))
            .with_detached()
            .connect(&server.address())
            .await
            .unwrap();
        client.create("/held", b"", &zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())).await.unwrap();
        client.into_session()
    });
    server.crash_and_restart();
    runtime.block_on(async {
        let client = zk::Client::connector().with_session(session).connect(&server.address()).await.unwrap();
        assert_eq!(client.list_ephemerals("/").await.unwrap(), vec!["/held"]);
        drop(client);
        let observer = zk::Client::connector().connect(&server.address()).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while observer.check_stat("/held").await.unwrap().is_some() {
            assert!(std::time::Instant::now() < deadline, "the ephemeral goes with its closed session");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

fn files_named(server: &Server, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(server.dir.join("data/version-2"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_str().unwrap().starts_with(prefix))
        .collect();
    files.sort();
    files
}

#[test]
fn snapshots_and_purge_keep_the_data_and_bound_the_files() {
    // Snapshots every ~snapCount transactions; autopurge keeps snapRetainCount snapshots
    // and the log needed after the oldest; a restart loads the newest valid snapshot and
    // replays the rest, and still does when the newest snapshot is gone.
    let mut server = Server::start_with("snapCount=100\nautopurge.purgeInterval=1\npreAllocSize=16");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = zk::Client::connector().connect(&server.address()).await.unwrap();
        client.create("/s", b"", &persistent()).await.unwrap();
        for n in 0..1500 {
            client.create(&format!("/s/n{n}"), &[7; 100], &persistent()).await.unwrap();
        }
        client.set_data("/s/n0", b"last", None).await.unwrap();
    });
    // The snapshotter runs at idle priority beside the serving cores: on a loaded machine
    // its last snapshot and purge can trail the last acknowledged write a little. The
    // next segment being prepared (`log.prepared.N`) is not part of the log.
    let segments_of = |server: &Server| -> Vec<std::path::PathBuf> {
        let prepared = |path: &std::path::PathBuf| path.to_string_lossy().contains("log.prepared.");
        files_named(server, "log.").into_iter().filter(|path| !prepared(path)).collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (mut snapshots, mut segments) = (files_named(&server, "snapshot."), segments_of(&server));
    while !((1..=3).contains(&snapshots.len()) && segments.len() < 10) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        (snapshots, segments) = (files_named(&server, "snapshot."), segments_of(&server));
    }
    assert!((1..=3).contains(&snapshots.len()), "{snapshots:?}");
    assert!(segments.len() < 10, "purge removed old segments: {segments:?}");
    let check = |server: &Server| {
        runtime.block_on(async {
            let client = zk::Client::connector().connect(&server.address()).await.unwrap();
            assert_eq!(client.list_children("/s").await.unwrap().len(), 1500);
            assert_eq!(client.get_data("/s/n0").await.unwrap().0, b"last");
            assert_eq!(client.get_data("/s/n1499").await.unwrap().0, vec![7; 100]);
        })
    };
    server.crash_and_restart();
    check(&server);
    server.kill();
    std::fs::remove_file(files_named(&server, "snapshot.").pop().unwrap()).unwrap();
    server.start_again();
    check(&server);
}

/// Unmounts a test's file system when dropped.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_full_disk_stops_acknowledging_writes_while_reads_go_on() {
    // "An fdatasync error or a full disk stops the log: no further write is acknowledged,
    // the server says why and keeps serving reads." The log lives on a 1 MiB tmpfs made
    // by the test (this needs root, as the CI and these machines have).
    let mount = std::env::temp_dir().join(format!("ringkeeper-full-{}", std::process::id()));
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mount)
        .status()
        .is_ok_and(|status| status.success());
    assert!(mounted, "mounting a tmpfs for the full-disk test (run as root)");
    let _mount = Mount(mount.clone());
    let server = Server::start_with(&format!("dataLogDir={}\npreAllocSize=256", mount.display()));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let writer = zk::Client::connector().connect(&server.address()).await.unwrap();
        let reader = zk::Client::connector().connect(&server.address()).await.unwrap();
        writer.create("/full", b"before", &persistent()).await.unwrap();
        let value = vec![7u8; 30_000];
        let mut stalled = false;
        for n in 0..200 {
            let path = format!("/full/n{n}");
            let create = writer.create(&path, &value, &persistent());
            // An unacknowledged write ends either in our timeout or in the client's own
            // "no response" error; both mean the server stopped acknowledging.
            if !matches!(tokio::time::timeout(Duration::from_secs(3), create).await, Ok(Ok(_))) {
                stalled = true;
                break;
            }
        }
        assert!(stalled, "writes stop being acknowledged once the disk is full");
        assert_eq!(reader.get_data("/full").await.unwrap().0, b"before", "reads go on");
    });
    let mntr = server.four_letter("mntr");
    assert!(mntr.contains("ringkeeper_log_failed\t1"), "{mntr}");
}

#[test]
fn an_ensemble_member_without_a_myid_refuses_to_start_and_one_server_line_runs_standalone() {
    // ZooKeeper's QuorumPeerConfig: a zoo.cfg naming several servers starts one member,
    // identified by dataDir/myid; without it the member cannot know which it is and
    // refuses to start rather than guess. One server.N line is a standalone server.
    let mut server = Server::start();
    server.kill();
    let config = server.dir.join("zoo.cfg");
    let standalone = std::fs::read_to_string(&config).unwrap();
    let ensemble = "server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.1:2889:3889\nserver.3=127.0.0.1:2890:3890\n";
    std::fs::write(&config, format!("{standalone}{ensemble}")).unwrap();
    let (status, stderr) = server.run_to_exit();
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("myid"), "{stderr}");
    std::fs::write(&config, format!("{standalone}server.1=127.0.0.1:2888:3888\n")).unwrap();
    server.start_again();
    assert!(server.four_letter("ruok").contains("imok"));
    assert!(server.four_letter("srvr").contains("Mode: standalone"));
}
