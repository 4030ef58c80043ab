//! Reads, served on the session's own core from the version of the tree it holds
//! (ZooKeeper's FinalRequestProcessor). A watch is registered in the same step as the
//! read, so no change can slip between the two.

use super::watches::{ConnectionId, WatchRegistry, WatcherType};
use crate::proto::acl::{PERM_ADMIN, PERM_READ};
use crate::proto::request::{ReadOp, Request, SetWatches};
use crate::proto::response::{OpResult, ReplyBody};
use crate::proto::watch_event::EventType;
use crate::proto::ErrorCode;
use crate::tree::acl_check::permits;
use crate::tree::{DataTree, Znode};

/// Who is reading: the session and its connection on this core.
#[derive(Clone)]
pub struct Reader<'a> {
    pub session_id: i64,
    pub connection: ConnectionId,
    /// (scheme, id) pairs the connection is authenticated as, for whoAmI.
    pub identities: &'a [(String, String)],
    /// checkWatches: whether a connection of the whole server (any core) watches a path
    /// in the tables a type names.
    /// Err when ZooKeeper fails to answer for the path.
    pub watched_on_server: &'a dyn Fn(&str, WatcherType) -> Result<bool, ErrorCode>,
}

/// Serves a read and returns the reply's error code and body. Events that setWatches
/// fires at once are passed to `fire`.
pub fn execute_read(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    reader: &Reader<'_>,
    request: &Request,
    fire: &mut dyn FnMut(EventType, &str),
) -> (ErrorCode, ReplyBody) {
    let result = match request {
        Request::Ping => Ok(ReplyBody::Empty),
        Request::Exists { path, watch } => exists(tree, watches, reader, path, *watch),
        Request::GetData { path, watch } => get_data(tree, watches, reader, path, *watch),
        Request::GetChildren { path, watch, with_stat } => {
            get_children(tree, watches, reader, path, *watch, *with_stat)
        }
        Request::MultiRead(ops) => Ok(ReplyBody::Multi(ops.iter().map(|op| multi_read_op(tree, reader, op)).collect())),
        Request::SetWatches(set) => {
            set_watches(tree, watches, reader.connection, set, fire);
            Ok(ReplyBody::Empty)
        }
        Request::GetEphemerals { prefix } => Ok(ReplyBody::Strings(ephemerals(tree, reader.session_id, prefix))),
        Request::GetAllChildrenNumber { path } => all_children_number(tree, reader, path),
        Request::WhoAmI => Ok(ReplyBody::ClientInfo(
            reader
                .identities
                .iter()
                .filter(|(scheme, _)| scheme != crate::tree::acl_check::SKIP_ACL_SCHEME)
                .map(|identity| (identity.0.clone(), super::auth::user_of(identity)))
                .collect(),
        )),
        Request::GetAcl { path } => get_acl(tree, reader, path),
        // addWatch answers with an ErrorResponse body of 0 (FinalRequestProcessor).
        Request::AddWatch { path, mode } => match mode {
            0 | 1 => {
                watches.add_persistent_watch(path, reader.connection, *mode == 1);
                Ok(ReplyBody::Number(0))
            }
            // AddWatchMode.fromZooDef throws for another mode, and FinalRequestProcessor
            // answers what it does not expect with MarshallingError.
            _ => Err(ErrorCode::MarshallingError),
        },
        // checkWatches answers OK when the named table holds the path for any connection,
        // not only the caller (ZooKeeper 3.8's WatchManager.containsWatcher).
        Request::CheckWatches { path, watcher_type } => match WatcherType::from_code(*watcher_type) {
            Some(watcher_type) => match (reader.watched_on_server)(path, watcher_type) {
                Ok(true) => Ok(ReplyBody::Empty),
                Ok(false) => Err(ErrorCode::NoWatcher),
                Err(code) => Err(code),
            },
            None => Err(ErrorCode::MarshallingError),
        },
        Request::RemoveWatches { path, watcher_type } => match WatcherType::from_code(*watcher_type) {
            Some(watcher_type) if watches.remove_watches(path, reader.connection, watcher_type) => Ok(ReplyBody::Empty),
            Some(_) => Err(ErrorCode::NoWatcher),
            None => Err(ErrorCode::MarshallingError),
        },
        // ZooKeeper sends a malformed multiRead's error with an empty result list after it.
        Request::Malformed { opcode: crate::proto::opcode::MULTI_READ } => {
            return (ErrorCode::MarshallingError, ReplyBody::EmptyMultiAfterError)
        }
        Request::Malformed { .. } => Err(ErrorCode::MarshallingError),
        other => unreachable!("not a read: {other:?}"),
    };
    match result {
        Ok(body) => (ErrorCode::Ok, body),
        Err(code) => (code, ReplyBody::Empty),
    }
}

/// Reads do not check path syntax; ZooKeeper's tree also holds the root under the empty
/// path, so "" reads as "/".
fn lookup<'t>(tree: &'t DataTree, path: &str) -> Option<&'t Znode> {
    tree.node(if path.is_empty() { "/" } else { path })
}

/// The node at `path` if the reader may read it (world and ip ACLs; authenticated
/// schemes arrive with the auth packet): NoNode, then NoAuth, as ZooKeeper checks.
fn readable_node<'t>(tree: &'t DataTree, reader: &Reader<'_>, path: &str) -> Result<&'t Znode, ErrorCode> {
    let node = lookup(tree, path).ok_or(ErrorCode::NoNode)?;
    if !permits(tree.acl(node), PERM_READ, reader.identities) {
        return Err(ErrorCode::NoAuth);
    }
    Ok(node)
}

