//! Set-up before a run, over one blocking connection: the bench root, the keys that
//! reads and writes use, and the nodes a delete run removes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::workload::{key_path, listed_path, owned_key_path, Workload, CREATED, LISTED, ROOT};
use crate::proto::acl::Acl;
use crate::proto::{frame, jute::Writer, opcode};

struct Blocking {
    stream: TcpStream,
    xid: i32,
}

impl Blocking {
    fn connect(server: SocketAddr) -> std::io::Result<Blocking> {
        let mut stream = TcpStream::connect_timeout(&server, super::session::SETUP_TIMEOUT)?;
        stream.set_read_timeout(Some(super::session::SETUP_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let mut bytes = Vec::new();
        super::workload::encode_connect(&mut bytes);
        stream.write_all(&bytes)?;
        let mut connection = Blocking { stream, xid: 0 };
        connection.read_frame()?;
        Ok(connection)
    }

    fn read_frame(&mut self) -> std::io::Result<Vec<u8>> {
        let mut prefix = [0; 4];
        self.stream.read_exact(&mut prefix)?;
        let mut body = vec![0; i32::from_be_bytes(prefix) as usize];
        self.stream.read_exact(&mut body)?;
        Ok(body)
    }

    /// Creates every path (pipelined in chunks), ignoring NodeExists.
    fn create_all(&mut self, paths: impl Iterator<Item = Vec<u8>>, value: &[u8]) -> std::io::Result<()> {
        let mut paths = paths.peekable();
        while paths.peek().is_some() {
            let mut bytes = Vec::new();
            let mut sent = 0;
            for path in paths.by_ref().take(256) {
                self.xid += 1;
                let start = frame::begin(&mut bytes);
                let mut writer = Writer::new(&mut bytes);
                writer.write_i32(self.xid);
                writer.write_i32(opcode::CREATE);
                writer.write_bytes(&path);
                writer.write_bytes(value);
                writer.write_i32(1);
                Acl::open_unsafe().encode(&mut writer);
                writer.write_i32(0);
                frame::end(&mut bytes, start);
                sent += 1;
            }
            self.stream.write_all(&bytes)?;
            for _ in 0..sent {
                let reply = self.read_frame()?;
                let error = i32::from_be_bytes(reply[12..16].try_into().expect("4 bytes"));
                if error != 0 && error != -110 {
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
    workload: Workload,
    keys: u64,
    sessions: usize,
    value: &[u8],
) -> std::io::Result<()> {
    let mut connection = Blocking::connect(server)?;
    connection.create_all(std::iter::once(ROOT.as_bytes().to_vec()), b"")?;
    let mut buffer = [0u8; 96];
    match workload {
        Workload::Delete => {
            let paths = (0..sessions).flat_map(|session| (0..keys).map(move |n| (session, n)));
            connection.create_all(paths.map(|(session, n)| owned_key_path(&mut buffer, session, n).to_vec()), value)
        }
        Workload::Create => connection.create_all(std::iter::once(CREATED.as_bytes().to_vec()), b""),
        Workload::Children => {
            let parent = std::iter::once(LISTED.as_bytes().to_vec());
            let children = (0..keys).map(|n| listed_path(&mut buffer, n).to_vec());
            connection.create_all(parent.chain(children), value)
        }
        Workload::Churn => Ok(()),
        Workload::Watch => connection.create_all(super::watch::setup_paths(), value),
        Workload::Lock => connection.create_all(std::iter::once(super::lock::LOCK_PARENT.as_bytes().to_vec()), b""),
        _ => connection.create_all((0..keys).map(|key| key_path(&mut buffer, key).to_vec()), value),
    }
}
