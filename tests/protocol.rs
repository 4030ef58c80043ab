//! Raw-protocol tests: bytes on a socket to a real `ringkeeper serve`, for what a
//! well-behaved client library never sends. Whatever one connection sends, only that
//! connection is affected.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use support::raw::{self, connect_request, frame, is_closed, read_frame};
use support::Server;

fn open(server: &Server) -> TcpStream {
    raw::open(&server.address())
}

/// Opens a session; returns the stream, session id and password.
fn handshake(server: &Server) -> (TcpStream, i64, Vec<u8>) {
    raw::handshake(&server.address())
}

fn get_data_request(xid: i32, path: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&xid.to_be_bytes());
    body.extend_from_slice(&4i32.to_be_bytes());
    body.extend_from_slice(&(path.len() as i32).to_be_bytes());
    body.extend_from_slice(path.as_bytes());
    body.push(0);
    frame(&body)
}

/// The server still answers a fresh session correctly.
fn assert_serving(server: &Server) {
    let (mut stream, _, _) = handshake(server);
    stream.write_all(&get_data_request(1, "/zookeeper")).unwrap();
    let reply = read_frame(&mut stream).expect("reply");
    assert_eq!(i32::from_be_bytes(reply[0..4].try_into().unwrap()), 1);
    assert_eq!(i32::from_be_bytes(reply[12..16].try_into().unwrap()), 0);
}

#[test]
fn connect_response_carries_the_read_only_byte_only_if_the_request_did() {
    // ZooKeeperServer.finishSessionInit writes readOnly only for clients that sent it.
    let server = Server::start();
    let mut stream = open(&server);
    stream.write_all(&connect_request(0, 0, &[0; 16], None)).unwrap();
    let response = read_frame(&mut stream).unwrap();
    assert_eq!(response.len(), 4 + 4 + 8 + 4 + 16);
    let timeout_ms = i32::from_be_bytes(response[4..8].try_into().unwrap());
    assert_eq!(timeout_ms, 4000, "10 s clamps to maxSessionTimeout = 20 ticks of 200 ms");
}

#[test]
fn garbage_truncated_and_oversized_frames_close_only_their_connection() {
    let server = Server::start_with("jute.maxbuffer=4096");
    let (mut bystander, _, _) = handshake(&server);
    let cases: Vec<Vec<u8>> = vec![
        b"\x00\x00\x00\x10garbage!garbage!".to_vec(),
        i32::MAX.to_be_bytes().to_vec(),
        (-5i32).to_be_bytes().to_vec(),
        5000i32.to_be_bytes().to_vec(),
        vec![0xde, 0xad, 0xbe, 0xef, 1, 2, 3],
    ];
    for bytes in cases {
        let mut stream = open(&server);
        stream.write_all(&bytes).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(is_closed(&mut stream), "connection closed after {bytes:?}");
    }
    // A frame over jute.maxbuffer after the handshake closes that session's connection.
    let (mut big, _, _) = handshake(&server);
    big.write_all(&frame(&vec![0; 5000])).unwrap();
    assert!(is_closed(&mut big));
    bystander.write_all(&get_data_request(7, "/")).unwrap();
    let reply = read_frame(&mut bystander).unwrap();
    assert_eq!(i32::from_be_bytes(reply[0..4].try_into().unwrap()), 7);
    assert_serving(&server);
}

#[test]
fn a_truncated_frame_then_hang_up_leaves_the_server_serving() {
    let server = Server::start();
    let (mut stream, _, _) = handshake(&server);
    let request = get_data_request(1, "/zookeeper");
    stream.write_all(&request[..request.len() - 3]).unwrap();
    drop(stream);
    assert_serving(&server);
}

#[test]
fn a_client_ahead_of_the_server_is_refused() {
    // "a client will never see older state": a server behind the client's lastZxidSeen
    // closes the connection without a session.
    let server = Server::start();
    let mut stream = open(&server);
    stream.write_all(&connect_request(0x7_0000_0000, 0, &[0; 16], Some(false))).unwrap();
    assert!(is_closed(&mut stream));
    assert_serving(&server);
}

#[test]
fn reattach_with_a_wrong_password_is_answered_as_expired_and_closed() {
    let server = Server::start();
    let (_first, session_id, mut password) = handshake(&server);
    password[0] ^= 0xff;
    let mut stream = open(&server);
    stream.write_all(&connect_request(0, session_id, &password, Some(false))).unwrap();
    let response = read_frame(&mut stream).unwrap();
    assert_eq!(&response[4..8], &0i32.to_be_bytes(), "timeout 0");
    assert_eq!(&response[8..16], &0i64.to_be_bytes(), "session id 0");
    assert!(is_closed(&mut stream));
}

