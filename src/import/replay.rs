//! Replays a ZooKeeper log onto a tree with ZooKeeper's replay rules
//! (`FileTxnSnapLog.processTransaction`, `DataTree.processTxn`): a snapshot is fuzzy
//! (taken while transactions were applied), so a logged change may find itself already
//! done. Such a change fails as it would in ZooKeeper (NodeExists, NoNode), with the
//! same fix-ups of the parent's cversion and pzxid, and is kept in the tree's order as a
//! failed step; every other change becomes Ringkeeper's transaction and is applied as
//! the server applies it.

use std::collections::HashMap;

use super::java::session_password;
use super::zookeeper_log::{ZookeeperOp, ZookeeperTxn};
use crate::proto::ErrorCode;
use crate::tree::path::parent_and_name;
use crate::tree::DataTree;
use crate::txn::{acl_entries, CreateTxn, Step, Txn, TxnOp};

/// A parent fix-up to make after a transaction (`DataTree.setCversionPzxid` after a
/// create that found its node; a raised pzxid after a delete that found none).
struct Fixup {
    parent: String,
    child_version: Option<i32>,
}

/// What the steps before this one in the same transaction did: path -> number of
/// children (None: deleted), over the tree.
#[derive(Default)]
struct Overlay {
    children: HashMap<String, Option<usize>>,
}

impl Overlay {
    fn children_of(&self, tree: &DataTree, path: &str) -> Option<usize> {
        match self.children.get(path) {
            Some(children) => *children,
            None => tree.node(path).map(|node| node.children.len()),
        }
    }

    fn exists(&self, tree: &DataTree, path: &str) -> bool {
        self.children_of(tree, path).is_some()
    }

    fn created(&mut self, tree: &DataTree, path: &str, parent: &str) {
        let siblings = self.children_of(tree, parent).expect("the parent exists");
        self.children.insert(parent.to_owned(), Some(siblings + 1));
        self.children.insert(path.to_owned(), Some(0));
    }

    fn deleted(&mut self, tree: &DataTree, path: &str, parent: &str) {
        let siblings = self.children_of(tree, parent).expect("the parent exists");
        self.children.insert(parent.to_owned(), Some(siblings - 1));
        self.children.insert(path.to_owned(), None);
    }
}

/// The tree as the log replays, and how its digests compared with ZooKeeper's.
pub struct Replay {
    pub tree: DataTree,
    pub applied: u64,
    /// Logged changes that found their work done (a fuzzy snapshot) and failed, as in
    /// ZooKeeper's own replay.
    pub failed: u64,
    pub digests_checked: u64,
    /// zxids after which the tree's digest differed from the one ZooKeeper logged. While
    /// the replay is inside the snapshot's fuzzy region the tree holds later changes
    /// too, so those differ; after it, none may.
    pub digest_mismatches: Vec<i64>,
    /// Whether the last digest ZooKeeper logged equals the tree's at that point.
    pub last_digest_equal: Option<bool>,
}

impl Replay {
    pub fn new(tree: DataTree) -> Replay {
        Replay {
            tree,
            applied: 0,
            failed: 0,
            digests_checked: 0,
            digest_mismatches: Vec::new(),
            last_digest_equal: None,
        }
    }

    /// Applies one logged transaction (ones the tree already holds are skipped).
    pub fn apply(&mut self, logged: &ZookeeperTxn) {
        if logged.zxid <= self.tree.last_zxid() {
            return;
        }
        let mut fixups = Vec::new();
        let op = self.op(logged, &mut fixups);
        let txn =
            Txn { session_id: logged.session_id, cxid: logged.cxid, zxid: logged.zxid, time_ms: logged.time_ms, op };
        let bytes = txn.to_bytes();
        self.tree.apply(crate::txn::access_written(&bytes), &mut Vec::new());
        for fixup in fixups {
            self.tree.raise_parent(&fixup.parent, fixup.child_version, logged.zxid);
        }
        self.applied += 1;
        if let Some(digest) = logged.digest {
            self.digests_checked += 1;
            let equal = self.tree.digest() == digest;
            if !equal {
                self.digest_mismatches.push(logged.zxid);
            }
            self.last_digest_equal = Some(equal);
        }
    }

