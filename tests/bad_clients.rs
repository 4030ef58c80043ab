//! Bad clients at scale: while well-behaved sessions run a read/write workload, thousands
//! of connections that never speak, connections that trickle a byte a second (slowloris),
//! frames over jute.maxbuffer, half-closed sockets and clients that never read their
//! replies do their worst at once. The good sessions keep being served (p99 under
//! `GOOD_P99_BOUND`, no session lost), the server's memory stays bounded, and every bad
//! connection is closed by the server once its rule says so.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use ringkeeper::proto::request::{encode_request, CreateRequest, Request, WriteOp};
use ringkeeper::proto::{acl::Acl, opcode};
use support::raw::{self, handshake, read_frame};
use support::Server;

/// Connections that connect and never send a byte.
const IDLE_CONNECTIONS: usize = 2000;
/// Sessions that complete the handshake, then never send anything (no pings).
const SILENT_SESSIONS: usize = 300;
/// Connections that send their connect request a byte a second.
const SLOWLORIS_CONNECTIONS: usize = 20;
/// Connections that announce a frame over jute.maxbuffer.
const OVERSIZED_CONNECTIONS: usize = 50;
/// Sessions that send half a request and shut their sending side.
const HALF_CLOSED_SESSIONS: usize = 50;
/// Sessions that pipeline reads of a large node and never read a reply.
const NON_READERS: usize = 8;
/// Well-behaved sessions, and how many requests each completes once every bad client
/// is in place.
const GOOD_SESSIONS: usize = 4;
const GOOD_REQUESTS_AFTER_SETUP: u64 = 400;

/// The bounds the server must keep for the good sessions, and on its memory: each
/// non-reader holds at most its output cap (the 4 MiB high water mark plus 64 waiting
/// reads of up to jute.maxbuffer) queued and as much again being written; every other
/// bad connection holds a few KiB (64 MiB for all of them).
const GOOD_P99_BOUND: Duration = Duration::from_secs(1);
const OUTPUT_CAP_BYTES: u64 = 4 * 1024 * 1024 + 64 * JUTE_MAX_BUFFER as u64;
const RSS_GROWTH_BOUND_BYTES: u64 = NON_READERS as u64 * 2 * OUTPUT_CAP_BYTES + 64 * 1024 * 1024;

const JUTE_MAX_BUFFER: usize = 65536;
const BIG_NODE_BYTES: usize = 60_000;

fn request_frame(xid: i32, request: &Request) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_request(&mut bytes, xid, request);
    bytes
}

fn create(path: &str, data: Vec<u8>) -> Request {
    Request::Write(WriteOp::Create(CreateRequest {
        opcode: opcode::CREATE,
        path: path.to_owned(),
        data: Some(data),
        acl: vec![Acl::open_unsafe()],
        flags: 0,
        ttl_ms: -1,
    }))
}

/// A reply's error code (0 for success), from its header.
fn reply_error(reply: &[u8]) -> i32 {
    i32::from_be_bytes(reply[12..16].try_into().unwrap())
}

/// Waits (bounded) for the server to close `stream`: end of stream or a reset.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buffer = [0; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(error)
                if error.kind() == std::io::ErrorKind::WouldBlock || error.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// One well-behaved session: setData and getData of its own node, one at a time, until
/// `stop`. Returns each request's latency, or what went wrong.
fn good_session(server: &Server, index: usize, stop: &AtomicBool, done: &AtomicU64) -> Result<Vec<Duration>, String> {
    let (mut stream, _, _) = handshake(&server.address());
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let path = format!("/good-{index}");
    stream.write_all(&request_frame(1, &create(&path, b"0".to_vec()))).unwrap();
    let reply = read_frame(&mut stream).ok_or("no reply to the create")?;
    assert_eq!(reply_error(&reply), 0);
    let mut latencies = Vec::new();
    let mut xid = 1;
    while !stop.load(Ordering::Acquire) {
        xid += 1;
        let request = if xid % 2 == 0 {
            Request::Write(WriteOp::SetData { path: path.clone(), data: Some(vec![b'v'; 100]), version: -1 })
        } else {
            Request::GetData { path: path.clone(), watch: false }
        };
        let sent = Instant::now();
        stream.write_all(&request_frame(xid, &request)).map_err(|error| format!("session {index}: {error}"))?;
        let reply = read_frame(&mut stream).ok_or_else(|| format!("session {index} lost its connection"))?;
        latencies.push(sent.elapsed());
        let error = reply_error(&reply);
        if error != 0 {
            return Err(format!("session {index}: request {xid} failed with {error} (session expired?)"));
        }
        done.fetch_add(1, Ordering::AcqRel);
    }
    Ok(latencies)
}

/// Pipelines reads of the big node until the server stops reading (its writes block),
/// then holds the socket without ever reading a reply.
fn non_reader(server: &Server, stop: &AtomicBool) -> TcpStream {
    let (mut stream, _, _) = handshake(&server.address());
    stream.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    let read = request_frame(2, &Request::GetData { path: "/big".to_owned(), watch: false });
    for _ in 0..1_000_000 {
        if stop.load(Ordering::Acquire) || stream.write_all(&read).is_err() {
            break;
        }
    }
    stream
}

/// Raises this process's open-file limit to its hard limit (the server inherits it): the
/// test holds a few thousand sockets, more than a default soft limit of 1024.
fn allow_open_files(needed: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit with a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(limit.rlim_cur >= needed, "the hard limit on open files ({}) is below {needed}", limit.rlim_cur);
}

