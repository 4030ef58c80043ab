//! Set-up before a run, over one blocking connection: the bench root, the keys that
//! reads and writes use, and the nodes a delete run removes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;

use super::client::{invalid, open_acl};
use super::workload::{key_path, listed_path, owned_key_path, Workload, CREATED, LISTED, ROOT};
use crate::proto::request::{encode_request, CreateRequest, Request, WriteOp};
use crate::proto::response::ReplyHeader;
use crate::proto::{frame, jute::Reader, opcode, ErrorCode};

/// The largest set-up reply (a create's path).
const FRAME_BYTES_MAX: usize = 64 * 1024;

/// The set-up connection's stream: TCP, or TLS over it.
trait Stream: Read + Write {}
impl<S: Read + Write> Stream for S {}

struct Blocking {
    stream: Box<dyn Stream>,
    xid: i32,
}

impl Blocking {
    fn connect(server: SocketAddr, tls: Option<&Arc<rustls::ClientConfig>>) -> std::io::Result<Blocking> {
        let tcp = TcpStream::connect_timeout(&server, super::session::SETUP_TIMEOUT)?;
        tcp.set_read_timeout(Some(super::session::SETUP_TIMEOUT))?;
        tcp.set_nodelay(true)?;
        let mut stream: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            Some(tls) => {
                let name = rustls::pki_types::ServerName::IpAddress(server.ip().into());
                let connection = rustls::ClientConnection::new(tls.clone(), name).map_err(std::io::Error::other)?;
                Box::new(rustls::StreamOwned::new(connection, tcp))
            }
        };
        let mut bytes = Vec::new();
        super::workload::encode_connect(&mut bytes);
        stream.write_all(&bytes)?;
        stream.flush()?;
        let mut connection = Blocking { stream, xid: 0 };
        connection.read_frame()?;
        Ok(connection)
    }

    fn read_frame(&mut self) -> std::io::Result<Vec<u8>> {
        let mut prefix = [0; 4];
        self.stream.read_exact(&mut prefix)?;
        let length = frame::frame_length(prefix, FRAME_BYTES_MAX)
            .map_err(|error| std::io::Error::other(format!("bad frame from the server: {error}")))?;
        let mut body = vec![0; length];
        self.stream.read_exact(&mut body)?;
        Ok(body)
    }

    /// Creates every path (pipelined in chunks), ignoring NodeExists.
    fn create_all(&mut self, paths: impl Iterator<Item = String>, value: &[u8]) -> std::io::Result<()> {
        let mut paths = paths.peekable();
        while paths.peek().is_some() {
            let mut bytes = Vec::new();
            let mut sent = 0;
            for path in paths.by_ref().take(256) {
                self.xid += 1;
                let create = CreateRequest {
                    opcode: opcode::CREATE,
                    path,
                    data: Some(value.to_vec()),
                    acl: open_acl(),
                    flags: 0,
                    ttl_ms: -1,
                };
                encode_request(&mut bytes, self.xid, &Request::Write(WriteOp::Create(create)));
                sent += 1;
            }
            self.stream.write_all(&bytes)?;
            self.stream.flush()?;
            for _ in 0..sent {
                let reply = self.read_frame()?;
                let error = ReplyHeader::decode(&mut Reader::new(&reply)).map_err(invalid)?.error;
                if error != 0 && error != ErrorCode::NodeExists.code() {
                    return Err(std::io::Error::other(format!("set-up create failed with error {error}")));
                }
            }
        }
        Ok(())
    }
}

/// Creates what `workload` needs on `server`.
pub fn prepare(
    server: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
    workload: Workload,
    keys: u64,
    sessions: usize,
    value: &[u8],
) -> std::io::Result<()> {
    let mut connection = Blocking::connect(server, tls)?;
    connection.create_all(std::iter::once(ROOT.to_owned()), b"")?;
    match workload {
        Workload::Delete => {
            let paths = (0..sessions).flat_map(|session| (0..keys).map(move |n| owned_key_path(session, n)));
            connection.create_all(paths, value)
        }
        Workload::Create => connection.create_all(std::iter::once(CREATED.to_owned()), b""),
        Workload::Children => {
            let parent = std::iter::once(LISTED.to_owned());
            connection.create_all(parent.chain((0..keys).map(listed_path)), value)
        }
        Workload::Churn => Ok(()),
        Workload::Watch => connection.create_all(super::watch::setup_paths(), value),
        Workload::Lock => connection.create_all(std::iter::once(super::lock::LOCK_PARENT.to_owned()), b""),
        _ => connection.create_all((0..keys).map(key_path), value),
    }
}
