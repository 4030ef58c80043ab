//! The ordering point's validation (ZooKeeper's PrepRequestProcessor): checks a write
//! against the tree plus the changes of transactions already ordered but not yet applied,
//! and turns it into a transaction. Each check happens in ZooKeeper's order, so the same
//! request fails with the same code.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::acl_check::permits;
use crate::proto::acl::{PERM_ADMIN, PERM_CREATE, PERM_DELETE, PERM_READ, PERM_WRITE};

use super::data_tree::{is_special_owner, DataTree, CONFIG, QUOTA, ROOT, ZOOKEEPER};
use super::path::{parent_and_name, validate_path};
use super::quota::{self, QuotaExceeded, QuotaStats};
use crate::proto::acl::Acl;
use crate::proto::opcode;
use crate::proto::request::{CreateRequest, Request, WriteOp};
use crate::proto::ErrorCode;
use crate::txn::{acl_entries, CreateTxn, Step, TxnOp};

/// What validation needs to know of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub num_children: i32,
    pub ephemeral_owner: i64,
    pub acl: Arc<[Acl]>,
    /// The data's length, null counting 0: a setData's quota check compares the new
    /// length with this one (ZooKeeper's ChangeRecord keeps the data for it).
    pub data_length: i64,
}

/// Changes made by transactions that are ordered but not applied yet (ZooKeeper's
/// outstandingChanges). `None` marks a node deleted by a pending transaction.
/// Each change is tagged with the zxid that made it and dropped once the tree has
/// applied that zxid.
#[derive(Debug, Default, Clone)]
pub struct PendingChanges {
    /// Keyed with the tree's own hasher: std's SipHash showed in the profile of every write.
    records: HashMap<String, (i64, Option<NodeRecord>), super::data_tree::PathHasher>,
    order: VecDeque<(i64, String)>,
    /// The zxid of the transaction being prepared.
    zxid: i64,
    /// Quota limits passed by the writes prepared since the last `take_quota_exceeded`,
    /// for the ordering point to log and count. Kept across a failed multi's roll-back.
    quota_exceeded: Vec<QuotaExceeded>,
}

impl PendingChanges {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The quota limits passed since the last call (soft ones logged, hard ones refused).
    pub fn take_quota_exceeded(&mut self) -> Vec<QuotaExceeded> {
        std::mem::take(&mut self.quota_exceeded)
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
            return record.clone();
        }
        tree.node(path).map(|node| NodeRecord {
            version: node.version,
            cversion: node.cversion,
            aversion: node.aversion,
            num_children: node.children.len() as i32,
            ephemeral_owner: node.ephemeral_owner,
            acl: tree.acl_shared(node),
            data_length: node.data_len() as i64,
        })
    }
}

/// `CreateMode` from the request's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CreateMode {
    Persistent {
        sequential: bool,
    },
    Ephemeral {
        sequential: bool,
    },
    Container,
    /// Persistent with a time to live (extended types only).
    Ttl {
        sequential: bool,
    },
}

impl CreateMode {
    fn from_flags(flags: i32) -> Result<CreateMode, ErrorCode> {
        Ok(match flags {
            0 => CreateMode::Persistent { sequential: false },
            1 => CreateMode::Ephemeral { sequential: false },
            2 => CreateMode::Persistent { sequential: true },
            3 => CreateMode::Ephemeral { sequential: true },
            4 => CreateMode::Container,
            5 => CreateMode::Ttl { sequential: false },
            6 => CreateMode::Ttl { sequential: true },
            _ => return Err(ErrorCode::BadArguments),
        })
    }

    fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::Persistent { sequential: true }
                | CreateMode::Ephemeral { sequential: true }
                | CreateMode::Ttl { sequential: true }
        )
    }
}

/// ephemeralOwner of a container node (`EphemeralType.CONTAINER_EPHEMERAL_OWNER`).
pub const CONTAINER_OWNER: i64 = i64::MIN;
/// TTL nodes mark ephemeralOwner with 0xFF in the top byte, extended type 0 in the next
/// two, and the TTL in milliseconds in the low five (`EphemeralType.TTL`). Any other
/// value with the top bit set is a session of a server whose id is 128 or more.
const TTL_OWNER_MARK: i64 = 0xFF00_0000_0000_0000u64 as i64;
const EXTENDED_TYPE_MASK: i64 = 0xFFFF_FF00_0000_0000u64 as i64;
pub const TTL_MAX_MS: i64 = 0x00FF_FFFF_FFFF;

