//! Client requests: a `RequestHeader` (xid, opcode) followed by the opcode's record
//! (zookeeper.jute). Decoding borrows nothing from the frame so a request can cross
//! cores; it never panics on a client's bytes. Encoding is the client's side, used by the
//! load generator: `decode_request(encode_request(x)) == x`.

use super::acl::{decode_acl_vec, encode_acl_vec, Acl};
use super::frame;
use super::jute::{DecodeError, Reader, Writer};
use super::opcode;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub opcode: i32,
}

/// `CreateRequest`, `CreateTTLRequest` and the container variant share one shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// Which create: CREATE, CREATE2, CREATE_CONTAINER or CREATE_TTL. It decides the reply.
    pub opcode: i32,
    pub path: String,
    /// None when the client sent null (length -1); reads give null back.
    pub data: Option<Vec<u8>>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    pub ttl_ms: i64,
}

/// `SetWatches` and `SetWatches2`: the watches a client re-registers after reconnecting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// A write operation: a request of its own, or one operation of a multi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Create(CreateRequest),
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    /// deleteContainer: removes an empty container or TTL node (sent by the reaper).
    DeleteContainer {
        path: String,
    },
    SetAcl {
        path: String,
        acl: Vec<Acl>,
        version: i32,
    },
}

/// One operation of a multiRead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOp {
    GetChildren { path: String },
    GetData { path: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Ping,
    CloseSession,
    /// create, create2, delete, setData, and check (which ZooKeeper answers as a write
    /// even outside a multi).
    Write(WriteOp),
    Exists {
        path: String,
        watch: bool,
    },
    GetData {
        path: String,
        watch: bool,
    },
    /// getChildren (`with_stat` false) and getChildren2 (true).
    GetChildren {
        path: String,
        watch: bool,
        with_stat: bool,
    },
    Sync {
        path: String,
    },
    Multi(Vec<WriteOp>),
    MultiRead(Vec<ReadOp>),
    SetWatches(SetWatches),
    GetEphemerals {
        prefix: String,
    },
    GetAllChildrenNumber {
        path: String,
    },
    WhoAmI,
    GetAcl {
        path: String,
    },
    /// addWatch: mode 0 PERSISTENT, 1 PERSISTENT_RECURSIVE.
    AddWatch {
        path: String,
        mode: i32,
    },
    /// checkWatches (17) and removeWatches (18), with a `WatcherType`.
    CheckWatches {
        path: String,
        watcher_type: i32,
    },
    RemoveWatches {
        path: String,
        watcher_type: i32,
    },
    /// The auth packet (xid -4): a scheme and its credential.
    Auth {
        scheme: String,
        /// None for a null buffer (length -1), which ZooKeeper's digest provider fails.
        credential: Option<Vec<u8>>,
    },
    /// reconfig (16), ZooKeeper's dynamic reconfiguration. Ringkeeper's membership comes
    /// from zoo.cfg alone, so it answers as ZooKeeper does with `reconfigEnabled=false`:
    /// ReconfigDisabled, after giving the request a zxid (`PrepRequestProcessor` turns
    /// it into an error transaction). The strings are null where a client leaves them out.
    Reconfig {
        joining: Option<String>,
        leaving: Option<String>,
        new_members: Option<String>,
        config_id: i64,
    },
    /// sasl (102): a client's SASL token (`GetSASLRequest`), null when its length is -1.
    Sasl {
        token: Option<Vec<u8>>,
    },
    /// An opcode we recognise but do not serve yet, or one ZooKeeper does not know.
    Unimplemented(i32),
    /// A known opcode whose record did not decode. ZooKeeper answers MarshallingError and
    /// keeps the connection; a write still takes its place (and a zxid) in the order.
    Malformed {
        opcode: i32,
    },
}

