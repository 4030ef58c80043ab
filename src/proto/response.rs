//! Replies: a `ReplyHeader` (xid, zxid, err) followed, when err is 0, by the record of
//! the request's opcode (zookeeper.jute). Encoding appends a whole length-prefixed frame
//! to a connection's output buffer. Decoding is the client's side, used by the load
//! generator: the request's opcode says which record follows.

use super::error_code::ErrorCode;
use super::frame;
use super::jute::{DecodeError, Reader, Writer};
use super::opcode;
use super::stat::Stat;
use super::watch_event::WatcherEvent;

/// `ReplyHeader`. `error` is ZooKeeper's code as sent (0 for success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub error: i32,
}

impl ReplyHeader {
    pub fn decode(reader: &mut Reader<'_>) -> Result<ReplyHeader, DecodeError> {
        Ok(ReplyHeader { xid: reader.read_i32()?, zxid: reader.read_i64()?, error: reader.read_i32()? })
    }
}

/// The result of one operation of a multi or multiRead (`OpResult`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// `opcode` is the create variant; CREATE answers with the path only.
    Create {
        opcode: i32,
        path: String,
        stat: Stat,
    },
    Delete,
    SetData {
        stat: Stat,
    },
    Check,
    GetData {
        data: Option<Vec<u8>>,
        stat: Stat,
    },
    GetChildren {
        children: Vec<String>,
    },
    Error {
        code: ErrorCode,
    },
}

/// The body of a successful reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    Empty,
    Stat(Stat),
    Path(String),
    PathStat(String, Stat),
    DataStat(Option<Vec<u8>>, Stat),
    Children(Vec<String>),
    ChildrenStat(Vec<String>, Stat),
    Strings(Vec<String>),
    Number(i32),
    /// getACL: the ACL and the Stat.
    AclStat(Vec<super::acl::Acl>, Stat),
    /// whoAmI: (scheme, user) pairs.
    ClientInfo(Vec<(String, String)>),
    Multi(Vec<OpResult>),
    /// The end-of-results header alone, sent even with an error (ZooKeeper does this for a
    /// malformed multiRead).
    EmptyMultiAfterError,
    /// `SetSASLResponse`: the server's SASL token, null when it has none.
    SaslToken(Option<Vec<u8>>),
}

/// Appends a reply frame. A non-zero `error` sends the header alone, as ZooKeeper does.
pub fn encode_reply(buffer: &mut Vec<u8>, xid: i32, zxid: i64, error: ErrorCode, body: &ReplyBody) {
    let start = frame::begin(buffer);
    let mut writer = Writer::new(buffer);
    writer.write_i32(xid);
    writer.write_i64(zxid);
    writer.write_i32(error.code());
    if error == ErrorCode::Ok || *body == ReplyBody::EmptyMultiAfterError {
        encode_body(&mut writer, body);
    }
    frame::end(buffer, start);
}

/// Decodes a reply frame's bytes (after the length prefix) to a request sent with
/// `request_opcode`: the header, and the body when the reply is a success.
pub fn decode_reply(bytes: &[u8], request_opcode: i32) -> Result<(ReplyHeader, Option<ReplyBody>), DecodeError> {
    let mut reader = Reader::new(bytes);
    let header = ReplyHeader::decode(&mut reader)?;
    if header.error != 0 {
        return Ok((header, None));
    }
    Ok((header, Some(decode_body(&mut reader, request_opcode)?)))
}

/// Decodes a notification frame's bytes (xid -1): the event after the header.
pub fn decode_notification(bytes: &[u8]) -> Result<WatcherEvent, DecodeError> {
    let mut reader = Reader::new(bytes);
    let header = ReplyHeader::decode(&mut reader)?;
    if header.xid != opcode::XID_NOTIFICATION {
        return Err(DecodeError::UnexpectedOpcode(header.xid));
    }
    WatcherEvent::decode(&mut reader)
}

