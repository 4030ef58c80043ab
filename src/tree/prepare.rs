//! The ordering point's validation (ZooKeeper's PrepRequestProcessor): checks a write
//! against the tree plus the changes of transactions already ordered but not yet applied,
//! and turns it into a transaction. Each check happens in ZooKeeper's order, so the same
//! request fails with the same code.

use std::collections::{HashMap, VecDeque};

use super::data_tree::{is_special_owner, DataTree, CONFIG, QUOTA, ROOT, ZOOKEEPER};
use super::path::{parent_and_name, validate_path};
use crate::proto::acl::Acl;
use crate::proto::opcode;
use crate::proto::request::{CreateRequest, MultiOp, Request};
use crate::proto::ErrorCode;
use crate::txn::{AclEntry, CreateTxn, SubTxn, TxnOp};

/// What validation needs to know of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeRecord {
    pub version: i32,
    pub cversion: i32,
    pub num_children: i32,
    pub ephemeral_owner: i64,
}

/// Changes made by transactions that are ordered but not applied yet (ZooKeeper's
/// outstandingChanges). `None` marks a node deleted by a pending transaction.
/// Each change is tagged with the zxid that made it and dropped once the tree has
/// applied that zxid.
#[derive(Debug, Default, Clone)]
pub struct PendingChanges {
    records: HashMap<String, (i64, Option<NodeRecord>)>,
    order: VecDeque<(i64, String)>,
    /// The zxid of the transaction being prepared.
    zxid: i64,
}

impl PendingChanges {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Forgets the changes the tree now holds: those of transactions up to `zxid`.
    pub fn applied_through(&mut self, zxid: i64) {
        while let Some((change_zxid, _)) = self.order.front() {
            if *change_zxid > zxid {
                break;
            }
            let (change_zxid, path) = self.order.pop_front().expect("front exists");
            if self.records.get(&path).is_some_and(|(latest, _)| *latest <= change_zxid) {
                self.records.remove(&path);
            }
        }
        debug_assert!(self.records.values().all(|(change_zxid, _)| *change_zxid > zxid));
    }

    fn set(&mut self, path: &str, record: Option<NodeRecord>) {
        assert!(self.zxid > 0, "changes are made while preparing a zxid");
        self.records.insert(path.to_owned(), (self.zxid, record));
        self.order.push_back((self.zxid, path.to_owned()));
    }

    fn record(&self, tree: &DataTree, path: &str) -> Option<NodeRecord> {
        if let Some((_, record)) = self.records.get(path) {
            return *record;
        }
        tree.node(path).map(|node| NodeRecord {
            version: node.version,
            cversion: node.cversion,
            num_children: node.children.len() as i32,
            ephemeral_owner: node.ephemeral_owner,
        })
    }
}

/// Flags of `CreateMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CreateMode {
    ephemeral: bool,
    sequential: bool,
}

fn create_mode(flags: i32) -> Result<CreateMode, ErrorCode> {
    match flags {
        0 => Ok(CreateMode { ephemeral: false, sequential: false }),
        1 => Ok(CreateMode { ephemeral: true, sequential: false }),
        2 => Ok(CreateMode { ephemeral: false, sequential: true }),
        3 => Ok(CreateMode { ephemeral: true, sequential: true }),
        // Container (4) and TTL (5, 6) nodes are not served yet.
        _ => Err(ErrorCode::BadArguments),
    }
}

/// Turns a write request into a transaction. A request that fails validation becomes an
/// error transaction; a multi that fails becomes a multi of error steps.
pub fn prepare(tree: &DataTree, pending: &mut PendingChanges, session_id: i64, zxid: i64, request: &Request) -> TxnOp {
    debug_assert!(request.is_write());
    assert!(zxid > tree.last_zxid(), "preparing zxid {zxid:#x} at or before the applied {:#x}", tree.last_zxid());
    pending.zxid = zxid;
    match request {
        Request::Multi(ops) => prepare_multi(tree, pending, session_id, ops),
        Request::CloseSession => TxnOp::CloseSession { ephemerals: close_session(tree, pending, session_id) },
        _ => {
            let single = match request {
                Request::Create(create) => {
                    prepare_create(tree, pending, session_id, create).map(TxnOp::Create)
                }
                Request::Delete { path, version } => {
                    prepare_delete(tree, pending, path, *version).map(|path| TxnOp::Delete { path })
                }
                Request::SetData { path, data, version } => prepare_set_data(tree, pending, path, *version)
                    .map(|version| TxnOp::SetData { path: path.clone(), data: data.clone(), version }),
                Request::Check { path, version } => {
                    prepare_check(tree, pending, path, *version).map(|()| TxnOp::Check { path: path.clone() })
                }
                _ => unreachable!("not a write: {request:?}"),
            };
            single.unwrap_or_else(|code| TxnOp::Error { code: code.code() })
        }
    }
}