    fn op(&mut self, logged: &ZookeeperTxn, fixups: &mut Vec<Fixup>) -> TxnOp {
        let mut overlay = Overlay::default();
        match &logged.op {
            ZookeeperOp::CreateSession { timeout_ms } => {
                TxnOp::CreateSession { timeout_ms: *timeout_ms, password: session_password(logged.session_id) }
            }
            ZookeeperOp::CloseSession { paths } => self.close(logged.session_id, paths.as_deref(), fixups),
            ZookeeperOp::Multi(ops) => {
                // A logged multi with a failed op changed nothing: ZooKeeper answers OK
                // for the ops before the failure and RuntimeInconsistency after it.
                let failed = ops.iter().position(|op| matches!(op, ZookeeperOp::Error { .. }));
                let ops = match failed {
                    Some(failed) => ops
                        .iter()
                        .enumerate()
                        .map(|(index, op)| match (index.cmp(&failed), op) {
                            (std::cmp::Ordering::Less, _) => Step::Error { code: ErrorCode::Ok.code() },
                            (std::cmp::Ordering::Equal, ZookeeperOp::Error { code }) => Step::Error { code: *code },
                            _ => Step::Error { code: ErrorCode::RuntimeInconsistency.code() },
                        })
                        .collect(),
                    None => ops.iter().map(|op| step(&self.tree, op, &mut overlay, fixups, &mut self.failed)).collect(),
                };
                TxnOp::Multi { ops }
            }
            op => TxnOp::Single(step(&self.tree, op, &mut overlay, fixups, &mut self.failed)),
        }
    }

    /// `DataTree.killSession`: the listed paths are deleted in order (one already gone
    /// still raises its parent's pzxid), then whatever else the session owned.
    fn close(&self, session_id: i64, listed: Option<&[String]>, fixups: &mut Vec<Fixup>) -> TxnOp {
        let tree = &self.tree;
        let mut ephemerals = Vec::new();
        for path in listed.unwrap_or_default() {
            match tree.node(path) {
                Some(node) if node.ephemeral_owner == session_id && node.children.is_empty() => {
                    ephemerals.push(path.clone())
                }
                Some(_) => {}
                None => {
                    if let Some((parent, _)) = parent_and_name(path).filter(|(parent, _)| tree.node(parent).is_some()) {
                        fixups.push(Fixup { parent: parent.to_owned(), child_version: None });
                    }
                }
            }
        }
        let mut unlisted: Vec<String> = tree
            .ephemerals_of(session_id)
            .filter(|path| !ephemerals.iter().any(|listed| listed == path))
            .map(str::to_owned)
            .collect();
        unlisted.sort_unstable();
        ephemerals.extend(unlisted);
        TxnOp::CloseSession { ephemerals }
    }
}

