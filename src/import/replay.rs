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
use crate::tree::data_tree::is_special_owner;
use crate::tree::path::{parent_and_name, validate_path};
use crate::tree::DataTree;
use crate::txn::{acl_entries, CreateTxn, Step, Txn, TxnOp};

/// A parent fix-up to make after a transaction (`DataTree.setCversionPzxid` after a
/// create that found its node; a raised pzxid after a delete that found none).
struct Fixup {
    parent: String,
    child_version: Option<i32>,
}

/// A node as the steps so far see it.
#[derive(Clone, Copy)]
struct NodeView {
    children: usize,
    /// An ephemeral node (a session's), which can have no children.
    ephemeral: bool,
}

/// What the steps before this one in the same transaction did: path -> the node (None:
/// deleted), over the tree.
#[derive(Default)]
struct Overlay {
    nodes: HashMap<String, Option<NodeView>>,
}

impl Overlay {
    fn node(&self, tree: &DataTree, path: &str) -> Option<NodeView> {
        match self.nodes.get(path) {
            Some(node) => *node,
            None => tree.node(path).map(|node| NodeView {
                children: node.children.len(),
                ephemeral: node.ephemeral_owner != 0 && !is_special_owner(node.ephemeral_owner),
            }),
        }
    }

    fn exists(&self, tree: &DataTree, path: &str) -> bool {
        self.node(tree, path).is_some()
    }

    fn created(&mut self, tree: &DataTree, path: &str, parent: &str, ephemeral: bool) {
        let mut parent_node = self.node(tree, parent).expect("the parent exists");
        parent_node.children += 1;
        self.nodes.insert(parent.to_owned(), Some(parent_node));
        self.nodes.insert(path.to_owned(), Some(NodeView { children: 0, ephemeral }));
    }