#[test]
fn an_unknown_opcode_is_answered_unimplemented_and_closed() {
    let server = Server::start();
    let (mut stream, _, _) = handshake(&server);
    let mut body = Vec::new();
    body.extend_from_slice(&9i32.to_be_bytes());
    body.extend_from_slice(&999i32.to_be_bytes());
    stream.write_all(&frame(&body)).unwrap();
    let reply = read_frame(&mut stream).unwrap();
    assert_eq!(i32::from_be_bytes(reply[0..4].try_into().unwrap()), 9);
    assert_eq!(i32::from_be_bytes(reply[12..16].try_into().unwrap()), -6);
    assert!(is_closed(&mut stream));
}

#[test]
fn a_client_that_never_reads_does_not_stop_the_others() {
    // Output per connection is bounded: the server stops reading from a client that does
    // not read its replies instead of buffering without limit.
    let server = Server::start();
    let (mut hog, _, _) = handshake(&server);
    hog.set_write_timeout(Some(Duration::from_millis(200))).unwrap();
    let request = get_data_request(1, "/zookeeper/config");
    let mut written = 0usize;
    for _ in 0..2_000_000 {
        match hog.write(&request) {
            Ok(count) => written += count,
            Err(_) => break,
        }
    }
    assert!(written < 2_000_000 * request.len(), "the server pushed back");
    assert_serving(&server);
}

#[test]
fn four_letter_words_obey_the_whitelist() {
    let server = Server::start_with("4lw.commands.whitelist=srvr,ruok");
    assert_eq!(server.four_letter("ruok"), "imok");
    assert!(server.four_letter("srvr").contains("Mode: standalone"));
    assert_eq!(server.four_letter("mntr"), "mntr is not executed because it is not in the whitelist.\n");
}

#[test]
fn mntr_reports_in_tab_separated_key_value_lines() {
    let server = Server::start();
    let text = server.four_letter("mntr");
    for key in ["zk_version", "zk_server_state", "zk_znode_count", "zk_num_alive_connections", "zk_watch_count"] {
        assert!(text.lines().any(|line| line.starts_with(&format!("{key}\t"))), "{key} in {text}");
    }
    assert!(text.contains("zk_server_state\tstandalone"));
}

#[test]
fn a_fresh_server_counts_its_nodes_as_zookeeper_does() {
    // ZooKeeper's node map holds the root under "" and "/": /, /zookeeper,
    // /zookeeper/quota and /zookeeper/config are reported as 5 nodes.
    let server = Server::start();
    assert!(server.four_letter("mntr").contains("zk_znode_count\t5\n"));
    assert!(server.four_letter("srvr").contains("Node count: 5\n"));
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let mut server = Server::start();
    let (_session, _, _) = handshake(&server);
    let status = server.terminate().expect("the server exits after SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn at_a_global_outstanding_limit_of_one_no_pipelined_request_is_starved_or_dropped() {
    // globalOutstandingLimit=1: every connection stops reading while another's request is
    // in flight (ZooKeeper's RequestThrottler). The pause cannot be seen from outside on a
    // fast disk; what this checks is that, throttled at every request, four pipelining
    // sessions are all answered, in order, with nothing dropped or left waiting.
    let server = Server::start_with("globalOutstandingLimit=1");
    let mut sessions: Vec<TcpStream> = (0..4).map(|_| handshake(&server).0).collect();
    const PIPELINED: i32 = 100;
    for (index, stream) in sessions.iter_mut().enumerate() {
        let mut requests = Vec::new();
        for xid in 1..=PIPELINED {
            requests.extend_from_slice(&raw::create_request(xid, &format!("/s{index}-{xid}")));
        }
        stream.write_all(&requests).unwrap();
    }
    for stream in &mut sessions {
        for xid in 1..=PIPELINED {
            let reply = read_frame(stream).expect("every request is answered");
            assert_eq!(i32::from_be_bytes(reply[0..4].try_into().unwrap()), xid, "in order");
            assert_eq!(i32::from_be_bytes(reply[12..16].try_into().unwrap()), 0, "created");
        }
    }
    assert_serving(&server);
}