impl WriteOp {
    /// The opcode the operation was sent with; it decides the shape of its reply.
    pub fn opcode(&self) -> i32 {
        match self {
            WriteOp::Create(create) => create.opcode,
            WriteOp::Delete { .. } => opcode::DELETE,
            WriteOp::SetData { .. } => opcode::SET_DATA,
            WriteOp::Check { .. } => opcode::CHECK,
            WriteOp::DeleteContainer { .. } => opcode::DELETE_CONTAINER,
            WriteOp::SetAcl { .. } => opcode::SET_ACL,
        }
    }
}

impl Request {
    /// The opcode a client sends the request with. A setWatches goes as SET_WATCHES2,
    /// which carries every kind of watch; an unknown or malformed request keeps its own.
    pub fn opcode(&self) -> i32 {
        match self {
            Request::Ping => opcode::PING,
            Request::CloseSession => opcode::CLOSE_SESSION,
            Request::Write(op) => op.opcode(),
            Request::Exists { .. } => opcode::EXISTS,
            Request::GetData { .. } => opcode::GET_DATA,
            Request::GetChildren { with_stat: false, .. } => opcode::GET_CHILDREN,
            Request::GetChildren { with_stat: true, .. } => opcode::GET_CHILDREN2,
            Request::Sync { .. } => opcode::SYNC,
            Request::Multi(_) => opcode::MULTI,
            Request::MultiRead(_) => opcode::MULTI_READ,
            Request::SetWatches(_) => opcode::SET_WATCHES2,
            Request::GetEphemerals { .. } => opcode::GET_EPHEMERALS,
            Request::GetAllChildrenNumber { .. } => opcode::GET_ALL_CHILDREN_NUMBER,
            Request::WhoAmI => opcode::WHO_AM_I,
            Request::GetAcl { .. } => opcode::GET_ACL,
            Request::AddWatch { .. } => opcode::ADD_WATCH,
            Request::CheckWatches { .. } => opcode::CHECK_WATCHES,
            Request::RemoveWatches { .. } => opcode::REMOVE_WATCHES,
            Request::Auth { .. } => opcode::AUTH,
            Request::Reconfig { .. } => opcode::RECONFIG,
            Request::Sasl { .. } => opcode::SASL,
            Request::Unimplemented(op) | Request::Malformed { opcode: op } => *op,
        }
    }

    /// Whether the request changes state and so goes through the ordering point.
    pub fn is_write(&self) -> bool {
        match self {
            Request::Write(_) | Request::Multi(_) | Request::CloseSession | Request::Reconfig { .. } => true,
            Request::Malformed { opcode } => is_write_opcode(*opcode),
            _ => false,
        }
    }
}

fn is_write_opcode(op: i32) -> bool {
    matches!(
        op,
        opcode::CREATE
            | opcode::CREATE2
            | opcode::CREATE_CONTAINER
            | opcode::CREATE_TTL
            | opcode::DELETE
            | opcode::DELETE_CONTAINER
            | opcode::SET_DATA
            | opcode::CHECK
            | opcode::SET_ACL
            | opcode::MULTI
            | opcode::CREATE_SESSION
            | opcode::RECONFIG
    )
}

/// Appends a request frame: the length prefix, the header and the opcode's record. The
/// auth packet goes with xid -4 and a setWatches with -8, as clients send them
/// (`ClientCnxn`); an unknown or malformed request is its header alone.
pub fn encode_request(buffer: &mut Vec<u8>, xid: i32, request: &Request) {
    let start = frame::begin(buffer);
    let mut writer = Writer::new(buffer);
    let xid = match request {
        Request::Auth { .. } => opcode::XID_AUTH,
        Request::SetWatches(_) => opcode::XID_SET_WATCHES,
        Request::Ping => opcode::XID_PING,
        _ => xid,
    };
    writer.write_i32(xid);
    writer.write_i32(request.opcode());
    encode_body(&mut writer, request);
    frame::end(buffer, start);
}