    fn deleted(&mut self, tree: &DataTree, path: &str, parent: &str) {
        let mut parent_node = self.node(tree, parent).expect("the parent exists");
        parent_node.children -= 1;
        self.nodes.insert(parent.to_owned(), Some(parent_node));
        self.nodes.insert(path.to_owned(), None);
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
    /// The snapshot's own digest and its zxid, until the replay reaches it.
    snapshot_digest: Option<(i64, u64)>,
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
            snapshot_digest: None,
        }
    }

    /// The digest a ZooKeeper snapshot recorded for its tree at `zxid`: compared when the
    /// replay reaches that zxid (at once if the tree is there already).
    pub fn expect_digest(&mut self, digest: Option<(i64, u64)>) {
        self.snapshot_digest = digest.filter(|&(zxid, _)| zxid > 0 && zxid >= self.tree.last_zxid());
        self.check_snapshot_digest();
    }

    fn check_snapshot_digest(&mut self) {
        if let Some((zxid, digest)) = self.snapshot_digest.filter(|&(zxid, _)| zxid == self.tree.last_zxid()) {
            self.snapshot_digest = None;
            self.check_digest(zxid, digest);
        }
    }

    fn check_digest(&mut self, zxid: i64, digest: u64) {
        self.digests_checked += 1;
        let equal = self.tree.digest() == digest;
        if !equal {
            self.digest_mismatches.push(zxid);
        }
        self.last_digest_equal = Some(equal);
    }

    /// Applies one logged transaction (ones the tree already holds are skipped). Err for
    /// a change no ZooKeeper could have logged (a damaged or crafted log that still
    /// matches its checksums), and why.
    pub fn apply(&mut self, logged: &ZookeeperTxn) -> Result<(), String> {
        if logged.zxid <= self.tree.last_zxid() {
            return Ok(());
        }
        let mut fixups = Vec::new();
        let op = self.op(logged, &mut fixups).map_err(|reason| format!("zxid {:#x}: {reason}", logged.zxid))?;
        let txn =
            Txn { session_id: logged.session_id, cxid: logged.cxid, zxid: logged.zxid, time_ms: logged.time_ms, op };
        let bytes = txn.to_bytes();
        self.tree.apply(crate::txn::access_written(&bytes), &mut Vec::new());
        for fixup in fixups {
            self.tree.raise_parent(&fixup.parent, fixup.child_version, logged.zxid);
        }
        self.applied += 1;
        if let Some(digest) = logged.digest {
            self.check_digest(logged.zxid, digest);
        }
        self.check_snapshot_digest();
        Ok(())
    }

    fn op(&mut self, logged: &ZookeeperTxn, fixups: &mut Vec<Fixup>) -> Result<TxnOp, String> {
        let mut overlay = Overlay::default();
        Ok(match &logged.op {
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
                    None => ops
                        .iter()
                        .map(|op| step(&self.tree, op, &mut overlay, fixups, &mut self.failed))
                        .collect::<Result<_, _>>()?,
                };
                TxnOp::Multi { ops }
            }
            op => TxnOp::Single(step(&self.tree, op, &mut overlay, fixups, &mut self.failed)?),
        })
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
fn step(
    tree: &DataTree,
    op: &ZookeeperOp,
    overlay: &mut Overlay,
    fixups: &mut Vec<Fixup>,
    failures: &mut u64,
) -> Result<Step, String> {
    let mut failed = |code: ErrorCode| {
        *failures += 1;
        Ok(Step::Error { code: code.code() })
    };
    match op {
        ZookeeperOp::Create { path, data, acl, ephemeral_owner, parent_cversion, fixes_parent } => {
            // ZooKeeper checks these before it logs a create: a log that breaks them is
            // damaged (or crafted), and a tree holding it could not be served.
            validate_path(path, false).map_err(|_| format!("a create of {path:?}, which is not a valid path"))?;
            let (parent, _) = parent_and_name(path).ok_or_else(|| format!("a create of {path:?}"))?;
            if overlay.exists(tree, path) {
                if *fixes_parent {
                    fixups.push(Fixup { parent: parent.to_owned(), child_version: Some(*parent_cversion) });
                }
                return failed(ErrorCode::NodeExists);
            }
            let Some(parent_node) = overlay.node(tree, parent) else { return failed(ErrorCode::NoNode) };
            if parent_node.ephemeral {
                return Err(format!("a create of {path} under the ephemeral node {parent}"));
            }
            // -1 (a log from before 3.3, which had no multi): one more than the parent's.
            let parent_cversion = match *parent_cversion {
                -1 => tree.node(parent).map_or(0, |node| node.cversion).wrapping_add(1),
                logged => logged,
            };
            let ephemeral = *ephemeral_owner != 0 && !is_special_owner(*ephemeral_owner);
            overlay.created(tree, path, parent, ephemeral);
            Ok(Step::Create(CreateTxn {
                path: path.clone(),
                data: data.clone(),
                acl: acl_entries(acl),
                ephemeral_owner: *ephemeral_owner,
                parent_cversion,
            }))
        }
        ZookeeperOp::Delete { path } => {
            let Some((parent, _)) = parent_and_name(path) else { return failed(ErrorCode::BadArguments) };
            match overlay.node(tree, path) {
                None => {
                    if overlay.exists(tree, parent) {
                        fixups.push(Fixup { parent: parent.to_owned(), child_version: None });
                    }
                    failed(ErrorCode::NoNode)
                }
                // ZooKeeper's replay would remove a node with children and orphan
                // them; a tree cannot hold that, so the delete fails instead.
                Some(node) if node.children > 0 => {
                    tracing::warn!(path, "a logged delete of a node that has children in the replayed tree; kept");
                    failed(ErrorCode::NotEmpty)
                }
                Some(_) => {
                    overlay.deleted(tree, path, parent);
                    Ok(Step::Delete { path: path.clone() })
                }
            }
        }
        ZookeeperOp::SetData { path, data, version } if overlay.exists(tree, path) => {
            Ok(Step::SetData { path: path.clone(), data: data.clone(), version: *version })
        }
        ZookeeperOp::SetAcl { path, acl, version } if overlay.exists(tree, path) => {
            Ok(Step::SetAcl { path: path.clone(), acl: acl_entries(acl), version: *version })
        }
        ZookeeperOp::SetData { .. } | ZookeeperOp::SetAcl { .. } => failed(ErrorCode::NoNode),
        ZookeeperOp::Check { path } => Ok(Step::Check { path: path.clone() }),
        ZookeeperOp::Error { code } => Ok(Step::Error { code: *code }),
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
        ZookeeperTxn { offset: 16, session_id: 0x5, cxid: 1, zxid, time_ms: 1000 + zxid, op, digest: None }
    }

    /// An ephemeral create of `owner`'s, as the first child of `/`.
    fn ephemeral(path: &str, owner: i64) -> ZookeeperOp {
        ZookeeperOp::Create {
            path: path.into(),
            data: None,
            acl: vec![Acl::open_unsafe()],
            ephemeral_owner: owner,
            parent_cversion: 1,
            fixes_parent: false,
        }
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
        // A fuzzy snapshot: it ends at zxid 2 by its name, but it already holds /p/a from
        // zxid 3 while /p's cversion is still the one before (ZooKeeper wrote /p first).
        let mut replay = Replay::new(DataTree::new());
        replay.apply(&logged(1, create("/p", 1))).unwrap();
        replay.apply(&logged(2, create("/p/a", 1))).unwrap();
        // Replaying zxid 3, a create of /p/a that the snapshot already holds: NodeExists,
        // and the parent's cversion and pzxid rise to the logged ones (setCversionPzxid).
        replay.apply(&logged(3, create("/p/a", 2))).unwrap();
        assert_eq!(replay.failed, 1);
        let parent = replay.tree.node("/p").unwrap();
        assert_eq!((parent.cversion, parent.pzxid), (2, 3));
        // A delete of a node already gone raises its parent's pzxid only.
        replay.apply(&logged(4, ZookeeperOp::Delete { path: "/p/gone".into() })).unwrap();
        let parent = replay.tree.node("/p").unwrap();
        assert_eq!((replay.failed, parent.cversion, parent.pzxid), (2, 2, 4));
        replay.tree.check_invariants();
    }

    #[test]
    fn a_log_no_zookeeper_could_write_is_refused_not_applied() {
        let mut replay = Replay::new(DataTree::new());
        replay.apply(&logged(1, ZookeeperOp::CreateSession { timeout_ms: 30_000 })).unwrap();
        replay.apply(&logged(2, ephemeral("/e", 0x5))).unwrap();
        let under_ephemeral = replay.apply(&logged(3, create("/e/child", 1))).unwrap_err();
        assert!(under_ephemeral.contains("under the ephemeral node /e"), "{under_ephemeral}");
        let bad_path = replay.apply(&logged(3, create("/a//b", 1))).unwrap_err();
        assert!(bad_path.contains("not a valid path"), "{bad_path}");
        assert_eq!(replay.tree.last_zxid(), 2, "nothing applied");
    }

    #[test]
    fn a_logged_multi_with_a_failed_op_changes_nothing_and_others_apply_in_order() {
        let mut replay = Replay::new(DataTree::new());
        let failed = ZookeeperOp::Multi(vec![create("/x", 1), ZookeeperOp::Error { code: -101 }, create("/y", 2)]);
        replay.apply(&logged(1, failed)).unwrap();
        assert!(replay.tree.node("/x").is_none() && replay.tree.node("/y").is_none());
        let applied = ZookeeperOp::Multi(vec![
            create("/x", 1),
            create("/x/child", 1),
            ZookeeperOp::SetData { path: "/x".into(), data: None, version: 1 },
            ZookeeperOp::Delete { path: "/x/child".into() },
        ]);
        replay.apply(&logged(2, applied)).unwrap();
        let node = replay.tree.node("/x").unwrap();
        assert_eq!((node.version, node.data.is_none(), node.children.len()), (1, true, 0));
        assert_eq!(replay.failed, 0);
        replay.tree.check_invariants();
    }

    #[test]
    fn a_session_keeps_zookeepers_password_and_its_close_deletes_what_it_owned() {
        let mut replay = Replay::new(DataTree::new());
        replay.apply(&logged(1, ZookeeperOp::CreateSession { timeout_ms: 30_000 })).unwrap();
        replay.apply(&logged(2, ephemeral("/e", 0x5))).unwrap();
        let sessions: Vec<_> = replay.tree.sessions().collect();
        assert_eq!(sessions, vec![(0x5, 30_000, session_password(0x5))]);
        // A close logged without its list of paths (closeSessionTxn off) still deletes
        // the session's ephemerals.
        replay.apply(&logged(3, ZookeeperOp::CloseSession { paths: None })).unwrap();
        assert!(replay.tree.node("/e").is_none());
        assert_eq!(replay.tree.sessions().count(), 0);
    }
}
