//! Replies: a `ReplyHeader` (xid, zxid, err) followed, when err is 0, by the record of
//! the request's opcode (zookeeper.jute). Encoding appends a whole length-prefixed frame
//! to a connection's output buffer.

use super::error_code::ErrorCode;
use super::frame;
use super::jute::Writer;
use super::opcode;
use super::stat::Stat;
use super::watch_event::WatcherEvent;

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