/// The paths a closing session's ephemerals will have, pending creates and deletes
/// included, sorted so every server deletes them in the same order.
fn close_session(tree: &DataTree, pending: &mut PendingChanges, session_id: i64) -> Vec<String> {
    let mut paths: Vec<String> = tree
        .ephemerals_of(session_id)
        .filter(|path| pending.record(tree, path).is_some())
        .map(str::to_owned)
        .collect();
    for (path, (_, record)) in &pending.records {
        if matches!(record, Some(r) if r.ephemeral_owner == session_id) && !paths.contains(path) {
            paths.push(path.clone());
        }
    }
    paths.sort();
    for path in &paths {
        let (parent, _) = parent_and_name(path).expect("ephemerals are not the root");
        if let Some(mut record) = pending.record(tree, parent) {
            record.num_children -= 1;
            pending.set(parent, Some(record));
        }
        pending.set(path, None);
    }
    paths
}

fn prepare_multi(tree: &DataTree, pending: &mut PendingChanges, session_id: i64, ops: &[MultiOp]) -> TxnOp {
    // A multi is all or nothing: its steps see each other's changes, and a failure rolls
    // back the changes of the steps before it.
    let saved = pending.clone();
    let mut steps = Vec::with_capacity(ops.len());
    let mut failure: Option<(usize, ErrorCode)> = None;
    for (index, op) in ops.iter().enumerate() {
        let step = match op {
            MultiOp::Create(create) => prepare_create(tree, pending, session_id, create).map(SubTxn::Create),
            MultiOp::Delete { path, version } => {
                prepare_delete(tree, pending, path, *version).map(|path| SubTxn::Delete { path })
            }
            MultiOp::SetData { path, data, version } => prepare_set_data(tree, pending, path, *version)
                .map(|version| SubTxn::SetData { path: path.clone(), data: data.clone(), version }),
            MultiOp::Check { path, version } => {
                prepare_check(tree, pending, path, *version).map(|()| SubTxn::Check { path: path.clone() })
            }
        };
        match step {
            Ok(step) => steps.push(step),
            Err(code) => {
                failure = Some((index, code));
                break;
            }
        }
    }
    let Some((failed_index, code)) = failure else {
        return TxnOp::Multi { ops: steps };
    };
    *pending = saved;
    let ops = (0..ops.len())
        .map(|index| {
            let code = match index.cmp(&failed_index) {
                std::cmp::Ordering::Less => ErrorCode::Ok,
                std::cmp::Ordering::Equal => code,
                std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
            };
            SubTxn::Error { code: code.code() }
        })
        .collect();
    TxnOp::Multi { ops }
}

/// ZooKeeper accepts an ACL list that is non-empty and names known schemes correctly
/// (`PrepRequestProcessor.fixupACL`).
fn validate_acl(acl: &[Acl]) -> Result<(), ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    for entry in acl {
        let valid = match entry.scheme.as_str() {
            "world" => entry.id == "anyone",
            "digest" => entry.id.contains(':'),
            "ip" => is_valid_ip_id(&entry.id),
            _ => false,
        };
        if !valid {
            return Err(ErrorCode::InvalidAcl);
        }
    }
    Ok(())
}

fn is_valid_ip_id(id: &str) -> bool {
    let (address, bits) = match id.split_once('/') {
        Some((address, bits)) => (address, Some(bits)),
        None => (id, None),
    };
    let Ok(ip) = address.parse::<std::net::IpAddr>() else { return false };
    let max_bits = if ip.is_ipv4() { 32 } else { 128 };
    bits.is_none_or(|bits| bits.parse::<u32>().is_ok_and(|bits| bits <= max_bits))
}