fn decode_body(reader: &mut Reader<'_>, request_opcode: i32) -> Result<ReplyBody, DecodeError> {
    Ok(match request_opcode {
        opcode::CREATE => ReplyBody::Path(reader.read_string()?),
        opcode::CREATE2 | opcode::CREATE_CONTAINER | opcode::CREATE_TTL => {
            ReplyBody::PathStat(reader.read_string()?, Stat::decode(reader)?)
        }
        opcode::SYNC => ReplyBody::Path(reader.read_string()?),
        opcode::EXISTS | opcode::SET_DATA | opcode::SET_ACL => ReplyBody::Stat(Stat::decode(reader)?),
        opcode::GET_DATA => ReplyBody::DataStat(reader.read_buffer()?.map(<[u8]>::to_vec), Stat::decode(reader)?),
        opcode::GET_ACL => ReplyBody::AclStat(super::acl::decode_acl_vec(reader)?, Stat::decode(reader)?),
        opcode::GET_CHILDREN => ReplyBody::Children(reader.read_string_vec()?),
        opcode::GET_CHILDREN2 => ReplyBody::ChildrenStat(reader.read_string_vec()?, Stat::decode(reader)?),
        opcode::GET_EPHEMERALS => ReplyBody::Strings(reader.read_string_vec()?),
        // addWatch is answered with an ErrorResponse record (its err, 0), as in
        // ZooKeeper's FinalRequestProcessor.
        opcode::GET_ALL_CHILDREN_NUMBER | opcode::ADD_WATCH => ReplyBody::Number(reader.read_i32()?),
        opcode::WHO_AM_I => {
            let count = reader.read_count(8)?;
            let identities = (0..count).map(|_| Ok((reader.read_string()?, reader.read_string()?)));
            ReplyBody::ClientInfo(identities.collect::<Result<_, DecodeError>>()?)
        }
        opcode::MULTI | opcode::MULTI_READ => ReplyBody::Multi(decode_multi(reader)?),
        opcode::SASL => ReplyBody::SaslToken(reader.read_buffer()?.map(<[u8]>::to_vec)),
        opcode::DELETE
        | opcode::CHECK
        | opcode::DELETE_CONTAINER
        | opcode::PING
        | opcode::AUTH
        | opcode::SET_WATCHES
        | opcode::SET_WATCHES2
        | opcode::CHECK_WATCHES
        | opcode::REMOVE_WATCHES
        | opcode::CLOSE_SESSION => ReplyBody::Empty,
        other => return Err(DecodeError::UnexpectedOpcode(other)),
    })
}

/// `MultiResponse.deserialize`: results until a header with done set. Bounded by the
/// frame: every header takes nine bytes.
fn decode_multi(reader: &mut Reader<'_>) -> Result<Vec<OpResult>, DecodeError> {
    let mut results = Vec::new();
    loop {
        let (op, done, _err) = (reader.read_i32()?, reader.read_bool()?, reader.read_i32()?);
        if done {
            return Ok(results);
        }
        results.push(match op {
            opcode::CREATE => OpResult::Create { opcode: op, path: reader.read_string()?, stat: Stat::default() },
            opcode::CREATE2 | opcode::CREATE_CONTAINER | opcode::CREATE_TTL => {
                OpResult::Create { opcode: op, path: reader.read_string()?, stat: Stat::decode(reader)? }
            }
            opcode::DELETE => OpResult::Delete,
            opcode::SET_DATA => OpResult::SetData { stat: Stat::decode(reader)? },
            opcode::CHECK => OpResult::Check,
            opcode::GET_DATA => {
                OpResult::GetData { data: reader.read_buffer()?.map(<[u8]>::to_vec), stat: Stat::decode(reader)? }
            }
            opcode::GET_CHILDREN => OpResult::GetChildren { children: reader.read_string_vec()? },
            opcode::ERROR => OpResult::Error { code: ErrorCode::from_code(reader.read_i32()?) },
            other => return Err(DecodeError::UnexpectedOpcode(other)),
        });
    }
}

/// Appends a watch notification frame: xid -1, zxid -1 (`NIOServerCnxn.process`).
pub fn encode_notification(buffer: &mut Vec<u8>, event: &WatcherEvent) {
    let start = frame::begin(buffer);
    let mut writer = Writer::new(buffer);
    writer.write_i32(opcode::XID_NOTIFICATION);
    writer.write_i64(-1);
    writer.write_i32(0);
    event.encode(&mut writer);
    frame::end(buffer, start);
}