pub fn ttl_owner(ttl_ms: i64) -> i64 {
    assert!((1..=TTL_MAX_MS).contains(&ttl_ms), "a TTL the request checked");
    TTL_OWNER_MARK | ttl_ms
}

/// The TTL of a TTL node's ephemeralOwner, if it is one.
pub fn ttl_of(owner: i64) -> Option<i64> {
    (owner & EXTENDED_TYPE_MASK == TTL_OWNER_MARK).then_some(owner & TTL_MAX_MS)
}

/// Whether an ephemeralOwner value marks an ordinary ephemeral (a session), as opposed to
/// persistent (0), container or TTL.
fn is_session_owner(owner: i64) -> bool {
    owner != 0 && !is_special_owner(owner)
}

/// Who sent a write: its session and the identities its connection holds.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub session_id: i64,
    pub identities: &'a [(String, String)],
    /// Whether TTL nodes are allowed (`zookeeper.extendedTypesEnabled`).
    pub extended_types: bool,
    /// Whether quota limits are checked (`zookeeper.enforceQuota`).
    pub enforce_quota: bool,
    /// Whether the `x509` scheme is configured, so ACLs may name certificate subjects.
    pub x509_acls: bool,
}

/// Turns a write request into a transaction. A request that fails validation becomes an
/// error transaction; a multi that fails becomes a multi of error steps.
pub fn prepare(
    tree: &DataTree,
    pending: &mut PendingChanges,
    caller: Caller<'_>,
    zxid: i64,
    request: &Request,
) -> TxnOp {
    let session_id = caller.session_id;
    assert!(request.is_write());
    assert!(zxid > tree.last_zxid(), "preparing zxid {zxid:#x} at or before the applied {:#x}", tree.last_zxid());
    pending.zxid = zxid;
    match request {
        Request::Multi(ops) => prepare_multi(tree, pending, caller, ops),
        Request::CloseSession => TxnOp::CloseSession { ephemerals: close_session(tree, pending, session_id) },
        Request::Malformed { .. } => TxnOp::Single(Step::Error { code: ErrorCode::MarshallingError.code() }),
        Request::Reconfig { .. } => TxnOp::Single(Step::Error { code: ErrorCode::ReconfigDisabled.code() }),
        Request::Write(op) => TxnOp::Single(
            prepare_step(tree, pending, caller, op).unwrap_or_else(|code| Step::Error { code: code.code() }),
        ),
        _ => unreachable!("not a write: {request:?}"),
    }
}

fn prepare_step(
    tree: &DataTree,
    pending: &mut PendingChanges,
    caller: Caller<'_>,
    op: &WriteOp,
) -> Result<Step, ErrorCode> {
    match op {
        WriteOp::Create(create) => prepare_create(tree, pending, caller, create).map(Step::Create),
        WriteOp::Delete { path, version } => {
            prepare_delete(tree, pending, caller, path, *version).map(|path| Step::Delete { path })
        }
        WriteOp::SetData { path, data, version } => {
            prepare_set_data(tree, pending, caller, path, data.as_deref(), *version).map(|version| Step::SetData {
                path: path.clone(),
                data: data.clone(),
                version,
            })
        }
        WriteOp::Check { path, version } => {
            prepare_check(tree, pending, caller, path, *version).map(|()| Step::Check { path: path.clone() })
        }
        // deleteContainer is the server's own request (the reaper's, as session 0); a client
        // that sends one gets BadArguments from ZooKeeper 3.8.
        WriteOp::DeleteContainer { .. } if caller.session_id != 0 => Err(ErrorCode::BadArguments),
        WriteOp::DeleteContainer { path } => {
            prepare_delete_container(tree, pending, path).map(|path| Step::Delete { path })
        }
        WriteOp::SetAcl { path, acl, version } => prepare_set_acl(tree, pending, caller, path, acl, *version),
    }
}