/// One change, or the error it meets on this tree.
fn step(tree: &DataTree, op: &ZookeeperOp, overlay: &mut Overlay, fixups: &mut Vec<Fixup>, failures: &mut u64) -> Step {
    let mut failed = |code: ErrorCode| {
        *failures += 1;
        Step::Error { code: code.code() }
    };
    match op {
        ZookeeperOp::Create { path, data, acl, ephemeral_owner, parent_cversion, fixes_parent } => {
            let Some((parent, _)) = parent_and_name(path) else { return failed(ErrorCode::BadArguments) };
            if overlay.exists(tree, path) {
                if *fixes_parent {
                    fixups.push(Fixup { parent: parent.to_owned(), child_version: Some(*parent_cversion) });
                }
                return failed(ErrorCode::NodeExists);
            }
            if !overlay.exists(tree, parent) {
                return failed(ErrorCode::NoNode);
            }
            // -1 (a log from before 3.3, which had no multi): one more than the parent's.
            let parent_cversion = match *parent_cversion {
                -1 => tree.node(parent).map_or(0, |node| node.cversion) + 1,
                logged => logged,
            };
            overlay.created(tree, path, parent);
            Step::Create(CreateTxn {
                path: path.clone(),
                data: data.clone(),
                acl: acl_entries(acl),
                ephemeral_owner: *ephemeral_owner,
                parent_cversion,
            })
        }
        ZookeeperOp::Delete { path } => {
            let Some((parent, _)) = parent_and_name(path) else { return failed(ErrorCode::BadArguments) };
            match overlay.children_of(tree, path) {
                None => {
                    if overlay.exists(tree, parent) {
                        fixups.push(Fixup { parent: parent.to_owned(), child_version: None });
                    }
                    failed(ErrorCode::NoNode)
                }
                // ZooKeeper's replay would remove a node with children and orphan
                // them; a tree cannot hold that, so the delete fails instead.
                Some(children) if children > 0 => {
                    tracing::warn!(path, "a logged delete of a node that has children in the replayed tree; kept");
                    failed(ErrorCode::NotEmpty)
                }
                Some(_) => {
                    overlay.deleted(tree, path, parent);
                    Step::Delete { path: path.clone() }
                }
            }
        }
        ZookeeperOp::SetData { path, data, version } if overlay.exists(tree, path) => {
            Step::SetData { path: path.clone(), data: data.clone(), version: *version }
        }
        ZookeeperOp::SetAcl { path, acl, version } if overlay.exists(tree, path) => {
            Step::SetAcl { path: path.clone(), acl: acl_entries(acl), version: *version }
        }
        ZookeeperOp::SetData { .. } | ZookeeperOp::SetAcl { .. } => failed(ErrorCode::NoNode),
        ZookeeperOp::Check { path } => Step::Check { path: path.clone() },
        ZookeeperOp::Error { code } => Step::Error { code: *code },
        ZookeeperOp::CreateSession { .. } | ZookeeperOp::CloseSession { .. } | ZookeeperOp::Multi(_) => {
            unreachable!("parsed only at the top level")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::acl::Acl;

    fn logged(zxid: i64, op: ZookeeperOp) -> ZookeeperTxn {
        ZookeeperTxn { session_id: 0x5, cxid: 1, zxid, time_ms: 1000 + zxid, op, digest: None }
    }

    fn create(path: &str, parent_cversion: i32) -> ZookeeperOp {
        ZookeeperOp::Create {
            path: path.into(),
            data: Some(b"v".to_vec()),
            acl: vec![Acl::open_unsafe()],
            ephemeral_owner: 0,
            parent_cversion,
            fixes_parent: true,
        }
    }

    #[test]
    fn a_change_a_fuzzy_snapshot_already_holds_fails_with_zookeepers_parent_fixups() {
        // The snapshot ends at zxid 1 but already holds /a, created at 2, while the
        // parent's cversion in it is still the old one (a fuzzy snapshot).
        let mut replay = Replay::new(DataTree::new());
        replay.apply(&logged(1, create("/p", 1)));
        replay.apply(&logged(2, create("/p/a", 1)));
        let mut tree = replay.tree.clone();
        tree.raise_parent("/p", Some(0), 2);
        let mut replay = Replay::new(replay.tree);
        // Replaying the create again: NodeExists, and the parent's cversion and pzxid
        // rise to the logged ones (ZooKeeper's setCversionPzxid).
        replay.apply(&logged(3, create("/p/a", 2)));
        assert_eq!(replay.failed, 1);
        let parent = replay.tree.node("/p").unwrap();
        assert_eq!((parent.cversion, parent.pzxid), (2, 3));
        // A delete of a node already gone raises its parent's pzxid only.
        replay.apply(&logged(4, ZookeeperOp::Delete { path: "/p/gone".into() }));
        assert_eq!((replay.failed, replay.tree.node("/p").unwrap().pzxid), (2, 4));
        replay.tree.check_invariants();
    }

    #[test]
    fn a_logged_multi_with_a_failed_op_changes_nothing_and_others_apply_in_order() {
        let mut replay = Replay::new(DataTree::new());
        let failed = ZookeeperOp::Multi(vec![create("/x", 1), ZookeeperOp::Error { code: -101 }, create("/y", 2)]);
        replay.apply(&logged(1, failed));
        assert!(replay.tree.node("/x").is_none() && replay.tree.node("/y").is_none());
        let applied = ZookeeperOp::Multi(vec![
            create("/x", 1),
            create("/x/child", 1),
            ZookeeperOp::SetData { path: "/x".into(), data: None, version: 1 },
            ZookeeperOp::Delete { path: "/x/child".into() },
        ]);
        replay.apply(&logged(2, applied));
        let node = replay.tree.node("/x").unwrap();
        assert_eq!((node.version, node.data.is_none(), node.children.len()), (1, true, 0));
        assert_eq!(replay.failed, 0);
        replay.tree.check_invariants();
    }

    #[test]
    fn a_session_keeps_zookeepers_password_and_its_close_deletes_what_it_owned() {
        let mut replay = Replay::new(DataTree::new());
        replay.apply(&logged(1, ZookeeperOp::CreateSession { timeout_ms: 30_000 }));
        let ephemeral = ZookeeperOp::Create {
            path: "/e".into(),
            data: None,
            acl: vec![Acl::open_unsafe()],
            ephemeral_owner: 0x5,
            parent_cversion: 1,
            fixes_parent: false,
        };
        replay.apply(&logged(2, ephemeral));
        let sessions: Vec<_> = replay.tree.sessions().collect();
        assert_eq!(sessions, vec![(0x5, 30_000, session_password(0x5))]);
        // A close logged without its list of paths (closeSessionTxn off) still deletes
        // the session's ephemerals.
        replay.apply(&logged(3, ZookeeperOp::CloseSession { paths: None }));
        assert!(replay.tree.node("/e").is_none());
        assert_eq!(replay.tree.sessions().count(), 0);
    }
}
