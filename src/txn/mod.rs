//! The transaction record: one rkyv type that is at once the log record, the replication
//! payload and the input to `tree::DataTree::apply`. The ordering point produces it once;
//! every core (and, later, every follower) reads the archived bytes in place.
//!
//! A failed write is a transaction too (`Error`), as in ZooKeeper, whose
//! PrepRequestProcessor turns a failed request into an ErrorTxn that takes a zxid: this
//! keeps one total order for replies and makes per-session FIFO hold for failures.

use rkyv::{Archive, Deserialize, Serialize};

/// One ACL entry as logged.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

/// A node creation. `parent_cversion` is the parent's child version after the create,
/// computed at the ordering point so that every server applies the same value.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CreateTxn {
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub acl: Vec<AclEntry>,
    pub ephemeral_owner: i64,
    pub parent_cversion: i32,
}

/// One change to the tree: a write of its own or one step of a multi. A failed multi
/// carries only `Error` steps: OK (0) for the steps before the failure, the failure's
/// code, and RuntimeInconsistency after it (`DataTree.processTxn`, case multi).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create(CreateTxn),
    Delete {
        path: String,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    Check {
        path: String,
    },
    /// setACL: the node's new ACL and ACL version.
    SetAcl {
        path: String,
        acl: Vec<AclEntry>,
        version: i32,
    },
    Error {
        code: i32,
    },
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum TxnOp {
    /// Opens a session. The password is logged so a session survives a restart.
    CreateSession {
        timeout_ms: i32,
        password: [u8; 16],
    },
    /// Closes (or expires) a session; `ephemerals` are the nodes it owned, deleted in the
    /// same transaction.
    CloseSession {
        ephemerals: Vec<String>,
    },
    /// A single write; a failed one is an `Error` step.
    Single(Step),
    Multi {
        ops: Vec<Step>,
    },
    /// Opens an ensemble leader's epoch, at zxid `epoch << 32` (a counter no client write
    /// takes): once a quorum holds it, every record before it is committed. It changes
    /// nothing in the tree. (Last, so logs written before it read unchanged.)
    EpochMarker,
}

/// A transaction: the session and request it came from, its zxid and its time.
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    pub session_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    pub time_ms: i64,
    pub op: TxnOp,
}

impl Txn {
    /// The record that opens an ensemble leader's epoch.
    pub fn epoch_marker(zxid: i64) -> Txn {
        assert_eq!(zxid & 0xffff_ffff, 0, "an epoch marker takes counter 0");
        Txn { session_id: 0, cxid: 0, zxid, time_ms: 0, op: TxnOp::EpochMarker }
    }

    /// Serializes the transaction to rkyv bytes.
    pub fn to_bytes(&self) -> rkyv::util::AlignedVec {
        rkyv::to_bytes::<rkyv::rancor::Error>(self).expect("serializing a txn into memory cannot fail")
    }
}

/// ACL entries as logged, from the protocol's ACL records.
pub fn acl_entries(acl: &[crate::proto::acl::Acl]) -> Vec<AclEntry> {
    acl.iter()
        .map(|entry| AclEntry { perms: entry.perms, scheme: entry.scheme.clone(), id: entry.id.clone() })
        .collect()
}

/// The protocol's ACL records, from logged (archived) entries read in place.
pub fn acl_of(entries: &rkyv::vec::ArchivedVec<ArchivedAclEntry>) -> Vec<crate::proto::acl::Acl> {
    entries
        .iter()
        .map(|entry| crate::proto::acl::Acl {
            perms: entry.perms.to_native(),
            scheme: entry.scheme.to_string(),
            id: entry.id.to_string(),
        })
        .collect()
}

/// Znode data as logged: None is null data.
pub fn data_of(data: &rkyv::option::ArchivedOption<rkyv::vec::ArchivedVec<u8>>) -> Option<&[u8]> {
    data.as_ref().map(|bytes| bytes.as_slice())
}

/// Reads a transaction from bytes of a file or a peer in place, after rkyv's validation
/// of every byte (a matching checksum does not make bytes a transaction); None if they
/// are not one.
pub fn access_checked(bytes: &[u8]) -> Option<&ArchivedTxn> {
    rkyv::access::<ArchivedTxn, rkyv::rancor::Failure>(bytes).ok()
}

/// Reads a transaction in place from bytes `Txn::to_bytes` made in this process, or that
/// passed `access_checked` when they arrived; they are validated again in debug builds.
pub fn access_written(bytes: &[u8]) -> &ArchivedTxn {
    assert_eq!(bytes.as_ptr() as usize % 16, 0, "records are read in place from 16-byte aligned frames");
    debug_assert!(access_checked(bytes).is_some());
    // SAFETY: the bytes were serialized by `Txn::to_bytes` or validated by rkyv (the
    // caller's contract, kept by `log::record::Records`), and they are aligned (asserted).
    unsafe { rkyv::access_unchecked::<ArchivedTxn>(bytes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_txn_reads_back_in_place() {
        let txn = Txn {
            session_id: 7,
            cxid: 3,
            zxid: 0x1_0000_0005,
            time_ms: 1234,
            op: TxnOp::Multi {
                ops: vec![
                    Step::Create(CreateTxn {
                        path: "/a".into(),
                        data: Some(b"x".to_vec()),
                        acl: vec![AclEntry { perms: 31, scheme: "world".into(), id: "anyone".into() }],
                        ephemeral_owner: 0,
                        parent_cversion: 1,
                    }),
                    Step::Error { code: -101 },
                ],
            },
        };
        let bytes = txn.to_bytes();
        let archived = access_written(&bytes);
        assert_eq!(archived.zxid.to_native(), txn.zxid);
        let back: Txn = rkyv::deserialize::<Txn, rkyv::rancor::Error>(archived).unwrap();
        assert_eq!(back, txn);
    }
}