/// The paths a closing session's ephemerals will have, pending creates and deletes
/// included, in the order ZooKeeper deletes them (`java_hash::closed_session_order`): the
/// order of their NodeDeleted events. The transaction carries the list, so every member
/// deletes in the same order.
fn close_session(tree: &DataTree, pending: &mut PendingChanges, session_id: i64) -> Vec<String> {
    // The applied ephemerals in the order they joined the session's set (ZooKeeper copies
    // the whole set, then drops those that pending deletes remove), then those ordered
    // since, in their order.
    let held: Vec<String> = tree.ephemerals_in_addition_order(session_id).into_iter().map(str::to_owned).collect();
    // Listed once each; a set, so a session with many ephemerals and a long queue of
    // pending changes is not compared pair by pair.
    let mut listed: std::collections::HashSet<&str> = held.iter().map(String::as_str).collect();
    let mut added: Vec<String> = Vec::new();
    for (_, path) in &pending.order {
        let owned = pending
            .records
            .get(path)
            .is_some_and(|(_, record)| record.as_ref().is_some_and(|record| record.ephemeral_owner == session_id));
        if owned && listed.insert(path) {
            added.push(path.clone());
        }
    }
    let peak = tree.ephemeral_peak(session_id);
    let mut paths = crate::java_hash::closed_session_order(held, added, peak);
    paths.retain(|path| pending.record(tree, path).is_some());
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

fn prepare_multi(tree: &DataTree, pending: &mut PendingChanges, caller: Caller<'_>, ops: &[WriteOp]) -> TxnOp {
    // A multi is all or nothing: its steps see each other's changes, and a failure rolls
    // back the changes of the steps before it.
    let saved = pending.clone();
    let mut steps = Vec::with_capacity(ops.len());
    let mut failure: Option<(usize, ErrorCode)> = None;
    for (index, op) in ops.iter().enumerate() {
        match prepare_step(tree, pending, caller, op) {
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
    let quota_exceeded = pending.take_quota_exceeded();
    *pending = saved;
    pending.quota_exceeded.extend(quota_exceeded);
    let ops = (0..ops.len())
        .map(|index| {
            let code = match index.cmp(&failed_index) {
                std::cmp::Ordering::Less => ErrorCode::Ok,
                std::cmp::Ordering::Equal => code,
                std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
            };
            Step::Error { code: code.code() }
        })
        .collect();
    TxnOp::Multi { ops }
}

/// The ACL a node gets (`PrepRequestProcessor.fixupACL`): repeated entries of the list
/// as sent are dropped first, keeping the first of each (`removeDuplicates`; entries
/// that become equal only after `auth` expands are kept); the list must be non-empty and
/// name known schemes correctly, and `auth` entries stand for every authenticated
/// (non-ip) identity of the caller, in the connection's order, which must have one.
fn fixup_acl(acl: &[Acl], caller: Caller<'_>) -> Result<Vec<Acl>, ErrorCode> {
    let identities = caller.identities;
    let mut seen: std::collections::HashSet<&Acl> = std::collections::HashSet::with_capacity(acl.len());
    let unique: Vec<&Acl> = acl.iter().filter(|entry| seen.insert(entry)).collect();
    if unique.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut fixed = Vec::with_capacity(unique.len());
    for entry in unique {
        match entry.scheme.as_str() {
            "auth" => {
                let before = fixed.len();
                let expands = |scheme: &str| !matches!(scheme, "ip" | "super" | super::acl_check::SKIP_ACL_SCHEME);
                for (scheme, id) in identities.iter().filter(|(scheme, _)| expands(scheme)) {
                    fixed.push(Acl { perms: entry.perms, scheme: scheme.clone(), id: id.clone() });
                }
                if fixed.len() == before {
                    return Err(ErrorCode::InvalidAcl);
                }
            }
            "world" if entry.id == "anyone" => fixed.push(entry.clone()),
            "digest" if entry.id.split(':').count() == 2 => fixed.push(entry.clone()),
            "ip" if super::acl_check::parse_ip_acl(&entry.id).is_some() => fixed.push(entry.clone()),
            "x509" if caller.x509_acls && is_x500_name(&entry.id) => fixed.push(entry.clone()),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(fixed)
}

/// `X509AuthenticationProvider.isValid`: whether `new X500Principal(id)` accepts it: RDNs
/// of `keyword=value` (or a dotted OID) separated by unescaped commas, semicolons or
/// plus signs; the empty name too.
fn is_x500_name(id: &str) -> bool {
    /// The keywords `X500Principal` parses (`AVAKeyword`).
    const KEYWORDS: [&str; 21] = [
        "CN",
        "C",
        "L",
        "S",
        "ST",
        "O",
        "OU",
        "T",
        "IP",
        "STREET",
        "DC",
        "DNQUALIFIER",
        "DNQ",
        "SURNAME",
        "GIVENNAME",
        "INITIALS",
        "GENERATION",
        "EMAIL",
        "EMAILADDRESS",
        "UID",
        "SERIALNUMBER",
    ];
    if id.trim().is_empty() {
        return true;
    }
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (index, character) in id.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' | ';' | '+' => {
                parts.push(&id[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&id[start..]);
    parts.iter().all(|part| {
        let Some((keyword, _)) = part.split_once('=') else { return false };
        let keyword = keyword.trim();
        let oid = keyword.strip_prefix("OID.").or_else(|| keyword.strip_prefix("oid.")).unwrap_or(keyword);
        let is_oid = oid.split('.').count() >= 2
            && oid.split('.').all(|arc| !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit()));
        is_oid || KEYWORDS.iter().any(|known| known.eq_ignore_ascii_case(keyword))
    })
}

fn prepare_create(
    tree: &DataTree,
    pending: &mut PendingChanges,
    caller: Caller<'_>,
    create: &CreateRequest,
) -> Result<CreateTxn, ErrorCode> {
    // The checks in PrepRequestProcessor.pRequest2TxnCreate's order: mode and TTL, a slash
    // and no NUL, the ACL, the parent, the permission, the sequential suffix, the full
    // path rules, existence, and the ephemeral parent.
    let mode = CreateMode::from_flags(create.flags)?;
    let is_ttl = matches!(mode, CreateMode::Ttl { .. });
    if is_ttl && !caller.extended_types {
        return Err(ErrorCode::Unimplemented);
    }
    let ttl_given = create.opcode == opcode::CREATE_TTL;
    if is_ttl != ttl_given || (is_ttl && !(1..=TTL_MAX_MS).contains(&create.ttl_ms)) {
        return Err(ErrorCode::BadArguments);
    }
    let slash = create.path.rfind('/').ok_or(ErrorCode::BadArguments)?;
    if create.path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    let acl = fixup_acl(&create.acl, caller)?;
    let parent_path = if slash == 0 { ROOT } else { &create.path[..slash] };
    let mut parent = pending.record(tree, parent_path).ok_or(ErrorCode::NoNode)?;
    check_permission(&parent, PERM_CREATE, caller)?;
    let mut path = create.path.clone();
    if mode.is_sequential() {
        // The counter is the parent's count of child creations, zero-padded to ten digits
        // (`String.format("%010d", parentCVersion)`).
        path.push_str(&format!("{:010}", parent.cversion));
    }
    validate_path(&path, false).map_err(|_| ErrorCode::BadArguments)?;
    if pending.record(tree, &path).is_some() {
        return Err(ErrorCode::NodeExists);
    }
    if is_session_owner(parent.ephemeral_owner) {
        return Err(ErrorCode::NoChildrenForEphemerals);
    }
    let data_length = create.data.as_ref().map_or(0, |data| data.len() as i64);
    check_quota(tree, pending, caller, &path, 1, data_length)?;
    let parent_cversion = parent.cversion.wrapping_add(1);
    parent.cversion = parent_cversion;
    parent.num_children += 1;
    pending.set(parent_path, Some(parent));
    let ephemeral_owner = match mode {
        CreateMode::Persistent { .. } => 0,
        CreateMode::Ephemeral { .. } => caller.session_id,
        CreateMode::Container => CONTAINER_OWNER,
        CreateMode::Ttl { .. } => ttl_owner(create.ttl_ms),
    };
    let entries = acl_entries(&acl);
    let acl: Arc<[Acl]> = Arc::from(acl);
    pending.set(
        &path,
        Some(NodeRecord { version: 0, cversion: 0, aversion: 0, num_children: 0, ephemeral_owner, acl, data_length }),
    );
    Ok(CreateTxn { path, data: create.data.clone(), acl: entries, ephemeral_owner, parent_cversion })
}

/// ZooKeeper does not run the full path check on a delete: it refuses a path with no
/// slash, a NUL or one of the system nodes, and otherwise looks the path up
/// (`PrepRequestProcessor.getParentPathAndValidate`).
fn prepare_delete(
    tree: &DataTree,
    pending: &mut PendingChanges,
    caller: Caller<'_>,
    path: &str,
    version: i32,
) -> Result<String, ErrorCode> {
    let slash = path.rfind('/').ok_or(ErrorCode::BadArguments)?;
    if path.contains('\0') || [ROOT, ZOOKEEPER, QUOTA, CONFIG].contains(&path) {
        return Err(ErrorCode::BadArguments);
    }
    let parent_path = if slash == 0 { ROOT } else { &path[..slash] };
    let mut parent = pending.record(tree, parent_path).ok_or(ErrorCode::NoNode)?;
    check_permission(&parent, PERM_DELETE, caller)?;
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

/// deleteContainer: no ACL check, an ordinary node is refused with BadVersion
/// (PrepRequestProcessor, case deleteContainer).
fn prepare_delete_container(tree: &DataTree, pending: &mut PendingChanges, path: &str) -> Result<String, ErrorCode> {
    let slash = path.rfind('/').ok_or(ErrorCode::BadArguments)?;
    if path.contains('\0') || [ROOT, ZOOKEEPER, QUOTA, CONFIG].contains(&path) {
        return Err(ErrorCode::BadArguments);
    }
    let node = pending.record(tree, path).ok_or(ErrorCode::NoNode)?;
    if node.num_children > 0 {
        return Err(ErrorCode::NotEmpty);
    }
    if !is_special_owner(node.ephemeral_owner) {
        return Err(ErrorCode::BadVersion);
    }
    let parent_path = if slash == 0 { ROOT } else { &path[..slash] };
    let mut parent = pending.record(tree, parent_path).ok_or(ErrorCode::NoNode)?;
    parent.num_children -= 1;
    pending.set(parent_path, Some(parent));
    pending.set(path, None);
    Ok(path.to_owned())
}

/// setACL: path rules, the new ACL, the node, ADMIN on it, then the ACL version
/// (PrepRequestProcessor, case setACL).
fn prepare_set_acl(
    tree: &DataTree,
    pending: &mut PendingChanges,
    caller: Caller<'_>,
    path: &str,
    acl: &[Acl],
    version: i32,
) -> Result<Step, ErrorCode> {
    validate_path(path, false).map_err(|_| ErrorCode::BadArguments)?;
    let acl = fixup_acl(acl, caller)?;
    let mut node = pending.record(tree, path).ok_or(ErrorCode::NoNode)?;
    check_permission(&node, PERM_ADMIN, caller)?;
    check_version(node.aversion, version)?;
    node.aversion = node.aversion.wrapping_add(1);
    let entries = acl_entries(&acl);
    node.acl = Arc::from(acl);
    let version = node.aversion;
    pending.set(path, Some(node));
    Ok(Step::SetAcl { path: path.to_owned(), acl: entries, version })
}

/// setData: path rules, the node, WRITE on it, the quota, then the version
/// (PrepRequestProcessor, case setData).
fn prepare_set_data(
    tree: &DataTree,
    pending: &mut PendingChanges,
    caller: Caller<'_>,
    path: &str,
    data: Option<&[u8]>,
    version: i32,
) -> Result<i32, ErrorCode> {
    validate_path(path, false).map_err(|_| ErrorCode::BadArguments)?;
    let mut node = pending.record(tree, path).ok_or(ErrorCode::NoNode)?;
    check_permission(&node, PERM_WRITE, caller)?;
    let data_length = data.map_or(0, |data| data.len() as i64);
    check_quota(tree, pending, caller, path, 0, data_length - node.data_length)?;
    check_version(node.version, version)?;
    node.data_length = data_length;
    node.version = node.version.wrapping_add(1);
    let version = node.version;
    pending.set(path, Some(node));
    Ok(version)
}

fn prepare_check(
    tree: &DataTree,
    pending: &PendingChanges,
    caller: Caller<'_>,
    path: &str,
    version: i32,
) -> Result<(), ErrorCode> {
    validate_path(path, false).map_err(|_| ErrorCode::BadArguments)?;
    let node = pending.record(tree, path).ok_or(ErrorCode::NoNode)?;
    check_permission(&node, PERM_READ, caller)?;
    check_version(node.version, version)
}

/// `ZooKeeperServer.checkQuota`: with enforcement on, the write's change to the count
/// and bytes of the quota above `path` is checked against its limits. As in ZooKeeper,
/// limits and usage are read from the applied tree (not from writes still pending), so
/// writes in flight together may pass a limit together. A limits node that does not
/// parse fails the write with MarshallingError, where ZooKeeper's parser throws.
fn check_quota(
    tree: &DataTree,
    pending: &mut PendingChanges,
    caller: Caller<'_>,
    path: &str,
    count_diff: i64,
    bytes_diff: i64,
) -> Result<(), ErrorCode> {
    if !caller.enforce_quota {
        return Ok(());
    }
    let Some(root) = tree.quota_root_of(path) else { return Ok(()) };
    // A missing limits or stats node is logged and passes in ZooKeeper.
    let Some(limits_node) = tree.node(&quota::limit_path(&root)) else { return Ok(()) };
    let limits = QuotaStats::parse(limits_node.data.as_deref()).ok_or(ErrorCode::MarshallingError)?;
    let Some(stats_node) = tree.node(&quota::stat_path(&root)) else { return Ok(()) };
    let usage = QuotaStats::parse(stats_node.data.as_deref()).ok_or(ErrorCode::MarshallingError)?;
    let exceeded = quota::check(&root, quota::top_namespace(path), &limits, &usage, count_diff, bytes_diff);
    let refused = exceeded.last().is_some_and(|last| last.hard);
    pending.quota_exceeded.extend(exceeded);
    if refused {
        return Err(ErrorCode::QuotaExceeded);
    }
    Ok(())
}

fn check_permission(node: &NodeRecord, permission: i32, caller: Caller<'_>) -> Result<(), ErrorCode> {
    if permits(&node.acl, permission, caller.identities) {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

/// -1 matches any version (`PrepRequestProcessor.checkAndIncVersion`).
fn check_version(current: i32, expected: i32) -> Result<(), ErrorCode> {
    if expected != -1 && expected != current {
        return Err(ErrorCode::BadVersion);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::request::CreateRequest;

    const CALLER: Caller<'static> =
        Caller { session_id: 5, identities: &[], extended_types: false, enforce_quota: false, x509_acls: false };

    fn create(path: &str, flags: i32) -> Request {
        Request::Write(WriteOp::Create(CreateRequest {
            opcode: opcode::CREATE,
            path: path.into(),
            data: None,
            acl: vec![Acl::open_unsafe()],
            flags,
            ttl_ms: -1,
        }))
    }

    #[test]
    fn x509_acls_name_subjects_java_would_parse_and_only_where_the_scheme_is_configured() {
        let x509 = |id: &str| Acl { perms: 31, scheme: "x509".into(), id: id.into() };
        let with_x509 = Caller { x509_acls: true, ..CALLER };
        for valid in
            ["CN=client,OU=test,O=Ringkeeper", "", "CN=a+O=b;C=US", "1.2.840.113549.1.9.1=#1603614062", "CN=a\\,b"]
        {
            assert!(fixup_acl(&[x509(valid)], with_x509).is_ok(), "{valid:?}");
        }
        for invalid in ["foo", "CN=x,FOO=y", "=x"] {
            assert_eq!(fixup_acl(&[x509(invalid)], with_x509), Err(ErrorCode::InvalidAcl), "{invalid:?}");
        }
        assert_eq!(fixup_acl(&[x509("CN=client")], CALLER), Err(ErrorCode::InvalidAcl));
    }

    fn error(op: &TxnOp) -> Option<ErrorCode> {
        match op {
            TxnOp::Single(Step::Error { code }) => Some(ErrorCode::from_code(*code)),
            _ => None,
        }
    }

    #[test]
    fn pipelined_writes_validate_against_changes_not_yet_applied() {
        // PrepRequestProcessor consults outstanding changes: a create ordered but not
        // applied makes a second create of the same path fail, and sequence numbers advance.
        let tree = DataTree::new();
        let mut pending = PendingChanges::default();
        assert!(error(&prepare(&tree, &mut pending, CALLER, 1, &create("/a", 0))).is_none());
        assert_eq!(error(&prepare(&tree, &mut pending, CALLER, 2, &create("/a", 0))), Some(ErrorCode::NodeExists));
        let TxnOp::Single(Step::Create(first)) = prepare(&tree, &mut pending, CALLER, 3, &create("/a/s-", 2)) else {
            panic!()
        };
        let TxnOp::Single(Step::Create(second)) = prepare(&tree, &mut pending, CALLER, 4, &create("/a/s-", 2)) else {
            panic!()
        };
        assert_eq!(first.path, "/a/s-0000000000");
        assert_eq!(second.path, "/a/s-0000000001");
        let delete = Request::Write(WriteOp::Delete { path: "/a".into(), version: -1 });
        assert_eq!(error(&prepare(&tree, &mut pending, CALLER, 5, &delete)), Some(ErrorCode::NotEmpty));
        pending.applied_through(4);
        assert!(pending.is_empty());
    }

    #[test]
    fn errors_come_in_zookeepers_order() {
        let tree = DataTree::new();
        let mut pending = PendingChanges::default();
        assert_eq!(error(&prepare(&tree, &mut pending, CALLER, 1, &create("a", 0))), Some(ErrorCode::BadArguments));
        assert_eq!(error(&prepare(&tree, &mut pending, CALLER, 2, &create("/x/y", 0))), Some(ErrorCode::NoNode));
        assert!(error(&prepare(&tree, &mut pending, CALLER, 3, &create("/e", 1))).is_none());
        assert_eq!(
            error(&prepare(&tree, &mut pending, CALLER, 4, &create("/e/c", 0))),
            Some(ErrorCode::NoChildrenForEphemerals)
        );
        let set = Request::Write(WriteOp::SetData { path: "/e".into(), data: None, version: 3 });
        assert_eq!(error(&prepare(&tree, &mut pending, CALLER, 5, &set)), Some(ErrorCode::BadVersion));
        let set_config = Request::Write(WriteOp::SetData { path: "/zookeeper/config".into(), data: None, version: -1 });
        assert_eq!(error(&prepare(&tree, &mut pending, CALLER, 6, &set_config)), Some(ErrorCode::NoAuth));
        let delete_system = Request::Write(WriteOp::Delete { path: "/zookeeper".into(), version: -1 });
        assert_eq!(error(&prepare(&tree, &mut pending, CALLER, 7, &delete_system)), Some(ErrorCode::BadArguments));
    }

    #[test]
    fn a_failed_multi_reports_ok_before_and_runtime_inconsistency_after_and_rolls_back() {
        let tree = DataTree::new();
        let mut pending = PendingChanges::default();
        let multi = Request::Multi(vec![
            WriteOp::Create(CreateRequest {
                opcode: opcode::CREATE,
                path: "/m".into(),
                data: None,
                acl: vec![Acl::open_unsafe()],
                flags: 0,
                ttl_ms: -1,
            }),
            WriteOp::Check { path: "/nope".into(), version: -1 },
            WriteOp::Delete { path: "/m".into(), version: -1 },
        ]);
        let TxnOp::Multi { ops } = prepare(&tree, &mut pending, CALLER, 1, &multi) else { panic!() };
        let codes: Vec<i32> = ops
            .iter()
            .map(|op| match op {
                Step::Error { code } => *code,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(codes, vec![0, ErrorCode::NoNode.code(), ErrorCode::RuntimeInconsistency.code()]);
        assert!(error(&prepare(&tree, &mut pending, CALLER, 2, &create("/m", 0))).is_none());
    }

    #[test]
    fn closing_a_session_lists_its_ephemerals_including_pending_ones() {
        let tree = DataTree::new();
        let mut pending = PendingChanges::default();
        prepare(&tree, &mut pending, CALLER, 1, &create("/b", 1));
        prepare(&tree, &mut pending, CALLER, 2, &create("/a", 1));
        let TxnOp::CloseSession { ephemerals } = prepare(&tree, &mut pending, CALLER, 3, &Request::CloseSession) else {
            panic!()
        };
        assert_eq!(ephemerals, vec!["/a".to_owned(), "/b".to_owned()]);
    }
}
