//! Byte-exact replies: replays the request frames captured from Apache ZooKeeper 3.8
//! (tests/fixtures/frames.txt) against a fresh Ringkeeper and compares every reply and
//! notification frame, byte for byte, with ZooKeeper's. Only what differs between any two
//! runs is masked: the session id (and the password after it) and wall-clock times.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::Server;

struct Case {
    name: String,
    sent: Vec<Vec<u8>>,
    received: Vec<Vec<u8>>,
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/frames.txt")).unwrap();
    let mut cases: Vec<Case> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("# case: ") {
            cases.push(Case { name: name.to_owned(), sent: Vec::new(), received: Vec::new() });
        } else if let Some(bytes) = line.strip_prefix("> ") {
            cases.last_mut().unwrap().sent.push(hex(bytes.trim()));
        } else if let Some(bytes) = line.strip_prefix("< ") {
            cases.last_mut().unwrap().received.push(hex(bytes.trim()));
        }
    }
    assert!(cases.len() >= 15, "the fixture holds the captured cases");
    cases
}

fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut prefix = [0; 4];
    stream.read_exact(&mut prefix).expect("a reply frame");
    let mut frame = prefix.to_vec();
    frame.resize(4 + i32::from_be_bytes(prefix) as usize, 0);
    stream.read_exact(&mut frame[4..]).expect("the whole frame");
    frame
}

/// Masks the session id (and, in the connect response, the password that follows it)
/// and every 8-byte value that reads as a recent wall-clock time in milliseconds.
fn normalize(frame: &[u8], session_id: &[u8]) -> Vec<u8> {
    let mut normalized = frame.to_vec();
    let mut offset = 0;
    while offset + 8 <= frame.len() {
        let window = &frame[offset..offset + 8];
        let value = i64::from_be_bytes(window.try_into().unwrap());
        if window == session_id || is_wall_clock_ms(value) {
            normalized[offset..offset + 8].fill(b'#');
            offset += 8;
        } else {
            offset += 1;
        }
    }
    normalized
}

/// From the capture's year (2026) to a year from now; windows straddling other fields
/// read as at least 2.19e12 (year 2039), so they stay out of the range until then.
fn is_wall_clock_ms(value: i64) -> bool {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    (1_700_000_000_000..now_ms + 365 * 24 * 3600 * 1000).contains(&value)
}

fn connect_response_identity(frame: &[u8]) -> (Vec<u8>, usize) {
    // len(4) protocolVersion(4) timeOut(4) sessionId(8) passwd(4 + 16)
    (frame[12..20].to_vec(), 24)
}

#[test]
fn replies_match_apache_zookeeper_byte_for_byte() {
    let server = Server::start_with("tickTime=2000");
    let mut stream = TcpStream::connect(server.address()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut zk_session = Vec::new();
    let mut our_session = Vec::new();
    for case in cases() {
        if case.name == "connect-no-readonly" {
            stream = TcpStream::connect(server.address()).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        for frame in &case.sent {
            stream.write_all(frame).unwrap();
        }
        for (index, expected) in case.received.iter().enumerate() {
            let mut ours = read_frame(&mut stream);
            let mut theirs = expected.clone();
            if case.name.starts_with("connect") && index == 0 {
                let (zk_id, password_at) = connect_response_identity(&theirs);
                let (our_id, _) = connect_response_identity(&ours);
                for frame in [&mut theirs, &mut ours] {
                    frame[password_at..password_at + 16].fill(b'#');
                }
                zk_session = zk_id;
                our_session = our_id;
            }
            assert_eq!(
                normalize(&ours, &our_session),
                normalize(&theirs, &zk_session),
                "case {}: reply {index} differs\n ours:      {ours:02x?}\n zookeeper: {theirs:02x?}",
                case.name
            );
        }
    }
}