fn encode_body(writer: &mut Writer<'_>, body: &ReplyBody) {
    match body {
        ReplyBody::Empty => {}
        ReplyBody::Stat(stat) => stat.encode(writer),
        ReplyBody::Path(path) => writer.write_str(path),
        ReplyBody::PathStat(path, stat) => {
            writer.write_str(path);
            stat.encode(writer);
        }
        ReplyBody::DataStat(data, stat) => {
            writer.write_buffer(data.as_deref());
            stat.encode(writer);
        }
        ReplyBody::Children(children) | ReplyBody::Strings(children) => writer.write_string_vec(children),
        ReplyBody::ChildrenStat(children, stat) => {
            writer.write_string_vec(children);
            stat.encode(writer);
        }
        ReplyBody::Number(number) => writer.write_i32(*number),
        ReplyBody::AclStat(acl, stat) => {
            super::acl::encode_acl_vec(acl, writer);
            stat.encode(writer);
        }
        ReplyBody::ClientInfo(identities) => {
            writer.write_i32(identities.len() as i32);
            for (scheme, user) in identities {
                writer.write_str(scheme);
                writer.write_str(user);
            }
        }
        ReplyBody::Multi(results) => encode_multi(writer, results),
        ReplyBody::EmptyMultiAfterError => encode_multi(writer, &[]),
        ReplyBody::SaslToken(token) => writer.write_buffer(token.as_deref()),
    }
}