fn encode_body(writer: &mut Writer<'_>, request: &Request) {
    match request {
        Request::Ping
        | Request::CloseSession
        | Request::WhoAmI
        | Request::Unimplemented(_)
        | Request::Malformed { .. } => {}
        Request::Write(op) => encode_write_op(writer, op),
        Request::Exists { path, watch }
        | Request::GetData { path, watch }
        | Request::GetChildren { path, watch, .. } => {
            writer.write_str(path);
            writer.write_bool(*watch);
        }
        Request::Sync { path }
        | Request::GetAllChildrenNumber { path }
        | Request::GetAcl { path }
        | Request::GetEphemerals { prefix: path } => writer.write_str(path),
        Request::Multi(ops) => {
            for op in ops {
                write_multi_header(writer, op.opcode(), false);
                encode_write_op(writer, op);
            }
            write_multi_header(writer, -1, true);
        }
        Request::MultiRead(ops) => {
            for op in ops {
                let (op_code, path) = match op {
                    ReadOp::GetChildren { path } => (opcode::GET_CHILDREN, path),
                    ReadOp::GetData { path } => (opcode::GET_DATA, path),
                };
                write_multi_header(writer, op_code, false);
                writer.write_str(path);
                writer.write_bool(false);
            }
            write_multi_header(writer, -1, true);
        }
        Request::SetWatches(watches) => {
            writer.write_i64(watches.relative_zxid);
            for paths in
                [&watches.data, &watches.exist, &watches.child, &watches.persistent, &watches.persistent_recursive]
            {
                writer.write_string_vec(paths);
            }
        }
        Request::AddWatch { path, mode: number }
        | Request::CheckWatches { path, watcher_type: number }
        | Request::RemoveWatches { path, watcher_type: number } => {
            writer.write_str(path);
            writer.write_i32(*number);
        }
        Request::Auth { scheme, credential } => {
            writer.write_i32(0);
            writer.write_str(scheme);
            writer.write_buffer(credential.as_deref());
        }
        Request::Sasl { token } => writer.write_buffer(token.as_deref()),
        Request::Reconfig { joining, leaving, new_members, config_id } => {
            for servers in [joining, leaving, new_members] {
                writer.write_buffer(servers.as_deref().map(str::as_bytes));
            }
            writer.write_i64(*config_id);
        }
    }
}

/// `MultiHeader`: type, done, err (-1 in requests).
fn write_multi_header(writer: &mut Writer<'_>, op: i32, done: bool) {
    writer.write_i32(op);
    writer.write_bool(done);
    writer.write_i32(-1);
}

fn encode_write_op(writer: &mut Writer<'_>, op: &WriteOp) {
    match op {
        WriteOp::Create(create) => {
            writer.write_str(&create.path);
            writer.write_buffer(create.data.as_deref());
            encode_acl_vec(&create.acl, writer);
            writer.write_i32(create.flags);
            if create.opcode == opcode::CREATE_TTL {
                writer.write_i64(create.ttl_ms);
            }
        }
        WriteOp::Delete { path, version } | WriteOp::Check { path, version } => {
            writer.write_str(path);
            writer.write_i32(*version);
        }
        WriteOp::SetData { path, data, version } => {
            writer.write_str(path);
            writer.write_buffer(data.as_deref());
            writer.write_i32(*version);
        }
        WriteOp::DeleteContainer { path } => writer.write_str(path),
        WriteOp::SetAcl { path, acl, version } => {
            writer.write_str(path);
            encode_acl_vec(acl, writer);
            writer.write_i32(*version);
        }
    }
}

/// Decodes a request frame (after the handshake).
pub fn decode_request(bytes: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
    let mut reader = Reader::new(bytes);
    let header = RequestHeader { xid: reader.read_i32()?, opcode: reader.read_i32()? };
    let request = decode_body(header.opcode, &mut reader).unwrap_or(Request::Malformed { opcode: header.opcode });
    Ok((header, request))
}