#[test]
fn bad_clients_at_scale_neither_starve_good_sessions_nor_grow_the_server_without_bound() {
    // Each connection is a socket in this process and one in the server, which has its
    // own files besides.
    let sockets = IDLE_CONNECTIONS + SILENT_SESSIONS + SLOWLORIS_CONNECTIONS + HALF_CLOSED_SESSIONS + NON_READERS + 64;
    allow_open_files(sockets as u64 + 256);
    let server = Server::start_with(&format!(
        "maxClientCnxns=0\njute.maxbuffer={JUTE_MAX_BUFFER}\nzookeeper.nio.sessionlessCnxnTimeout=2000"
    ));
    {
        let (mut setup, _, _) = handshake(&server.address());
        setup.write_all(&request_frame(1, &create("/big", vec![7; BIG_NODE_BYTES]))).unwrap();
        assert_eq!(reply_error(&read_frame(&mut setup).unwrap()), 0);
    }
    let rss_before = server.rss_bytes();
    let stop = AtomicBool::new(false);
    let good_done = AtomicU64::new(0);
    let rss_max = AtomicU64::new(rss_before);
    let bad_in_place = Barrier::new(2);
    let (good, bad) = std::thread::scope(|scope| {
        let good: Vec<_> = (0..GOOD_SESSIONS)
            .map(|index| {
                let (server, stop, good_done) = (&server, &stop, &good_done);
                scope.spawn(move || good_session(server, index, stop, good_done))
            })
            .collect();
        scope.spawn(|| {
            while !stop.load(Ordering::Acquire) {
                rss_max.fetch_max(server.rss_bytes(), Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let slowloris = scope.spawn(|| {
            let mut streams: Vec<TcpStream> =
                (0..SLOWLORIS_CONNECTIONS).map(|_| raw::open(&server.address())).collect();
            let connect = raw::connect_request(0, 0, &[0; 16], Some(false));
            // A byte a second each: the connect request never completes in time.
            for byte in &connect {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                for stream in &mut streams {
                    let _ = stream.write_all(&[*byte]);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            streams
        });
        let non_readers: Vec<_> = (0..NON_READERS).map(|_| scope.spawn(|| non_reader(&server, &stop))).collect();
        let bad = scope.spawn(|| {
            let idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS).map(|_| raw::open(&server.address())).collect();
            let silent: Vec<TcpStream> = (0..SILENT_SESSIONS).map(|_| handshake(&server.address()).0).collect();
            let half_closed: Vec<TcpStream> = (0..HALF_CLOSED_SESSIONS)
                .map(|_| {
                    let (mut stream, _, _) = handshake(&server.address());
                    let frame = request_frame(2, &Request::GetData { path: "/big".to_owned(), watch: false });
                    stream.write_all(&frame[..frame.len() / 2]).unwrap();
                    stream.shutdown(Shutdown::Write).unwrap();
                    stream
                })
                .collect();
            let oversized_closed = (0..OVERSIZED_CONNECTIONS)
                .filter(|_| {
                    let mut stream = raw::open(&server.address());
                    let _ = stream.write_all(&((JUTE_MAX_BUFFER + 1) as i32).to_be_bytes());
                    let _ = stream.write_all(&[0; 1024]);
                    closed_by_server(&mut stream)
                })
                .count();
            bad_in_place.wait();
            (idle, silent, half_closed, oversized_closed)
        });
        bad_in_place.wait();
        // The good sessions must keep going while every kind of bad client is in place.
        let wanted = good_done.load(Ordering::Acquire) + GOOD_SESSIONS as u64 * GOOD_REQUESTS_AFTER_SETUP;
        let deadline = Instant::now() + Duration::from_secs(120);
        while good_done.load(Ordering::Acquire) < wanted && Instant::now() < deadline {
            if good.iter().any(|session| session.is_finished()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Release);
        let good: Vec<_> = good.into_iter().map(|session| session.join().unwrap()).collect();
        let non_readers: Vec<TcpStream> = non_readers.into_iter().map(|reader| reader.join().unwrap()).collect();
        let (idle, silent, half_closed, oversized_closed) = bad.join().unwrap();
        (good, (idle, silent, half_closed, oversized_closed, slowloris.join().unwrap(), non_readers))
    });

    let mut latencies = Vec::new();
    for session in good {
        latencies.extend(session.unwrap_or_else(|error| panic!("a good session was not served: {error}")));
    }
    assert!(latencies.len() as u64 >= GOOD_SESSIONS as u64 * GOOD_REQUESTS_AFTER_SETUP, "the good sessions ran");
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!("good sessions: {} requests, p99 {p99:?}", latencies.len());
    assert!(p99 <= GOOD_P99_BOUND, "good sessions' p99 {p99:?} over {GOOD_P99_BOUND:?}");

    let growth = rss_max.load(Ordering::Acquire).saturating_sub(rss_before);
    eprintln!("RSS grew by {} MiB", growth >> 20);
    assert!(growth <= RSS_GROWTH_BOUND_BYTES, "RSS grew by {} MiB", growth >> 20);

    let (mut idle, mut silent, half_closed, oversized_closed, mut slowloris, non_readers) = bad;
    assert_eq!(oversized_closed, OVERSIZED_CONNECTIONS, "every oversized frame closes its connection");
    // Connections without a session close at the sessionless timeout; sessions that
    // never speak expire with their timeout.
    for (what, streams) in [("idle", &mut idle), ("slowloris", &mut slowloris), ("silent session", &mut silent)] {
        let open = streams.iter_mut().map(closed_by_server).filter(|closed| !closed).count();
        assert_eq!(open, 0, "{open} {what} connections were left open");
    }
    drop((half_closed, non_readers));
    let (mut fresh, _, _) = handshake(&server.address());
    fresh.write_all(&request_frame(1, &Request::Exists { path: "/big".to_owned(), watch: false })).unwrap();
    assert_eq!(reply_error(&read_frame(&mut fresh).expect("the server still answers")), 0);
}
