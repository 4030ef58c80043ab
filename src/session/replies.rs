//! The reply to a write, built from what applying its transaction did.

use crate::proto::opcode;
use crate::proto::response::{OpResult, ReplyBody};
use crate::proto::ErrorCode;
use crate::tree::Outcome;

/// What a connection remembers of a write until its transaction is applied: enough to
/// shape the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteKind {
    /// One operation, by opcode.
    Single(i32),
    /// A multi: the opcodes of its operations.
    Multi(Vec<i32>),
}

pub fn write_reply(kind: &WriteKind, outcome: Outcome) -> (ErrorCode, ReplyBody) {
    match (kind, outcome) {
        (_, Outcome::Error(code)) => (code, ReplyBody::Empty),
        (WriteKind::Single(op), Outcome::Created { path, stat }) => {
            if *op == opcode::CREATE {
                (ErrorCode::Ok, ReplyBody::Path(path))
            } else {
                (ErrorCode::Ok, ReplyBody::PathStat(path, stat))
            }
        }
        (_, Outcome::DataSet { stat } | Outcome::AclSet { stat }) => (ErrorCode::Ok, ReplyBody::Stat(stat)),
        (WriteKind::Multi(ops), Outcome::Multi(outcomes)) => {
            assert_eq!(ops.len(), outcomes.len(), "a multi's outcome has one result per operation");
            let results = ops.iter().zip(outcomes).map(|(op, outcome)| multi_result(*op, outcome)).collect();
            // A failed multi still answers Ok in the header; the results carry the errors.
            (ErrorCode::Ok, ReplyBody::Multi(results))
        }
        (_, Outcome::Deleted | Outcome::Checked | Outcome::SessionClosed | Outcome::SessionCreated) => {
            (ErrorCode::Ok, ReplyBody::Empty)
        }
        (kind, outcome) => unreachable!("outcome {outcome:?} does not answer {kind:?}"),
    }
}

fn multi_result(op: i32, outcome: Outcome) -> OpResult {
    match outcome {
        // Inside a multi ZooKeeper 3.8 answers create2 like create (the path, no Stat), and
        // createTTL and createContainer like create2 (the path and the Stat).
        Outcome::Created { path, stat } => {
            let answered_as = match op {
                opcode::CREATE2 => opcode::CREATE,
                opcode::CREATE_TTL | opcode::CREATE_CONTAINER => opcode::CREATE2,
                other => other,
            };
            OpResult::Create { opcode: answered_as, path, stat }
        }
        Outcome::Deleted => OpResult::Delete,
        Outcome::DataSet { stat } => OpResult::SetData { stat },
        Outcome::Checked => OpResult::Check,
        Outcome::Error(code) => OpResult::Error { code },
        other => unreachable!("{other:?} in a multi"),
    }
}