fn decode_body(op: i32, reader: &mut Reader<'_>) -> Result<Request, DecodeError> {
    Ok(match op {
        opcode::PING => Request::Ping,
        opcode::CLOSE_SESSION => Request::CloseSession,
        opcode::CREATE
        | opcode::CREATE2
        | opcode::CREATE_CONTAINER
        | opcode::CREATE_TTL
        | opcode::DELETE
        | opcode::SET_DATA
        | opcode::CHECK
        | opcode::DELETE_CONTAINER
        | opcode::SET_ACL => Request::Write(decode_write_op(op, reader)?),
        opcode::EXISTS => Request::Exists { path: reader.read_string()?, watch: reader.read_bool()? },
        opcode::GET_DATA => Request::GetData { path: reader.read_string()?, watch: reader.read_bool()? },
        opcode::GET_CHILDREN | opcode::GET_CHILDREN2 => Request::GetChildren {
            path: reader.read_string()?,
            watch: reader.read_bool()?,
            with_stat: op == opcode::GET_CHILDREN2,
        },
        opcode::SYNC => Request::Sync { path: reader.read_string()? },
        opcode::MULTI => Request::Multi(decode_multi(reader)?),
        opcode::MULTI_READ => Request::MultiRead(decode_multi_read(reader)?),
        opcode::SET_WATCHES | opcode::SET_WATCHES2 => {
            let mut watches = SetWatches {
                relative_zxid: reader.read_i64()?,
                data: reader.read_string_vec()?,
                exist: reader.read_string_vec()?,
                child: reader.read_string_vec()?,
                ..SetWatches::default()
            };
            if op == opcode::SET_WATCHES2 {
                watches.persistent = reader.read_string_vec()?;
                watches.persistent_recursive = reader.read_string_vec()?;
            }
            Request::SetWatches(watches)
        }
        opcode::GET_EPHEMERALS => Request::GetEphemerals { prefix: reader.read_string()? },
        opcode::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber { path: reader.read_string()? },
        opcode::WHO_AM_I => Request::WhoAmI,
        opcode::GET_ACL => Request::GetAcl { path: reader.read_string()? },
        opcode::AUTH => {
            let _type = reader.read_i32()?;
            Request::Auth { scheme: reader.read_string()?, credential: reader.read_buffer()?.map(<[u8]>::to_vec) }
        }
        opcode::ADD_WATCH => Request::AddWatch { path: reader.read_string()?, mode: reader.read_i32()? },
        opcode::CHECK_WATCHES => {
            Request::CheckWatches { path: reader.read_string()?, watcher_type: reader.read_i32()? }
        }
        opcode::REMOVE_WATCHES => {
            Request::RemoveWatches { path: reader.read_string()?, watcher_type: reader.read_i32()? }
        }
        opcode::SASL => Request::Sasl { token: reader.read_buffer()?.map(<[u8]>::to_vec) },
        opcode::RECONFIG => Request::Reconfig {
            joining: read_nullable_string(reader)?,
            leaving: read_nullable_string(reader)?,
            new_members: read_nullable_string(reader)?,
            config_id: reader.read_i64()?,
        },
        // A createSession inside a session: ZooKeeper fails to read it as a request record
        // and answers MarshallingError, after giving it a zxid.
        opcode::CREATE_SESSION => Request::Malformed { opcode: op },
        other => Request::Unimplemented(other),
    })
}

/// A jute `ustring` that may be null (length -1).
fn read_nullable_string(reader: &mut Reader<'_>) -> Result<Option<String>, DecodeError> {
    match reader.read_buffer()? {
        None => Ok(None),
        Some(bytes) => std::str::from_utf8(bytes).map(|text| Some(text.to_owned())).map_err(|_| DecodeError::BadUtf8),
    }
}

fn decode_create(op: i32, reader: &mut Reader<'_>) -> Result<CreateRequest, DecodeError> {
    let path = reader.read_string()?;
    let data = reader.read_buffer()?.map(<[u8]>::to_vec);
    let acl = decode_acl_vec(reader)?;
    let flags = reader.read_i32()?;
    let ttl_ms = if op == opcode::CREATE_TTL { reader.read_i64()? } else { -1 };
    Ok(CreateRequest { opcode: op, path, data, acl, flags, ttl_ms })
}

