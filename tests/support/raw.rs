//! Bytes on a socket: the ZooKeeper handshake and frames, for tests that need what a
//! client library hides (a session's id and password, a connection held open).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub fn open(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream
}

pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut bytes = (body.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    bytes
}

/// ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd[, readOnly].
pub fn connect_request(last_zxid_seen: i64, session_id: i64, password: &[u8], read_only: Option<bool>) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&last_zxid_seen.to_be_bytes());
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.extend_from_slice(&session_id.to_be_bytes());
    body.extend_from_slice(&(password.len() as i32).to_be_bytes());
    body.extend_from_slice(password);
    if let Some(read_only) = read_only {
        body.push(u8::from(read_only));
    }
    frame(&body)
}

pub fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut prefix = [0; 4];
    stream.read_exact(&mut prefix).ok()?;
    let mut body = vec![0; i32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}

/// True when the server closed the connection (end of stream or reset).
pub fn is_closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0; 1];
    matches!(stream.read(&mut byte), Ok(0) | Err(_))
}

/// Opens a session; returns the stream, session id and password.
/// create (opcode 1) of `path` with empty data, world:anyone:cdrwa, persistent.
pub fn create_request(xid: i32, path: &str) -> Vec<u8> {
    create_request_with_data(xid, path, &[])
}

/// create (opcode 1) of `path` holding `data`, world:anyone:cdrwa, persistent.
pub fn create_request_with_data(xid: i32, path: &str, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&xid.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&(path.len() as i32).to_be_bytes());
    body.extend_from_slice(path.as_bytes());
    body.extend_from_slice(&(data.len() as i32).to_be_bytes());
    body.extend_from_slice(data);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&31i32.to_be_bytes());
    for text in ["world", "anyone"] {
        body.extend_from_slice(&(text.len() as i32).to_be_bytes());
        body.extend_from_slice(text.as_bytes());
    }
    body.extend_from_slice(&0i32.to_be_bytes());
    frame(&body)
}

pub fn handshake(address: &str) -> (TcpStream, i64, Vec<u8>) {
    let mut stream = open(address);
    stream.write_all(&connect_request(0, 0, &[0; 16], Some(false))).unwrap();
    let response = read_frame(&mut stream).expect("connect response");
    assert_eq!(response.len(), 4 + 4 + 8 + 4 + 16 + 1);
    let session_id = i64::from_be_bytes(response[8..16].try_into().unwrap());
    let password = response[20..36].to_vec();
    (stream, session_id, password)
}