/// `MultiResponse.serialize`: a MultiHeader (type, done, err) before each result, then a
/// header with done set. An error result has type -1 and carries its code twice.
fn encode_multi(writer: &mut Writer<'_>, results: &[OpResult]) {
    for result in results {
        let (op, err) = match result {
            OpResult::Create { opcode, .. } => (*opcode, 0),
            OpResult::Delete => (opcode::DELETE, 0),
            OpResult::SetData { .. } => (opcode::SET_DATA, 0),
            OpResult::Check => (opcode::CHECK, 0),
            OpResult::GetData { .. } => (opcode::GET_DATA, 0),
            OpResult::GetChildren { .. } => (opcode::GET_CHILDREN, 0),
            OpResult::Error { code } => (opcode::ERROR, code.code()),
        };
        writer.write_i32(op);
        writer.write_bool(false);
        writer.write_i32(err);
        match result {
            OpResult::Create { opcode, path, stat } => {
                writer.write_str(path);
                if *opcode != opcode::CREATE {
                    stat.encode(writer);
                }
            }
            OpResult::Delete | OpResult::Check => {}
            OpResult::SetData { stat } => stat.encode(writer),
            OpResult::GetData { data, stat } => {
                writer.write_buffer(data.as_deref());
                stat.encode(writer);
            }
            OpResult::GetChildren { children } => writer.write_string_vec(children),
            OpResult::Error { code } => writer.write_i32(code.code()),
        }
    }
    writer.write_i32(-1);
    writer.write_bool(true);
    writer.write_i32(-1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_reply_is_the_header_alone() {
        let mut buffer = Vec::new();
        encode_reply(&mut buffer, 5, 0x10, ErrorCode::NoNode, &ReplyBody::Stat(Stat::default()));
        assert_eq!(buffer.len(), 4 + 16);
        assert_eq!(&buffer[..4], &16i32.to_be_bytes());
        assert_eq!(&buffer[16..20], &(-101i32).to_be_bytes());
    }

    #[test]
    fn multi_results_end_with_a_done_header() {
        let mut buffer = Vec::new();
        let results = vec![OpResult::Check, OpResult::Error { code: ErrorCode::BadVersion }];
        encode_reply(&mut buffer, 1, 2, ErrorCode::Ok, &ReplyBody::Multi(results));
        let body = &buffer[20..];
        assert_eq!(body.len(), 9 + 9 + 4 + 9);
        assert_eq!(&body[body.len() - 9..], &[0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::proto::acl::Acl;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[a-z/]{0,12}"
    }

    fn texts() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(text(), 0..4)
    }

    fn data() -> impl Strategy<Value = Option<Vec<u8>>> {
        prop::option::of(prop::collection::vec(any::<u8>(), 0..32))
    }

    fn stat() -> impl Strategy<Value = Stat> {
        (any::<(i64, i64, i64, i64, i64)>(), any::<(i32, i32, i32, i32, i32)>(), any::<i64>()).prop_map(
            |((czxid, mzxid, ctime, mtime, pzxid), (version, cversion, aversion, data_length, num_children), owner)| {
                Stat {
                    czxid,
                    mzxid,
                    ctime,
                    mtime,
                    version,
                    cversion,
                    aversion,
                    ephemeral_owner: owner,
                    data_length,
                    num_children,
                    pzxid,
                }
            },
        )
    }

    fn op_result() -> impl Strategy<Value = OpResult> {
        let codes =
            prop::sample::select(vec![ErrorCode::NoNode, ErrorCode::BadVersion, ErrorCode::NodeExists, ErrorCode::Ok]);
        prop_oneof![
            // CREATE answers with the path alone.
            text().prop_map(|path| OpResult::Create { opcode: opcode::CREATE, path, stat: Stat::default() }),
            (text(), stat()).prop_map(|(path, stat)| OpResult::Create { opcode: opcode::CREATE2, path, stat }),
            Just(OpResult::Delete),
            stat().prop_map(|stat| OpResult::SetData { stat }),
            Just(OpResult::Check),
            (data(), stat()).prop_map(|(data, stat)| OpResult::GetData { data, stat }),
            texts().prop_map(|children| OpResult::GetChildren { children }),
            codes.prop_map(|code| OpResult::Error { code }),
        ]
    }

    /// A request opcode and a body of the shape its reply carries.
    fn reply() -> impl Strategy<Value = (i32, ReplyBody)> {
        let acl = prop::collection::vec(
            (any::<i32>(), text(), text()).prop_map(|(perms, scheme, id)| Acl { perms, scheme, id }),
            0..3,
        );
        let empty_opcodes = prop::sample::select(vec![
            opcode::DELETE,
            opcode::CHECK,
            opcode::PING,
            opcode::SET_WATCHES2,
            opcode::REMOVE_WATCHES,
            opcode::CLOSE_SESSION,
        ]);
        prop_oneof![
            empty_opcodes.prop_map(|op| (op, ReplyBody::Empty)),
            text().prop_map(|path| (opcode::CREATE, ReplyBody::Path(path))),
            text().prop_map(|path| (opcode::SYNC, ReplyBody::Path(path))),
            (text(), stat()).prop_map(|(path, stat)| (opcode::CREATE2, ReplyBody::PathStat(path, stat))),
            stat().prop_map(|stat| (opcode::SET_DATA, ReplyBody::Stat(stat))),
            stat().prop_map(|stat| (opcode::EXISTS, ReplyBody::Stat(stat))),
            (data(), stat()).prop_map(|(data, stat)| (opcode::GET_DATA, ReplyBody::DataStat(data, stat))),
            (acl, stat()).prop_map(|(acl, stat)| (opcode::GET_ACL, ReplyBody::AclStat(acl, stat))),
            texts().prop_map(|children| (opcode::GET_CHILDREN, ReplyBody::Children(children))),
            (texts(), stat())
                .prop_map(|(children, stat)| (opcode::GET_CHILDREN2, ReplyBody::ChildrenStat(children, stat))),
            texts().prop_map(|paths| (opcode::GET_EPHEMERALS, ReplyBody::Strings(paths))),
            any::<i32>().prop_map(|count| (opcode::GET_ALL_CHILDREN_NUMBER, ReplyBody::Number(count))),
            Just((opcode::ADD_WATCH, ReplyBody::Number(0))),
            prop::collection::vec((text(), text()), 0..3)
                .prop_map(|ids| (opcode::WHO_AM_I, ReplyBody::ClientInfo(ids))),
            prop::collection::vec(op_result(), 0..4).prop_map(|results| (opcode::MULTI, ReplyBody::Multi(results))),
        ]
    }

    proptest! {
        #[test]
        fn every_reply_decodes_to_what_was_encoded((op, body) in reply(), xid in any::<i32>(), zxid in any::<i64>()) {
            let mut buffer = Vec::new();
            encode_reply(&mut buffer, xid, zxid, ErrorCode::Ok, &body);
            let (header, decoded) = decode_reply(&buffer[4..], op).unwrap();
            prop_assert_eq!(header, ReplyHeader { xid, zxid, error: 0 });
            prop_assert_eq!(decoded, Some(body));
        }

        #[test]
        fn an_error_reply_decodes_to_its_header_alone((op, body) in reply(), xid in any::<i32>()) {
            let mut buffer = Vec::new();
            encode_reply(&mut buffer, xid, 7, ErrorCode::NoNode, &body);
            let (header, decoded) = decode_reply(&buffer[4..], op).unwrap();
            prop_assert_eq!((header.error, decoded), (ErrorCode::NoNode.code(), None));
        }

        #[test]
        fn notifications_decode_to_their_event(path in text(), code in 1..=7i32) {
            let event = WatcherEvent {
                event_type: crate::proto::watch_event::EventType::from_code(code).unwrap(),
                state: crate::proto::watch_event::STATE_SYNC_CONNECTED,
                path,
            };
            let mut buffer = Vec::new();
            encode_notification(&mut buffer, &event);
            prop_assert_eq!(decode_notification(&buffer[4..]).unwrap(), event);
        }

        #[test]
        fn decoding_any_reply_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..128), op in -12..110i32) {
            let _ = decode_reply(&bytes, op);
            let _ = decode_notification(&bytes);
        }
    }
}