/// The record of a write operation, by opcode.
fn decode_write_op(op: i32, reader: &mut Reader<'_>) -> Result<WriteOp, DecodeError> {
    Ok(match op {
        opcode::CREATE | opcode::CREATE2 | opcode::CREATE_CONTAINER | opcode::CREATE_TTL => {
            WriteOp::Create(decode_create(op, reader)?)
        }
        opcode::DELETE => WriteOp::Delete { path: reader.read_string()?, version: reader.read_i32()? },
        opcode::SET_DATA => WriteOp::SetData {
            path: reader.read_string()?,
            data: reader.read_buffer()?.map(<[u8]>::to_vec),
            version: reader.read_i32()?,
        },
        opcode::CHECK => WriteOp::Check { path: reader.read_string()?, version: reader.read_i32()? },
        opcode::DELETE_CONTAINER => WriteOp::DeleteContainer { path: reader.read_string()? },
        opcode::SET_ACL => {
            WriteOp::SetAcl { path: reader.read_string()?, acl: decode_acl_vec(reader)?, version: reader.read_i32()? }
        }
        other => return Err(DecodeError::UnexpectedOpcode(other)),
    })
}

/// A multi or multiRead is a sequence of (MultiHeader, op) pairs ended by a header with
/// done set (`MultiOperationRecord`). The op count is bounded by the frame's length
/// because every header takes nine bytes.
fn decode_ops<T>(
    reader: &mut Reader<'_>,
    mut decode_op: impl FnMut(i32, &mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let op = reader.read_i32()?;
        let done = reader.read_bool()?;
        let _err = reader.read_i32()?;
        if done {
            return Ok(ops);
        }
        ops.push(decode_op(op, reader)?);
    }
}

/// A multi holds creates, deletes, setData and checks only (`MultiOperationRecord`).
fn decode_multi(reader: &mut Reader<'_>) -> Result<Vec<WriteOp>, DecodeError> {
    decode_ops(reader, |op, reader| match op {
        opcode::SET_ACL | opcode::DELETE_CONTAINER => Err(DecodeError::UnexpectedOpcode(op)),
        _ => decode_write_op(op, reader),
    })
}