fn prepare_create(
    tree: &DataTree,
    pending: &mut PendingChanges,
    session_id: i64,
    create: &CreateRequest,
) -> Result<CreateTxn, ErrorCode> {
    if create.opcode != opcode::CREATE && create.opcode != opcode::CREATE2 {
        return Err(ErrorCode::Unimplemented);
    }
    let mode = create_mode(create.flags)?;
    validate_path(&create.path, mode.sequential).map_err(|_| ErrorCode::BadArguments)?;
    validate_acl(&create.acl)?;
    let slash = create.path.rfind('/').ok_or(ErrorCode::BadArguments)?;
    let parent_path = if slash == 0 { ROOT } else { &create.path[..slash] };
    let mut parent = pending.record(tree, parent_path).ok_or(ErrorCode::NoNode)?;
    let mut path = create.path.clone();
    if mode.sequential {
        // The counter is the parent's cversion, zero-padded to ten digits
        // (`String.format("%010d", parentCVersion)`).
        path.push_str(&format!("{:010}", parent.cversion));
    }
    validate_path(&path, false).map_err(|_| ErrorCode::BadArguments)?;
    if pending.record(tree, &path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if parent.ephemeral_owner != 0 && !is_special_owner(parent.ephemeral_owner) {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let parent_cversion = parent.cversion.wrapping_add(1);
    parent.cversion = parent_cversion;
    parent.num_children += 1;
    pending.set(parent_path, Some(parent));
    let ephemeral_owner = if mode.ephemeral { session_id } else { 0 };
    pending.set(&path, Some(NodeRecord { version: 0, cversion: 0, num_children: 0, ephemeral_owner }));
    Ok(CreateTxn {
        path,
        data: create.data.clone(),
        acl: create
            .acl
            .iter()
            .map(|entry| AclEntry { perms: entry.perms, scheme: entry.scheme.clone(), id: entry.id.clone() })
            .collect(),
        ephemeral_owner,
        parent_cversion,
    })
}

/// ZooKeeper does not run the full path check on a delete: it refuses a path with no
/// slash, a NUL or one of the system nodes, and otherwise looks the path up
/// (`PrepRequestProcessor.getParentPathAndValidate`).
fn prepare_delete(tree: &DataTree, pending: &mut PendingChanges, path: &str, version: i32) -> Result<String, ErrorCode> {
    let slash = path.rfind('/').ok_or(ErrorCode::BadArguments)?;
    if path.contains('\0') || [ROOT, ZOOKEEPER, QUOTA, CONFIG].contains(&path) {
        return Err(ErrorCode::BadArguments);
    }
    let parent_path = if slash == 0 { ROOT } else { &path[..slash] };
    let mut parent = pending.record(tree, parent_path).ok_or(ErrorCode::NoNode)?;
    let node = pending.record(tree, path).ok_or(ErrorCode::NoNode)?;
    check_version(node.version, version)?;
    if node.num_children > 0 {
        return Err(ErrorCode::NotEmpty);
    }
    parent.num_children -= 1;
    pending.set(parent_path, Some(parent));
    pending.set(path, None);
    Ok(path.to_owned())
}

fn prepare_set_data(tree: &DataTree, pending: &mut PendingChanges, path: &str, version: i32) -> Result<i32, ErrorCode> {
    validate_path(path, false).map_err(|_| ErrorCode::BadArguments)?;
    let mut node = pending.record(tree, path).ok_or(ErrorCode::NoNode)?;
    check_version(node.version, version)?;
    node.version = node.version.wrapping_add(1);
    pending.set(path, Some(node));
    Ok(node.version)
}

fn prepare_check(tree: &DataTree, pending: &PendingChanges, path: &str, version: i32) -> Result<(), ErrorCode> {
    validate_path(path, false).map_err(|_| ErrorCode::BadArguments)?;
    let node = pending.record(tree, path).ok_or(ErrorCode::NoNode)?;
    check_version(node.version, version)
}

/// -1 matches any version (`PrepRequestProcessor.checkAndIncVersion`).
fn check_version(current: i32, expected: i32) -> Result<(), ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(())
}