/// exists registers a data watch even when the node is missing, so the client hears of
/// its creation (`DataTree.statNode`). A NUL in the path is BadArguments.
fn exists(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    reader: &Reader<'_>,
    path: &str,
    watch: bool,
) -> Result<ReplyBody, ErrorCode> {
    if path.contains('\0') {
        return Err(ErrorCode::BadArguments);
    }
    if watch {
        watches.add_data_watch(path, reader.connection);
    }
    lookup(tree, path).map(|node| ReplyBody::Stat(node.stat())).ok_or(ErrorCode::NoNode)
}

fn get_data(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    reader: &Reader<'_>,
    path: &str,
    watch: bool,
) -> Result<ReplyBody, ErrorCode> {
    let node = readable_node(tree, reader, path)?;
    if watch {
        watches.add_data_watch(path, reader.connection);
    }
    Ok(ReplyBody::DataStat(node.data.as_deref().map(<[u8]>::to_vec), node.stat()))
}

fn get_children(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    reader: &Reader<'_>,
    path: &str,
    watch: bool,
    with_stat: bool,
) -> Result<ReplyBody, ErrorCode> {
    let node = readable_node(tree, reader, path)?;
    if watch {
        watches.add_child_watch(path, reader.connection);
    }
    // ZooKeeper documents the order of children as unspecified.
    let children: Vec<String> = node.children.iter().map(|name| name.to_string()).collect();
    Ok(if with_stat { ReplyBody::ChildrenStat(children, node.stat()) } else { ReplyBody::Children(children) })
}

/// getACL needs READ or ADMIN. Without ADMIN, digest ids are masked to `user:x`
/// (FinalRequestProcessor, case getACL).
fn get_acl(tree: &DataTree, reader: &Reader<'_>, path: &str) -> Result<ReplyBody, ErrorCode> {
    let node = lookup(tree, path).ok_or(ErrorCode::NoNode)?;
    let acl = tree.acl(node);
    if !permits(acl, PERM_READ | PERM_ADMIN, reader.identities) {
        return Err(ErrorCode::NoAuth);
    }
    let mut acl = acl.to_vec();
    if !permits(&acl, PERM_ADMIN, reader.identities) {
        for entry in acl.iter_mut().filter(|entry| entry.scheme == "digest") {
            if let Some((user, _)) = entry.id.split_once(':') {
                entry.id = format!("{user}:x");
            }
        }
    }
    Ok(ReplyBody::AclStat(acl, node.stat()))
}

fn all_children_number(tree: &DataTree, reader: &Reader<'_>, path: &str) -> Result<ReplyBody, ErrorCode> {
    readable_node(tree, reader, path)?;
    // ZooKeeper counts the keys that start with `path + "/"`; for "" that is every node,
    // the root included.
    let count = if path.is_empty() { tree.node_count() } else { tree.descendant_count(path).expect("the node exists") };
    Ok(ReplyBody::Number(count as i32))
}

fn multi_read_op(tree: &DataTree, reader: &Reader<'_>, op: &ReadOp) -> OpResult {
    let path = match op {
        ReadOp::GetChildren { path } | ReadOp::GetData { path } => path,
    };
    let node = match readable_node(tree, reader, path) {
        Ok(node) => node,
        Err(code) => return OpResult::Error { code },
    };
    match op {
        ReadOp::GetChildren { .. } => {
            OpResult::GetChildren { children: node.children.iter().map(|name| name.to_string()).collect() }
        }
        ReadOp::GetData { .. } => {
            OpResult::GetData { data: node.data.as_deref().map(<[u8]>::to_vec), stat: node.stat() }
        }
    }
}

/// getEphemerals: the session's ephemerals whose path starts with the prefix; an empty
/// prefix or `/` means all (`FinalRequestProcessor`, case getEphemerals).
fn ephemerals(tree: &DataTree, session_id: i64, prefix: &str) -> Vec<String> {
    // Java's String.trim drops every character up to U+0020, not only whitespace.
    let trimmed = prefix.trim_matches(|c: char| c <= ' ');
    let all = trimmed.is_empty() || trimmed == "/";
    tree.ephemerals_of(session_id).filter(|path| all || path.starts_with(prefix)).map(str::to_owned).collect()
}

/// Re-registers watches after a reconnect, firing at once those whose condition changed
/// after `relative_zxid`, the last zxid the client saw (`DataTree.setWatches`).
fn set_watches(
    tree: &DataTree,
    watches: &mut WatchRegistry,
    connection: ConnectionId,
    set: &SetWatches,
    fire: &mut dyn FnMut(EventType, &str),
) {
    let relative_zxid = set.relative_zxid;
    for path in &set.data {
        match lookup(tree, path) {
            None => fire(EventType::NodeDeleted, path),
            Some(node) if node.mzxid > relative_zxid => fire(EventType::NodeDataChanged, path),
            Some(_) => watches.add_data_watch(path, connection),
        }
    }
    for path in &set.exist {
        match lookup(tree, path) {
            Some(_) => fire(EventType::NodeCreated, path),
            None => watches.add_data_watch(path, connection),
        }
    }
    for path in &set.child {
        match lookup(tree, path) {
            None => fire(EventType::NodeDeleted, path),
            Some(node) if node.pzxid > relative_zxid => fire(EventType::NodeChildrenChanged, path),
            Some(_) => watches.add_child_watch(path, connection),
        }
    }
    // Persistent watches come back as they were, after the standard ones (a path in both
    // lists ends up persistent, as in DataTree.setWatches); changes missed meanwhile do
    // not fire.
    for path in &set.persistent {
        watches.add_persistent_watch(path, connection, false);
    }
    for path in &set.persistent_recursive {
        watches.add_persistent_watch(path, connection, true);
    }
}