fn decode_multi_read(reader: &mut Reader<'_>) -> Result<Vec<ReadOp>, DecodeError> {
    decode_ops(reader, |op, reader| {
        let path = reader.read_string()?;
        let _watch = reader.read_bool()?;
        match op {
            opcode::GET_CHILDREN => Ok(ReadOp::GetChildren { path }),
            opcode::GET_DATA => Ok(ReadOp::GetData { path }),
            other => Err(DecodeError::UnexpectedOpcode(other)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::jute::Writer;

    fn header(buffer: &mut Vec<u8>, xid: i32, op: i32) {
        let mut writer = Writer::new(buffer);
        writer.write_i32(xid);
        writer.write_i32(op);
    }

    #[test]
    fn create_request_decodes_path_data_acl_and_flags() {
        let mut bytes = Vec::new();
        header(&mut bytes, 1, opcode::CREATE2);
        let mut writer = Writer::new(&mut bytes);
        writer.write_str("/a");
        writer.write_bytes(b"x");
        writer.write_i32(1);
        Acl::open_unsafe().encode(&mut writer);
        writer.write_i32(3);
        let (header, request) = decode_request(&bytes).unwrap();
        assert_eq!(header, RequestHeader { xid: 1, opcode: opcode::CREATE2 });
        let Request::Write(WriteOp::Create(create)) = request else { panic!("not a create") };
        assert_eq!(create.path, "/a");
        assert_eq!(create.data.as_deref(), Some(&b"x"[..]));
        assert_eq!(create.acl, vec![Acl::open_unsafe()]);
        assert_eq!(create.flags, 3);
    }

    #[test]
    fn multi_ends_at_the_done_header() {
        let mut bytes = Vec::new();
        header(&mut bytes, 2, opcode::MULTI);
        let mut writer = Writer::new(&mut bytes);
        writer.write_i32(opcode::CHECK);
        writer.write_bool(false);
        writer.write_i32(-1);
        writer.write_str("/a");
        writer.write_i32(3);
        writer.write_i32(-1);
        writer.write_bool(true);
        writer.write_i32(-1);
        let (_, request) = decode_request(&bytes).unwrap();
        assert_eq!(request, Request::Multi(vec![WriteOp::Check { path: "/a".into(), version: 3 }]));
    }

    #[test]
    fn reconfig_decodes_with_its_null_strings_round_trips_and_is_a_write() {
        let request = Request::Reconfig {
            joining: Some("server.5=10.0.0.5:2888:3888;2181".into()),
            leaving: None,
            new_members: None,
            config_id: -1,
        };
        let mut bytes = Vec::new();
        encode_request(&mut bytes, 9, &request);
        let (header, decoded) = decode_request(&bytes[4..]).unwrap();
        assert_eq!((header.xid, header.opcode), (9, opcode::RECONFIG));
        assert_eq!(decoded, request);
        assert!(decoded.is_write(), "ZooKeeper gives a refused reconfig a zxid");
    }

    #[test]
    fn unknown_opcodes_decode_as_unimplemented() {
        let mut bytes = Vec::new();
        header(&mut bytes, 3, 999);
        assert_eq!(decode_request(&bytes).unwrap().1, Request::Unimplemented(999));
    }

    #[test]
    fn garbage_never_panics() {
        for length in 0..64 {
            let bytes: Vec<u8> = (0..length).map(|i| (i * 37 + 11) as u8).collect();
            let _ = decode_request(&bytes);
        }
    }
}

#[cfg(test)]
mod malformed_tests {
    use super::*;

    #[test]
    fn a_known_opcode_with_a_bad_record_is_malformed_not_an_error() {
        // getData whose path claims 100 bytes but has 2.
        let mut bytes = vec![0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 100, b'/', b'a'];
        assert_eq!(decode_request(&bytes).unwrap().1, Request::Malformed { opcode: opcode::GET_DATA });
        assert!(!Request::Malformed { opcode: opcode::GET_DATA }.is_write());
        assert!(Request::Malformed { opcode: opcode::MULTI }.is_write());
        bytes.truncate(6);
        assert!(decode_request(&bytes).is_err(), "a frame without a whole header is garbage");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[a-z/]{0,12}"
    }

    fn data() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop::option::of(prop::collection::vec(any::<u8>(), 0..32))
    }

    fn acl() -> impl Strategy<Value = Vec<Acl>> {
        prop::collection::vec(
            (any::<i32>(), text(), text()).prop_map(|(perms, scheme, id)| Acl { perms, scheme, id }),
            0..3,
        )
    }

    fn create() -> impl Strategy<Value = WriteOp> {
        let opcodes =
            prop::sample::select(vec![opcode::CREATE, opcode::CREATE2, opcode::CREATE_CONTAINER, opcode::CREATE_TTL]);
        (opcodes, text(), data(), acl(), any::<i32>(), any::<i64>()).prop_map(
            |(opcode, path, data, acl, flags, ttl)| {
                // Only a TTL create carries its TTL; the others decode as -1.
                let ttl_ms = if opcode == opcode::CREATE_TTL { ttl } else { -1 };
                WriteOp::Create(CreateRequest { opcode, path, data, acl, flags, ttl_ms })
            },
        )
    }

    /// The operations a multi may hold (`MultiOperationRecord`).
    fn multi_op() -> impl Strategy<Value = WriteOp> {
        prop_oneof![
            create(),
            (text(), any::<i32>()).prop_map(|(path, version)| WriteOp::Delete { path, version }),
            (text(), data(), any::<i32>()).prop_map(|(path, data, version)| WriteOp::SetData { path, data, version }),
            (text(), any::<i32>()).prop_map(|(path, version)| WriteOp::Check { path, version }),
        ]
    }

    fn write_op() -> impl Strategy<Value = WriteOp> {
        prop_oneof![
            multi_op(),
            text().prop_map(|path| WriteOp::DeleteContainer { path }),
            (text(), acl(), any::<i32>()).prop_map(|(path, acl, version)| WriteOp::SetAcl { path, acl, version }),
        ]
    }

    fn read_op() -> impl Strategy<Value = ReadOp> {
        prop_oneof![
            text().prop_map(|path| ReadOp::GetChildren { path }),
            text().prop_map(|path| ReadOp::GetData { path })
        ]
    }

    fn paths() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(text(), 0..3)
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            Just(Request::Ping),
            Just(Request::CloseSession),
            Just(Request::WhoAmI),
            write_op().prop_map(Request::Write),
            (text(), any::<bool>()).prop_map(|(path, watch)| Request::Exists { path, watch }),
            (text(), any::<bool>()).prop_map(|(path, watch)| Request::GetData { path, watch }),
            (text(), any::<bool>(), any::<bool>()).prop_map(|(path, watch, with_stat)| Request::GetChildren {
                path,
                watch,
                with_stat
            }),
            text().prop_map(|path| Request::Sync { path }),
            prop::collection::vec(multi_op(), 0..4).prop_map(Request::Multi),
            prop::collection::vec(read_op(), 0..4).prop_map(Request::MultiRead),
            (any::<i64>(), paths(), paths(), paths(), paths(), paths()).prop_map(
                |(relative_zxid, data, exist, child, persistent, persistent_recursive)| {
                    Request::SetWatches(SetWatches {
                        relative_zxid,
                        data,
                        exist,
                        child,
                        persistent,
                        persistent_recursive,
                    })
                }
            ),
            text().prop_map(|prefix| Request::GetEphemerals { prefix }),
            text().prop_map(|path| Request::GetAllChildrenNumber { path }),
            text().prop_map(|path| Request::GetAcl { path }),
            (text(), any::<i32>()).prop_map(|(path, mode)| Request::AddWatch { path, mode }),
            (text(), any::<i32>()).prop_map(|(path, watcher_type)| Request::CheckWatches { path, watcher_type }),
            (text(), any::<i32>()).prop_map(|(path, watcher_type)| Request::RemoveWatches { path, watcher_type }),
            (text(), data()).prop_map(|(scheme, credential)| Request::Auth { scheme, credential }),
        ]
    }

    proptest! {
        #[test]
        fn every_request_decodes_to_what_was_encoded(request in request(), xid in 1..i32::MAX) {
            let mut buffer = Vec::new();
            encode_request(&mut buffer, xid, &request);
            let length = frame::frame_length(buffer[..4].try_into().unwrap(), usize::MAX).unwrap();
            prop_assert_eq!(length, buffer.len() - 4);
            let (header, decoded) = decode_request(&buffer[4..]).unwrap();
            prop_assert_eq!(header.opcode, request.opcode());
            prop_assert_eq!(decoded, request);
        }

        #[test]
        fn decoding_any_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_request(&bytes);
        }

        #[test]
        fn any_known_opcode_with_any_body_decodes_or_is_malformed(
            op in prop::sample::select(vec![1i32, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21, 22, 100, 101, 103, 104, 105, 106, 107]),
            body in prop::collection::vec(any::<u8>(), 0..128),
        ) {
            let mut bytes = vec![0, 0, 0, 1];
            bytes.extend_from_slice(&op.to_be_bytes());
            bytes.extend_from_slice(&body);
            let (header, _) = decode_request(&bytes).expect("a whole header always decodes");
            prop_assert_eq!(header.opcode, op);
        }
    }
}
