//! The data tree: every znode by path, the ephemerals of every session, and the last
//! applied zxid. `apply` is deterministic: the same transactions in the same order give
//! the same tree on every core and every server.

use rpds::{HashTrieMapSync, RedBlackTreeMapSync, RedBlackTreeSetSync};

use super::acl_table::AclTable;
use super::digest::node_digest;
use super::hash_trie::HashTrie;
use super::path::{join, parent_and_name, validate_path};
use super::quota::{self, QuotaNodeCreated, QuotaRoots, QuotaStats};
use super::znode::Znode;
use crate::proto::acl::Acl;
use crate::proto::{ErrorCode, Stat};
use rkyv::vec::ArchivedVec;

use crate::txn::{data_of, ArchivedAclEntry, ArchivedCreateTxn, ArchivedStep, ArchivedTxn, ArchivedTxnOp};

/// A change that may fire watches, in the order the tree made it. `acl_id` names the ACL
/// a watcher must be able to READ through to hear of it (the node's, or the parent's for
/// NodeChildrenChanged), as it was when the change was made: ZooKeeper 3.8 with the
/// CVE-2024-23944 fix drops an event its watcher cannot read (`ServerCnxn.process` checks
/// the ACL `DataTree` passes to `triggerWatch`). Interned ACLs are never dropped, so the
/// id stays valid after the node is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Created { path: String, acl_id: u32 },
    Deleted { path: String, acl_id: u32 },
    DataChanged { path: String, acl_id: u32 },
    ChildrenChanged { path: String, acl_id: u32 },
}

impl Trigger {
    /// The interned ACL that gates the event.
    pub fn acl_id(&self) -> u32 {
        match self {
            Trigger::Created { acl_id, .. }
            | Trigger::Deleted { acl_id, .. }
            | Trigger::DataChanged { acl_id, .. }
            | Trigger::ChildrenChanged { acl_id, .. } => *acl_id,
        }
    }
}

/// What applying a transaction did, for the reply to the session that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    SessionCreated,
    SessionClosed,
    Created { path: String, stat: Stat },
    Deleted,
    DataSet { stat: Stat },
    AclSet { stat: Stat },
    Checked,
    Multi(Vec<Outcome>),
    Error(ErrorCode),
}

pub const ROOT: &str = "/";
pub const ZOOKEEPER: &str = "/zookeeper";
pub const QUOTA: &str = "/zookeeper/quota";
pub const CONFIG: &str = "/zookeeper/config";

/// Entries a `java.util.HashSet` holds in its first table (16 slots, load factor 0.75).
const JAVA_SET_HELD_BEFORE_GROWING: usize = 12;

/// The hasher of the path-keyed maps: aHash with per-process random keys is several times
/// faster than SipHash on paths and still keeps collisions out of a client's reach.
pub type PathHasher = ahash::RandomState;

/// Every node by path, in a persistent hash trie: a clone is a version that shares every
/// node, and changing a node copies only it and the trie nodes above it.
type NodeMap = HashTrie<Box<str>, Znode, PathHasher>;
/// Paths in order, persistent.
type PathSet = RedBlackTreeSetSync<Box<str>>;
/// A session's ephemerals in path order, each with the place it was added in
/// (`DataTree::ephemeral_additions`): ZooKeeper's set for the session iterates partly in
/// insertion order, which decides the order of the deletes when the session closes.
type EphemeralSet = RedBlackTreeMapSync<Box<str>, u64>;

/// The applied tree. Every field is persistent (or a plain number), so `clone` costs a
/// few reference counts whatever the tree's size: the writer publishes each batch's result
/// as a version every core reads without locks, and a snapshot is written from a version
/// while the writer goes on. A version holds the nodes it shares with the next one once.
#[derive(Clone)]
pub struct DataTree {
    nodes: NodeMap,
    ephemerals: HashTrieMapSync<i64, EphemeralSet>,
    /// Ephemerals indexed so far, numbering each one's place in its session's set. Every
    /// member applies the same records in the same order, so the numbers agree.
    ephemeral_additions: u64,
    /// The most ephemerals a live session has held at once, where that passed what a
    /// `java.util.HashSet` holds before it grows (12): ZooKeeper's set for the session
    /// never shrinks, and its size decides the order of the deletes when the session
    /// closes (`java_hash::closed_session_order`). ZooKeeper rebuilds the sets on a
    /// restart, so this is not in snapshots either.
    ephemeral_peaks: HashTrieMapSync<i64, usize>,
    acls: AclTable,
    last_zxid: i64,
    /// Open sessions (timeout, password), as the log recorded them: snapshots carry them
    /// so sessions survive a restart after old logs are purged.
    sessions: HashTrieMapSync<i64, (i32, [u8; 16])>,
    /// Container and TTL nodes, for the reaper.
    special_nodes: PathSet,
    /// The paths with a quota (ZooKeeper's `pTrie`), derived from the limits nodes.
    quota_roots: QuotaRoots,
    /// Kept as nodes change, for mntr: ZooKeeper's `approximateDataSize` (every path's
    /// length plus its data's) and the number of ephemeral nodes. Counting them by walking
    /// the tree made every session close cost a walk of a million nodes.
    data_size_bytes: usize,
    ephemeral_count: usize,
    /// ZooKeeper's tree digest (`digest::node_digest` summed over the nodes, wrapping as
    /// Java's long does), kept as nodes change.
    digest: u64,
}

impl Default for DataTree {
    fn default() -> Self {
        Self::new()
    }
}

impl DataTree {
    /// A tree holding what ZooKeeper's holds at birth: `/`, `/zookeeper`,
    /// `/zookeeper/quota` and `/zookeeper/config`, all with zeroed metadata. The config
    /// node is world-readable only, and its aversion is -1 because ZooKeeper sets its ACL
    /// with version -1 (`DataTree.addConfigNode`).
    pub fn new() -> DataTree {
        let mut tree = DataTree::for_loading(HashTrieMapSync::new_sync(), 0);
        let open = tree.acls.intern(vec![Acl::open_unsafe()]);
        let read_only = tree.acls.intern(vec![Acl::read_unsafe()]);
        // System nodes hold empty (not null) data.
        let empty = || Some(Box::<[u8]>::default());
        tree.nodes.insert_mut(ROOT.into(), Znode { acl_id: open, data: empty(), ..Znode::default() });
        for path in [ZOOKEEPER, QUOTA, CONFIG] {
            let (parent, name) = parent_and_name(path).expect("system nodes have parents");
            tree.nodes.get_mut(parent).expect("parent created first").children.insert(name);
            tree.nodes.insert_mut(path.into(), Znode { acl_id: open, data: empty(), ..Znode::default() });
        }
        let config = tree.nodes.get_mut(CONFIG).expect("just created");
        config.acl_id = read_only;
        config.aversion = -1;
        tree.data_size_bytes = tree.nodes.keys().map(|path| path.len()).sum();
        tree.digest = tree.recounted_digest();
        tree
    }

    /// ZooKeeper's replay fix-ups, for a logged change that finds its work already done
    /// (an imported fuzzy snapshot holds it): after a create of an existing node the
    /// parent's cversion rises to the logged one (-1: one more) with its pzxid
    /// (`DataTree.setCversionPzxid`); after a delete of a missing node (`child_version`
    /// None) the parent's pzxid rises to `zxid`.
    pub fn raise_parent(&mut self, parent: &str, child_version: Option<i32>, zxid: i64) {
        self.change_node(parent, |node| match child_version {
            Some(cversion) => {
                let cversion = if cversion == -1 { node.cversion.wrapping_add(1) } else { cversion };
                if cversion > node.cversion {
                    node.cversion = cversion;
                    node.pzxid = zxid;
                }
            }
            None => node.pzxid = node.pzxid.max(zxid),
        });
    }

    /// Deletes the ephemeral nodes of a session the tree has no record of, at `zxid` (the
    /// last applied: no transaction is made): ZooKeeper's clean-up of dead sessions when
    /// it loads a snapshot and its logs (`ZooKeeperServer.loadData`, `killSession`).
    pub fn delete_orphan_ephemerals(&mut self, session_id: i64, zxid: i64) {
        assert!(!self.sessions.contains_key(&session_id), "the session is dead");
        let mut paths: Vec<String> = self.ephemerals_of(session_id).map(str::to_owned).collect();
        paths.sort_unstable();
        for path in paths {
            assert!(self.node(&path).is_some_and(|node| node.children.is_empty()), "an ephemeral has no children");
            self.delete_node(&path, zxid, &mut Vec::new()).expect("an indexed ephemeral exists");
        }
    }

    /// The tree's digest as ZooKeeper computes it (`hash`).
    pub fn digest(&self) -> u64 {
        self.digest
    }

    fn recounted_digest(&self) -> u64 {
        self.nodes.iter().fold(0u64, |sum, (path, node)| sum.wrapping_add(node_digest(path, node)))
    }

    /// Changes the node at `path` in place, keeping the digest: the node's share before
    /// the change leaves it and its share after enters it (ZooKeeper's
    /// `NodeHashMap.preChange` and `postChange`).
    fn change_node<R>(&mut self, path: &str, change: impl FnOnce(&mut Znode) -> R) -> Option<R> {
        let node = Self::node_mut(&mut self.nodes, path)?;
        let before = node_digest(path, node);
        let result = change(node);
        let after = node_digest(path, node);
        self.digest = self.digest.wrapping_sub(before).wrapping_add(after);
        Some(result)
    }

    pub fn last_zxid(&self) -> i64 {
        self.last_zxid
    }

    /// What each member of a ZooKeeper ensemble writes into `/zookeeper/config` itself,
    /// outside the log, as it loads its database (`ZKDatabase.initConfigInZKDatabase`):
    /// the membership text, with data version -1 and mzxid the configuration's version
    /// (0 for a static configuration). No watch fires: nobody is connected yet.
    pub fn set_membership(&mut self, text: &[u8], mtime_ms: i64) {
        // Clients cannot delete it, but a snapshot file might lack it.
        let bytes_before = self.change_node(CONFIG, |node| {
            let bytes_before = node.data_len();
            node.data = Some(text.into());
            node.version = -1;
            node.mzxid = 0;
            node.mtime_ms = mtime_ms;
            bytes_before
        });
        if let Some(bytes_before) = bytes_before {
            self.data_size_bytes = self.data_size_bytes - bytes_before + text.len();
        }
    }

    /// Replaces a quota node's data (no Stat changes: ZooKeeper writes usage into the
    /// stat node's data directly, outside any transaction).
    fn replace_data(&mut self, path: &str, data: &[u8]) {
        let bytes_before = self.change_node(path, |node| node.data.replace(data.into()));
        if let Some(before) = bytes_before {
            self.data_size_bytes = self.data_size_bytes - before.map_or(0, |data| data.len()) + data.len();
        }
    }

    /// Containers that had children and have none left, and TTL nodes without children
    /// unchanged for longer than their TTL: what ZooKeeper's ContainerManager deletes.
    pub fn reapable(&self, now_ms: i64, limit: usize) -> Vec<String> {
        self.special_nodes
            .iter()
            .filter(|path| {
                let Some(node) = self.nodes.get(&**path) else { return false };
                if !node.children.is_empty() {
                    return false;
                }
                match super::prepare::ttl_of(node.ephemeral_owner) {
                    Some(ttl_ms) => now_ms - node.mtime_ms > ttl_ms,
                    None => node.cversion > 0,
                }
            })
            .take(limit)
            .map(|path| path.to_string())
            .collect()
    }

    /// Open sessions: (id, timeout, password).
    pub fn sessions(&self) -> impl Iterator<Item = (i64, i32, [u8; 16])> + '_ {
        self.sessions.iter().map(|(&session_id, &(timeout_ms, password))| (session_id, timeout_ms, password))
    }

    /// Every node by path, for snapshots.
    pub fn nodes(&self) -> impl Iterator<Item = (&str, &Znode)> + Clone {
        self.nodes.iter().map(|(path, node)| (&**path, node))
    }

    /// Every node, as `nodes`, for a walk that reads each one's path and data (a
    /// snapshot): the trie's order is random in memory, and `FetchingAhead` asks for each
    /// node's memory before it is used.
    pub fn nodes_fetched_ahead(&self) -> FetchingAhead<'_, impl Iterator<Item = (&Box<str>, &Znode)> + Clone> {
        FetchingAhead { inner: self.nodes.iter(), ahead: std::collections::VecDeque::with_capacity(FETCH_AHEAD) }
    }

    /// An empty tree (not even `/`) to be filled by `insert_loaded` from a snapshot.
    pub fn for_loading(sessions: HashTrieMapSync<i64, (i32, [u8; 16])>, last_zxid: i64) -> DataTree {
        DataTree {
            nodes: NodeMap::with_hasher(PathHasher::new()),
            ephemerals: HashTrieMapSync::new_sync(),
            ephemeral_peaks: HashTrieMapSync::new_sync(),
            ephemeral_additions: 0,
            acls: AclTable::default(),
            last_zxid,
            sessions,
            special_nodes: PathSet::new_sync(),
            quota_roots: QuotaRoots::default(),
            data_size_bytes: 0,
            ephemeral_count: 0,
            digest: 0,
        }
    }

    /// Adds a node read from a snapshot, in whatever order the snapshot holds them
    /// (`link_loaded` links it to its parent once all are in, and `index_loaded_owners`
    /// indexes the nodes a session or the server owns). Children and owners' indexes are
    /// derived, not stored. A snapshot's bytes are
    /// validated, but what they say may still not be a tree (a damaged or crafted file):
    /// that is an error, never a panic.
    pub fn insert_loaded(
        &mut self,
        path: Box<str>,
        mut node: Znode,
        acl: &ArchivedVec<ArchivedAclEntry>,
    ) -> Result<(), &'static str> {
        if self.nodes.contains_key(&path) {
            return Err("a path appears twice");
        }
        // Every path a server holds passed this check when it was created.
        validate_path(&path, false).map_err(|_| "a path that is not valid")?;
        node.acl_id = self.acls.intern_archived(acl);
        node.children.clear();
        self.data_size_bytes += path.len() + node.data_len();
        self.digest = self.digest.wrapping_add(node_digest(&path, &node));
        self.nodes.insert_mut(path, node);
        Ok(())
    }

    /// Links a node `insert_loaded` put in to its parent, once every node is in.
    pub fn link_loaded(&mut self, path: &str) -> Result<(), &'static str> {
        let Some((parent, name)) = parent_and_name(path) else { return Ok(()) };
        let parent_node = Self::node_mut(&mut self.nodes, parent).ok_or("a node without its parent")?;
        if parent_node.ephemeral_owner != 0 && !is_special_owner(parent_node.ephemeral_owner) {
            return Err("an ephemeral node has children");
        }
        parent_node.children.insert(name);
        Ok(())
    }

    /// Indexes the loaded nodes with an owner (a session's ephemerals, containers and TTL
    /// nodes), given as (czxid, path, owner), in the order they were created: a session's
    /// ephemerals are numbered in the order a server that never restarted numbered them,
    /// which decides the order of the deletes when the session closes
    /// (`ephemeral_additions`), whatever order the snapshot holds them in. A multi's
    /// creates share a zxid; they go in path order.
    pub fn index_loaded_owners(&mut self, mut loaded: Vec<(i64, &str, i64)>) {
        loaded.sort_unstable();
        for (_, path, owner) in loaded {
            self.index_owner(path, owner);
        }
    }

    /// Completes a tree filled by `insert_loaded`, `link_loaded` and
    /// `index_loaded_owners`: what is derived from the whole tree.
    pub fn finish_loading(&mut self) -> Result<(), &'static str> {
        if !self.nodes.contains_key(ROOT) {
            return Err("there is no root");
        }
        self.setup_quotas();
        Ok(())
    }

    /// `DataTree.setupQuota`, run on a loaded snapshot: every limits node that is a leaf
    /// below `/zookeeper/quota` registers its root, whose usage is counted afresh.
    fn setup_quotas(&mut self) {
        let suffix = format!("/{}", quota::LIMIT_NODE);
        let leaves: Vec<String> = self.quota_leaves().into_iter().map(|(path, _)| path).collect();
        for path in leaves {
            if let Some(root) =
                path.strip_suffix(&suffix).and_then(|quota_path| quota_path.get(quota::QUOTA_ROOT.len()..))
            {
                let root = root.to_owned();
                self.recount_quota(&root);
                self.quota_roots.add(&root);
            }
        }
    }

    /// Every leaf below `/zookeeper/quota` (where limits and stats nodes live), depth
    /// first, with its node.
    fn quota_leaves(&self) -> Vec<(String, &Znode)> {
        let mut leaves = Vec::new();
        let mut stack = vec![quota::QUOTA_ROOT.to_owned()];
        while let Some(path) = stack.pop() {
            let Some(node) = self.nodes.get(path.as_str()) else { continue };
            if node.children.is_empty() {
                leaves.push((path, node));
            } else {
                stack.extend(node.children.iter().map(|name| join(&path, name)));
            }
        }
        leaves
    }

    /// Every leaf limits and stats node below `/zookeeper/quota` with the top namespace
    /// of its quota, for the per-namespace metrics (`QuotaMetricsUtils`, which walks the
    /// nodes, not the registered roots). `true` marks limits; nodes whose text does not
    /// parse, and quotas on `/`, are skipped.
    pub fn quota_nodes(&self) -> Vec<(String, bool, QuotaStats)> {
        let mut found = Vec::new();
        for (path, node) in self.quota_leaves() {
            let Some((quota_path, name)) = parent_and_name(&path) else { continue };
            let is_limits = match name {
                quota::LIMIT_NODE => true,
                quota::STAT_NODE => false,
                _ => continue,
            };
            let namespace = quota_path.get(quota::QUOTA_ROOT.len()..).and_then(quota::top_namespace);
            let (Some(namespace), Some(stats)) = (namespace, QuotaStats::parse(node.data.as_deref())) else { continue };
            found.push((namespace.to_owned(), is_limits, stats));
        }
        found
    }

    /// The deepest quota root at or above `path` (`DataTree.getMaxPrefixWithQuota`).
    pub fn quota_root_of(&self, path: &str) -> Option<String> {
        self.quota_roots.max_prefix(path)
    }

    /// `DataTree.updateQuotaForPath`: counts `root` and every node below it, and writes
    /// the figures into its stats node in place (no version or watch moves).
    fn recount_quota(&mut self, root: &str) {
        let (mut count, mut bytes) = (0i64, 0i64);
        let mut stack = vec![root.to_owned()];
        while let Some(path) = stack.pop() {
            let Some(node) = self.nodes.get(path.as_str()) else { continue };
            count += 1;
            bytes += node.data_len() as i64;
            stack.extend(node.children.iter().map(|name| join(&path, name)));
        }
        self.replace_data(&quota::stat_path(root), &QuotaStats::usage(count, bytes).to_bytes());
    }

    /// `DataTree.updateQuotaStat`: adds to the usage of the quota above `path`, if any.
    /// A missing stats node is skipped (ZooKeeper logs it); so is one whose text does not
    /// parse, which ZooKeeper's parser would throw on.
    fn update_quota_usage(&mut self, path: &str, count_diff: i64, bytes_diff: i64) {
        let Some(root) = self.quota_roots.max_prefix(path) else { return };
        let stat_path = quota::stat_path(&root);
        let Some(stats_node) = self.nodes.get(stat_path.as_str()) else { return };
        let Some(mut usage) = QuotaStats::parse(stats_node.data.as_deref()) else { return };
        usage.add(count_diff, bytes_diff);
        self.replace_data(&stat_path, &usage.to_bytes());
    }

    pub fn node(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path)
    }

    /// The node at `path`, to change in this version (copied first if an older version
    /// shares it). Looked up first: the trie copies its path to the key even when the key
    /// is missing.
    fn node_mut<'t>(nodes: &'t mut NodeMap, path: &str) -> Option<&'t mut Znode> {
        if !nodes.contains_key(path) {
            return None;
        }
        nodes.get_mut(path)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn acl(&self, node: &Znode) -> &[Acl] {
        self.acls.get(node.acl_id)
    }

    /// An interned ACL by id (a node's `acl_id`, or a `Trigger`'s).
    pub fn acl_by_id(&self, acl_id: u32) -> &[Acl] {
        self.acls.get(acl_id)
    }

    /// A node's ACL, shared (a reference count, no copy).
    pub fn acl_shared(&self, node: &Znode) -> std::sync::Arc<[Acl]> {
        self.acls.shared(node.acl_id)
    }

    /// The ephemerals a session owns, in path order.
    pub fn ephemerals_of(&self, session_id: i64) -> impl Iterator<Item = &str> {
        self.ephemerals.get(&session_id).into_iter().flat_map(|paths| paths.keys().map(|path| &**path))
    }

    /// The ephemerals a session owns, in the order they were added to its set.
    pub fn ephemerals_in_addition_order(&self, session_id: i64) -> Vec<&str> {
        let mut paths: Vec<(u64, &str)> = self
            .ephemerals
            .get(&session_id)
            .into_iter()
            .flat_map(|paths| paths.iter().map(|(path, &added)| (added, &**path)))
            .collect();
        paths.sort_unstable();
        paths.into_iter().map(|(_, path)| path).collect()
    }

    /// The most ephemerals the session has held at once (at least those it holds now).
    pub fn ephemeral_peak(&self, session_id: i64) -> usize {
        let held = self.ephemerals.get(&session_id).map_or(0, EphemeralSet::size);
        self.ephemeral_peaks.get(&session_id).map_or(held, |&peak| peak.max(held))
    }

    /// Every session that owns ephemeral nodes, with their paths in order.
    pub fn ephemerals_by_session(&self) -> impl Iterator<Item = (i64, Vec<String>)> + '_ {
        self.ephemerals
            .iter()
            .filter(|(_, paths)| !paths.is_empty())
            .map(|(&session_id, paths)| (session_id, paths.keys().map(|path| path.to_string()).collect()))
    }

    pub fn ephemeral_count(&self) -> usize {
        self.ephemeral_count
    }

    /// `DataTree.approximateDataSize`: the lengths of every path and its data.
    pub fn approximate_data_size(&self) -> usize {
        self.data_size_bytes
    }

    /// The data size and ephemeral count counted afresh, to check the kept ones.
    fn recounted(&self) -> (usize, usize) {
        let data_size = self.nodes.iter().map(|(path, node)| path.len() + node.data_len()).sum();
        (data_size, self.ephemerals.values().map(EphemeralSet::size).sum())
    }

    /// Walks the whole tree and panics where its structure does not hold: every node but
    /// the root is a child of its existing parent and every child is a node; ephemerals
    /// have no children and are indexed under their owner, and the index holds nothing
    /// else; the kept counts equal a recount. For tests and fuzzers: it costs a walk.
    pub fn check_invariants(&self) {
        assert!(self.nodes.contains_key(ROOT), "the root exists");
        for (path, node) in self.nodes.iter() {
            for name in node.children.iter() {
                assert!(self.nodes.contains_key(join(path, name).as_str()), "child {name} of {path} exists");
            }
            if let Some((parent, name)) = parent_and_name(path) {
                let parent_node = self.nodes.get(parent).unwrap_or_else(|| panic!("parent of {path} exists"));
                assert!(parent_node.children.contains(name), "{path} is listed by its parent");
            }
            let owner = node.ephemeral_owner;
            if owner != 0 && !is_special_owner(owner) {
                assert!(node.children.is_empty(), "ephemeral {path} has no children");
                assert!(self.ephemerals_of(owner).any(|owned| owned == &**path), "ephemeral {path} is indexed");
            }
        }
        for (owner, paths) in self.ephemerals.iter() {
            for path in paths.keys() {
                let node = self.nodes.get(&**path).unwrap_or_else(|| panic!("indexed ephemeral {path} exists"));
                assert_eq!(node.ephemeral_owner, *owner, "{path} is indexed under its owner");
            }
        }
        assert_eq!((self.data_size_bytes, self.ephemeral_count), self.recounted(), "kept counts equal a recount");
        assert_eq!(self.digest, self.recounted_digest(), "the kept digest equals a recount");
    }

    /// The number of nodes below `path` (`DataTree.getAllChildrenNumber`); for the root,
    /// every node but the root.
    pub fn descendant_count(&self, path: &str) -> Option<usize> {
        let node = self.nodes.get(path)?;
        if path == ROOT {
            return Some(self.nodes.len() - 1);
        }
        let mut count = 0;
        let mut stack: Vec<String> = node.children.iter().map(|name| join(path, name)).collect();
        while let Some(child_path) = stack.pop() {
            count += 1;
            if let Some(child) = self.nodes.get(child_path.as_str()) {
                stack.extend(child.children.iter().map(|name| join(&child_path, name)));
            }
        }
        Some(count)
    }

    /// Adds a new node to the index its owner calls for: its session's ephemerals, or the
    /// reaper's container and TTL nodes.
    fn index_owner(&mut self, path: &str, ephemeral_owner: i64) {
        if is_special_owner(ephemeral_owner) {
            self.special_nodes.insert_mut(path.into());
        } else if ephemeral_owner != 0 {
            self.ephemeral_additions += 1;
            let added = self.ephemeral_additions;
            let held = match self.ephemerals.get_mut(&ephemeral_owner) {
                Some(paths) => {
                    paths.insert_mut(path.into(), added);
                    paths.size()
                }
                None => {
                    self.ephemerals.insert_mut(ephemeral_owner, EphemeralSet::new_sync().insert(path.into(), added));
                    1
                }
            };
            let peak = self.ephemeral_peaks.get(&ephemeral_owner).copied().unwrap_or(0);
            if held > JAVA_SET_HELD_BEFORE_GROWING && held > peak {
                self.ephemeral_peaks.insert_mut(ephemeral_owner, held);
            }
            self.ephemeral_count += 1;
        }
    }

    /// Removes a deleted node from the index `index_owner` put it in.
    fn unindex_owner(&mut self, path: &str, ephemeral_owner: i64) {
        if is_special_owner(ephemeral_owner) {
            self.special_nodes.remove_mut(path);
        } else if ephemeral_owner != 0 {
            let Some(paths) = self.ephemerals.get_mut(&ephemeral_owner) else { return };
            if paths.remove_mut(path) {
                self.ephemeral_count -= 1;
            }
            if paths.is_empty() {
                self.ephemerals.remove_mut(&ephemeral_owner);
            }
        }
    }

    /// Applies one committed transaction, appending the changes that fire watches.
    pub fn apply(&mut self, txn: &ArchivedTxn, triggers: &mut Vec<Trigger>) -> Outcome {
        let zxid = txn.zxid.to_native();
        let time_ms = txn.time_ms.to_native();
        let session_id = txn.session_id.to_native();
        assert!(zxid > self.last_zxid, "txn zxid {zxid:#x} not after last applied {:#x}", self.last_zxid);
        let outcome = match &txn.op {
            ArchivedTxnOp::CreateSession { timeout_ms, password } => {
                self.sessions.insert_mut(session_id, (timeout_ms.to_native(), *password));
                Outcome::SessionCreated
            }
            ArchivedTxnOp::CloseSession { ephemerals } => {
                for path in ephemerals.iter() {
                    // A node the session owned may already be gone; ZooKeeper logs and
                    // carries on (`DataTree.deleteNodes`).
                    let _ = self.delete_node(path.as_str(), zxid, triggers);
                }
                self.delete_unlisted_ephemerals(session_id, zxid, triggers);
                self.sessions.remove_mut(&session_id);
                self.ephemeral_peaks.remove_mut(&session_id);
                Outcome::SessionClosed
            }
            ArchivedTxnOp::Single(step) => self.apply_step(step, zxid, time_ms, triggers),
            ArchivedTxnOp::Multi { ops } => {
                Outcome::Multi(ops.iter().map(|op| self.apply_step(op, zxid, time_ms, triggers)).collect())
            }
            // Session 0 owns no connection: nobody is answered.
            ArchivedTxnOp::EpochMarker => Outcome::Checked,
        };
        self.last_zxid = zxid;
        outcome
    }

    /// A closed session's ephemerals that its close record did not list are deleted too,
    /// in path order (every member applies the same deletes), with a warning: ZooKeeper's
    /// `DataTree.killSession` deletes the nodes of its own index that the txn missed.
    fn delete_unlisted_ephemerals(&mut self, session_id: i64, zxid: i64, triggers: &mut Vec<Trigger>) {
        let mut unlisted: Vec<Box<str>> = self.ephemerals_of(session_id).map(Box::from).collect();
        if unlisted.is_empty() {
            return;
        }
        tracing::warn!(session_id = format_args!("{session_id:#x}"), zxid = format_args!("{zxid:#x}"), paths = ?unlisted, "ephemerals missing from a session's close record; deleting them");
        unlisted.sort_unstable();
        for path in &unlisted {
            assert!(
                self.node(path).is_some_and(|node| node.children.is_empty()),
                "an indexed ephemeral {path} exists and has no children"
            );
            self.delete_node(path, zxid, triggers).expect("an ephemeral in the index is in the tree");
        }
        assert_eq!(self.ephemerals_of(session_id).count(), 0, "a closed session owns no nodes");
    }

    /// Asks the CPU for the trie branches that the changes of `txns` will walk, for all
    /// of them at once: one record after another, each walk of a million nodes waited on
    /// its misses one by one. Changes nothing; returns how many branches it asked for.
    pub fn fetch_for<'t>(&self, txns: impl Iterator<Item = &'t ArchivedTxn>) -> usize {
        // Each path, and whether its parent's child set changes with it.
        let mut paths: Vec<(&str, bool)> = Vec::new();
        for txn in txns {
            let steps: &[ArchivedStep] = match &txn.op {
                ArchivedTxnOp::Single(step) => std::slice::from_ref(step),
                ArchivedTxnOp::Multi { ops } => ops.as_slice(),
                ArchivedTxnOp::CloseSession { ephemerals } => {
                    paths.extend(ephemerals.iter().map(|path| (path.as_str(), true)));
                    &[]
                }
                ArchivedTxnOp::CreateSession { .. } | ArchivedTxnOp::EpochMarker => &[],
            };
            paths.extend(steps.iter().filter_map(|step| match step {
                ArchivedStep::Create(create) => Some((create.path.as_str(), true)),
                ArchivedStep::Delete { path } => Some((path.as_str(), true)),
                ArchivedStep::SetData { path, .. } | ArchivedStep::SetAcl { path, .. } => Some((path.as_str(), false)),
                ArchivedStep::Check { .. } | ArchivedStep::Error { .. } => None,
            }));
        }
        let changed_children = || {
            paths.iter().filter(|&&(_, changes_parent)| changes_parent).filter_map(|&(path, _)| parent_and_name(path))
        };
        let parents = changed_children().map(|(parent_path, _)| parent_path);
        let mut fetched = self.nodes.fetch_paths(paths.iter().map(|&(path, _)| path).chain(parents));
        // A batch's run of one parent (sequential nodes under a lock or a queue) is
        // fetched as one.
        let mut children = changed_children().peekable();
        while let Some((parent_path, name)) = children.next() {
            let mut names = vec![name];
            while let Some((_, name)) = children.next_if(|(next_parent, _)| *next_parent == parent_path) {
                names.push(name);
            }
            if let Some(parent) = self.nodes.get(parent_path) {
                fetched += parent.children.fetch(names.into_iter());
            }
        }
        fetched
    }

    fn apply_step(&mut self, step: &ArchivedStep, zxid: i64, time_ms: i64, triggers: &mut Vec<Trigger>) -> Outcome {
        match step {
            ArchivedStep::Create(create) => self.create_node(create, zxid, time_ms, triggers),
            ArchivedStep::Delete { path } => match self.delete_node(path.as_str(), zxid, triggers) {
                Ok(()) => Outcome::Deleted,
                Err(code) => Outcome::Error(code),
            },
            ArchivedStep::SetData { path, data, version } => {
                self.set_data(path.as_str(), data_of(data), version.to_native(), zxid, time_ms, triggers)
            }
            ArchivedStep::Check { .. } => Outcome::Checked,
            ArchivedStep::SetAcl { path, acl, version } => self.set_acl(path.as_str(), acl, version.to_native()),
            ArchivedStep::Error { code } => Outcome::Error(ErrorCode::from_code(code.to_native())),
        }
    }

    /// `DataTree.setACL`: no watch fires.
    fn set_acl(
        &mut self,
        path: &str,
        acl: &rkyv::vec::ArchivedVec<crate::txn::ArchivedAclEntry>,
        version: i32,
    ) -> Outcome {
        let acl = crate::txn::acl_of(acl);
        let acl_id = self.acls.intern(acl);
        // Prepared against the tree it is applied to: a difference means the members'
        // trees diverged, and carrying on would spread it.
        let stat = self.change_node(path, |node| {
            node.acl_id = acl_id;
            node.aversion = version;
            node.stat()
        });
        let Some(stat) = stat else { panic!("validated setACL of missing {path}") };
        Outcome::AclSet { stat }
    }

    /// `DataTree.createNode`: the parent's cversion takes the value the ordering point
    /// computed, and its pzxid moves to this zxid.
    fn create_node(
        &mut self,
        create: &ArchivedCreateTxn,
        zxid: i64,
        time_ms: i64,
        triggers: &mut Vec<Trigger>,
    ) -> Outcome {
        let path = create.path.as_str();
        let Some((parent_path, name)) = parent_and_name(path) else {
            return Outcome::Error(ErrorCode::NodeExists);
        };
        let acl_id = self.acls.intern_archived(&create.acl);
        let parent_cversion = create.parent_cversion.to_native();
        let parent_acl_id = self.change_node(parent_path, |parent| {
            if parent_cversion > parent.cversion {
                parent.cversion = parent_cversion;
                parent.pzxid = zxid;
            }
            let added = parent.children.insert(name);
            assert!(added, "validated create of existing child {name} of {parent_path}");
            parent.acl_id
        });
        let Some(parent_acl_id) = parent_acl_id else { panic!("validated create under missing parent {parent_path}") };
        let ephemeral_owner = create.ephemeral_owner.to_native();
        let node = Znode {
            data: data_of(&create.data).map(Into::into),
            acl_id,
            czxid: zxid,
            mzxid: zxid,
            ctime_ms: time_ms,
            mtime_ms: time_ms,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner,
            pzxid: zxid,
            children: Default::default(),
        };
        let stat = node.stat();
        let bytes = node.data_len() as i64;
        self.data_size_bytes += path.len() + node.data_len();
        self.digest = self.digest.wrapping_add(node_digest(path, &node));
        // Prepare found the path free; one walk here both checks and fills it.
        let added = self.nodes.insert_mut(path.into(), node);
        assert!(added, "validated create of existing node {path}");
        match quota::quota_node_created(parent_path, name) {
            Some(QuotaNodeCreated::Limits { root }) => self.quota_roots.add(&root),
            Some(QuotaNodeCreated::Stats { root }) => self.recount_quota(&root),
            None => {}
        }
        self.update_quota_usage(path, 1, bytes);
        self.index_owner(path, ephemeral_owner);
        triggers.push(Trigger::Created { path: path.to_owned(), acl_id });
        triggers.push(Trigger::ChildrenChanged { path: parent_path.to_owned(), acl_id: parent_acl_id });
        Outcome::Created { path: path.to_owned(), stat }
    }

    /// `DataTree.deleteNode`: the parent's pzxid moves forward; its cversion does not.
    fn delete_node(&mut self, path: &str, zxid: i64, triggers: &mut Vec<Trigger>) -> Result<(), ErrorCode> {
        let (parent_path, name) = parent_and_name(path).ok_or(ErrorCode::BadArguments)?;
        let node = self.nodes.get(path).ok_or(ErrorCode::NoNode)?;
        assert!(node.children.is_empty(), "validated delete of non-empty {path}");
        let (acl_id, ephemeral_owner, data_len) = (node.acl_id, node.ephemeral_owner, node.data_len());
        self.digest = self.digest.wrapping_sub(node_digest(path, node));
        self.nodes.remove_mut(path);
        self.data_size_bytes -= path.len() + data_len;
        // A node's parent always exists; without one, the node's own ACL gates the event.
        let parent_acl_id = self
            .change_node(parent_path, |parent| {
                parent.children.remove(name);
                if zxid > parent.pzxid {
                    parent.pzxid = zxid;
                }
                parent.acl_id
            })
            .unwrap_or(acl_id);
        self.unindex_owner(path, ephemeral_owner);
        if let Some(root) = quota::quota_root_deleted(parent_path, name) {
            self.quota_roots.remove(&root);
        }
        self.update_quota_usage(path, -1, -(data_len as i64));
        triggers.push(Trigger::Deleted { path: path.to_owned(), acl_id });
        triggers.push(Trigger::ChildrenChanged { path: parent_path.to_owned(), acl_id: parent_acl_id });
        Ok(())
    }

    fn set_data(
        &mut self,
        path: &str,
        data: Option<&[u8]>,
        version: i32,
        zxid: i64,
        time_ms: i64,
        triggers: &mut Vec<Trigger>,
    ) -> Outcome {
        let changed = self.change_node(path, |node| {
            let bytes_before = node.data_len();
            node.data = data.map(Into::into);
            node.mtime_ms = time_ms;
            node.mzxid = zxid;
            node.version = version;
            (node.stat(), bytes_before, node.acl_id)
        });
        let Some((stat, bytes_before, acl_id)) = changed else { panic!("validated setData of missing {path}") };
        let bytes_after = stat.data_length as usize;
        self.data_size_bytes = self.data_size_bytes - bytes_before + bytes_after;
        let bytes_diff = bytes_after as i64 - bytes_before as i64;
        triggers.push(Trigger::DataChanged { path: path.to_owned(), acl_id });
        self.update_quota_usage(path, 0, bytes_diff);
        Outcome::DataSet { stat }
    }
}

/// Container and TTL nodes mark ephemeralOwner with the top bits set
/// (`EphemeralType`); they belong to no session.
pub fn is_special_owner(owner: i64) -> bool {
    owner == crate::tree::prepare::CONTAINER_OWNER || crate::tree::prepare::ttl_of(owner).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{AclEntry, CreateTxn, Step, Txn, TxnOp};

    fn apply(tree: &mut DataTree, zxid: i64, op: TxnOp) -> (Outcome, Vec<Trigger>) {
        apply_as(tree, 1, zxid, op)
    }

    fn apply_as(tree: &mut DataTree, session_id: i64, zxid: i64, op: TxnOp) -> (Outcome, Vec<Trigger>) {
        let txn = Txn { session_id, cxid: 0, zxid, time_ms: 100 + zxid, op };
        let bytes = txn.to_bytes();
        let mut triggers = Vec::new();
        let outcome = tree.apply(crate::txn::access_written(&bytes), &mut triggers);
        (outcome, triggers)
    }

    fn create(path: &str, parent_cversion: i32, owner: i64) -> TxnOp {
        TxnOp::Single(Step::Create(CreateTxn {
            path: path.into(),
            data: Some(b"d".to_vec()),
            acl: vec![AclEntry { perms: 31, scheme: "world".into(), id: "anyone".into() }],
            ephemeral_owner: owner,
            parent_cversion,
        }))
    }

    #[test]
    fn fetching_a_batch_ahead_walks_each_changed_path_and_for_creates_the_parent_and_its_children() {
        let mut tree = DataTree::new();
        apply(&mut tree, 1, create("/p", 1, 0));
        for index in 0..3000 {
            apply(&mut tree, 2 + index, create(&format!("/p/c{index}"), index as i32 + 1, 0));
        }
        let fetched = |ops: Vec<TxnOp>| {
            let records: Vec<_> = ops
                .into_iter()
                .map(|op| Txn { session_id: 1, cxid: 0, zxid: 9000, time_ms: 0, op }.to_bytes())
                .collect();
            tree.fetch_for(records.iter().map(|bytes| crate::txn::access_written(bytes)))
        };
        let set = |path: &str| TxnOp::Single(Step::SetData { path: path.into(), data: None, version: -1 });
        let set_alone = fetched(vec![set("/p/new")]);
        let create_alone = fetched(vec![create("/p/new", 3001, 0)]);
        // 3000 entries fill every slot of a trie's root with a branch: each walk below
        // asks for at least one.
        let parent = tree.nodes.fetch_paths(std::iter::once("/p"));
        let child_set = tree.node("/p").expect("created").children.fetch(std::iter::once("new"));
        assert!(set_alone >= 1 && parent >= 1 && child_set >= 1, "{set_alone} {parent} {child_set}");
        assert_eq!(create_alone, set_alone + parent + child_set, "the path, its parent, the parent's children");
        let check = TxnOp::Single(Step::Check { path: "/p".into() });
        assert_eq!(fetched(vec![check]), 0, "a check changes nothing");
        let multi = TxnOp::Multi { ops: vec![Step::SetData { path: "/p/new".into(), data: None, version: -1 }] };
        assert_eq!(fetched(vec![multi]), set_alone, "a multi's steps are walked as single ones");
        assert_eq!(fetched(vec![set("/p/new"), create("/p/new", 3001, 0)]), set_alone + create_alone);
    }

    #[test]
    fn a_new_tree_holds_the_zookeeper_system_nodes() {
        let tree = DataTree::new();
        assert_eq!(tree.node(ROOT).unwrap().stat().num_children, 1);
        let mut children: Vec<&str> = tree.node(ZOOKEEPER).unwrap().children.iter().collect();
        children.sort();
        assert_eq!(children, ["config", "quota"]);
        assert_eq!(tree.descendant_count(ROOT), Some(3));
    }

    #[test]
    fn clients_see_cversion_as_creations_plus_deletions() {
        // DataNode.copyStat reports 2 * creations - children: a fresh root shows -1 and
        // /zookeeper -2; a create then a delete under the root shows 0 then 1.
        let mut tree = DataTree::new();
        assert_eq!(tree.node(ROOT).unwrap().stat().cversion, -1);
        assert_eq!(tree.node(ZOOKEEPER).unwrap().stat().cversion, -2);
        apply(&mut tree, 1, create("/a", 1, 0));
        assert_eq!(tree.node(ROOT).unwrap().stat().cversion, 0);
        apply(&mut tree, 2, TxnOp::Single(Step::Delete { path: "/a".into() }));
        assert_eq!(tree.node(ROOT).unwrap().stat().cversion, 1);
    }

    #[test]
    fn empty_containers_that_had_children_and_expired_ttl_nodes_are_reapable() {
        let mut tree = DataTree::new();
        apply(&mut tree, 1, create("/c", 1, crate::tree::prepare::CONTAINER_OWNER));
        assert!(tree.reapable(i64::MAX, 10).is_empty(), "a container that never had children stays");
        apply(&mut tree, 2, create("/c/x", 1, 0));
        assert!(tree.reapable(i64::MAX, 10).is_empty(), "a container with children stays");
        apply(&mut tree, 3, TxnOp::Single(Step::Delete { path: "/c/x".into() }));
        assert_eq!(tree.reapable(0, 10), vec!["/c".to_owned()]);
        apply(&mut tree, 4, create("/t", 2, crate::tree::prepare::ttl_owner(1000)));
        let created_ms = tree.node("/t").unwrap().mtime_ms;
        assert_eq!(tree.reapable(created_ms + 1000, 10), vec!["/c".to_owned()]);
        assert_eq!(tree.reapable(created_ms + 1001, 10), vec!["/c".to_owned(), "/t".to_owned()]);
    }

    #[test]
    fn null_data_stays_null() {
        let mut tree = DataTree::new();
        apply(&mut tree, 1, create("/a", 1, 0));
        apply(&mut tree, 2, TxnOp::Single(Step::SetData { path: "/a".into(), data: None, version: 1 }));
        assert_eq!(tree.node("/a").unwrap().data, None);
        assert_eq!(tree.node("/a").unwrap().stat().data_length, 0);
    }

    #[test]
    fn create_sets_stat_and_moves_parent_cversion_and_pzxid() {
        let mut tree = DataTree::new();
        let (outcome, triggers) = apply(&mut tree, 5, create("/a", 1, 0));
        let Outcome::Created { stat, .. } = outcome else { panic!("{outcome:?}") };
        assert_eq!((stat.czxid, stat.mzxid, stat.pzxid, stat.ctime, stat.data_length), (5, 5, 5, 105, 1));
        let root = tree.node(ROOT).unwrap();
        assert_eq!((root.cversion, root.pzxid), (1, 5));
        let (acl_id, root_acl_id) = (tree.node("/a").unwrap().acl_id, root.acl_id);
        assert_eq!(
            triggers,
            vec![
                Trigger::Created { path: "/a".into(), acl_id },
                Trigger::ChildrenChanged { path: "/".into(), acl_id: root_acl_id }
            ]
        );
    }

    #[test]
    fn delete_moves_parent_pzxid_but_not_cversion() {
        let mut tree = DataTree::new();
        apply(&mut tree, 1, create("/a", 1, 0));
        let (outcome, _) = apply(&mut tree, 2, TxnOp::Single(Step::Delete { path: "/a".into() }));
        assert_eq!(outcome, Outcome::Deleted);
        let root = tree.node(ROOT).unwrap();
        assert_eq!((root.cversion, root.pzxid, root.children.len()), (1, 2, 1));
    }

    #[test]
    fn closing_a_session_deletes_its_ephemerals() {
        let mut tree = DataTree::new();
        apply(&mut tree, 1, create("/e", 1, 9));
        assert_eq!(tree.ephemerals_of(9).collect::<Vec<_>>(), vec!["/e"]);
        apply(&mut tree, 2, TxnOp::CloseSession { ephemerals: vec!["/e".into()] });
        assert!(tree.node("/e").is_none());
        assert_eq!(tree.ephemerals_of(9).count(), 0);
    }

    #[test]
    fn a_session_remembers_the_most_ephemerals_it_held_and_the_order_they_came_in() {
        // ZooKeeper's set of a session's ephemerals grows past 12 entries and never
        // shrinks; its size and insertion order decide the order of the close's deletes.
        let mut tree = DataTree::new();
        for n in 0..14 {
            apply(&mut tree, n + 1, create(&format!("/e{:02}", 13 - n), 1, 9));
        }
        for n in 0..11 {
            apply(&mut tree, 20 + n, TxnOp::Single(Step::Delete { path: format!("/e{n:02}") }));
        }
        assert_eq!(tree.ephemeral_peak(9), 14);
        assert_eq!(tree.ephemerals_in_addition_order(9), ["/e13", "/e12", "/e11"]);
        apply_as(
            &mut tree,
            9,
            40,
            TxnOp::CloseSession { ephemerals: vec!["/e11".into(), "/e12".into(), "/e13".into()] },
        );
        assert_eq!(tree.ephemeral_peak(9), 0, "a closed session's history goes with it");
        apply(&mut tree, 41, create("/e", 1, 8));
        assert_eq!(tree.ephemeral_peak(8), 1, "below 13 the set never grew");
    }

    #[test]
    fn closing_a_session_deletes_its_ephemerals_that_the_close_record_missed() {
        // ZooKeeper's DataTree.killSession deletes every node its own index holds for the
        // session, not only the txn's list, and fires their watches.
        let mut tree = DataTree::new();
        apply(&mut tree, 1, create("/listed", 1, 9));
        apply(&mut tree, 2, create("/missed", 1, 9));
        apply(&mut tree, 3, create("/other", 1, 8));
        let (outcome, triggers) = apply_as(&mut tree, 9, 4, TxnOp::CloseSession { ephemerals: vec!["/listed".into()] });
        assert!(matches!(outcome, Outcome::SessionClosed));
        assert!(tree.node("/listed").is_none());
        assert!(tree.node("/missed").is_none());
        assert!(tree.node("/other").is_some());
        assert_eq!(tree.ephemerals_of(9).count(), 0);
        assert_eq!(tree.ephemeral_count(), 1);
        assert_eq!(tree.node("/").unwrap().pzxid, 4);
        assert!(triggers.iter().any(|trigger| matches!(trigger, Trigger::Deleted { path, .. } if path == "/missed")));
    }

    #[test]
    fn a_session_of_a_server_with_id_128_or_more_owns_its_ephemerals() {
        // Session ids carry the server id in the top byte (`SessionTrackerImpl`), so
        // servers 128 to 254 make negative ids. Only Long.MIN_VALUE (a container) and
        // 0xFF with extended type 0 (a TTL) are special (`EphemeralType.get`).
        let session = (0x81i64 << 56) | 0x1234;
        assert!(session < 0 && !is_special_owner(session));
        assert!(is_special_owner(crate::tree::prepare::CONTAINER_OWNER));
        assert!(is_special_owner(crate::tree::prepare::ttl_owner(5000)));
        assert!(!is_special_owner((0xFFi64 << 56) | (0x12 << 40)), "server 255's sessions are not TTLs");
        let mut tree = DataTree::new();
        apply_as(&mut tree, session, 1, create("/e", 1, session));
        assert_eq!(tree.node("/e").unwrap().stat().ephemeral_owner, session, "clients see the owner");
        assert_eq!(tree.ephemerals_of(session).collect::<Vec<_>>(), ["/e"]);
        apply_as(&mut tree, session, 2, TxnOp::CloseSession { ephemerals: vec![] });
        assert!(tree.node("/e").is_none(), "closing the session deletes it");
    }

    #[test]
    fn set_data_takes_the_version_from_the_txn() {
        let mut tree = DataTree::new();
        apply(&mut tree, 1, create("/a", 1, 0));
        let (outcome, _) = apply(
            &mut tree,
            2,
            TxnOp::Single(Step::SetData { path: "/a".into(), data: Some(b"xyz".to_vec()), version: 1 }),
        );
        let Outcome::DataSet { stat } = outcome else { panic!() };
        assert_eq!((stat.version, stat.mzxid, stat.czxid, stat.data_length), (1, 2, 1, 3));
    }

    #[test]
    fn data_size_ephemeral_count_and_digest_are_kept_as_nodes_change() {
        // mntr's zk_approximate_data_size and zk_ephemerals_count, and the tree digest of
        // `hash`, are kept per change, not counted by walking the tree; after every kind of
        // change they equal a recount (`check_invariants`).
        let mut tree = DataTree::new();
        let check = |tree: &DataTree, ephemerals: usize| {
            tree.check_invariants();
            assert_eq!(tree.ephemeral_count(), ephemerals);
        };
        check(&tree, 0);
        apply(&mut tree, 1, create("/a", 1, 0));
        // The helper's transactions come from session 1.
        apply(&mut tree, 2, create("/e1", 2, 1));
        apply(&mut tree, 3, create("/e2", 3, 1));
        check(&tree, 2);
        apply(&mut tree, 4, TxnOp::Single(Step::SetData { path: "/a".into(), data: Some(vec![7; 300]), version: 1 }));
        check(&tree, 2);
        apply(&mut tree, 5, TxnOp::Single(Step::SetData { path: "/a".into(), data: None, version: 2 }));
        check(&tree, 2);
        apply(&mut tree, 6, TxnOp::Single(Step::Delete { path: "/e1".into() }));
        check(&tree, 1);
        // The close lists only /e1 (already gone): the session's other ephemeral is
        // deleted with it, and the count follows.
        apply(&mut tree, 7, TxnOp::CloseSession { ephemerals: vec!["/e1".into()] });
        check(&tree, 0);
        assert!(tree.node("/e2").is_none());
        // Quota stats nodes are rewritten in place as usage changes.
        apply(&mut tree, 8, create("/zookeeper/quota/a", 1, 0));
        apply(&mut tree, 9, create("/zookeeper/quota/a/zookeeper_limits", 1, 0));
        apply(&mut tree, 10, create("/zookeeper/quota/a/zookeeper_stats", 2, 0));
        apply(&mut tree, 11, create("/a/b", 1, 0));
        check(&tree, 0);
        let acl = vec![crate::txn::AclEntry { perms: 1, scheme: "world".into(), id: "anyone".into() }];
        apply(&mut tree, 12, TxnOp::Single(Step::SetAcl { path: "/a".into(), acl, version: 1 }));
        check(&tree, 0);
        let digest = tree.digest();
        tree.set_membership(b"server.1=a:1:2:participant\nversion=0", 5);
        assert_eq!(tree.digest(), digest, "/zookeeper/config is outside the digest");
        check(&tree, 0);
    }

    /// What a version must show under /t: path -> (data, version).
    type Model = std::collections::BTreeMap<String, (Vec<u8>, i32)>;

    fn shown(tree: &DataTree) -> Model {
        tree.nodes()
            .filter(|(path, _)| path.starts_with("/t/"))
            .map(|(path, node)| (path.to_owned(), (node.data.as_deref().unwrap_or_default().to_vec(), node.version)))
            .collect()
    }

    /// One client write against the model: create, change or delete node `index`.
    fn write(tree: &mut DataTree, model: &mut Model, zxid: i64, kind: u8, index: usize) {
        let path = format!("/t/n{index}");
        let data = zxid.to_string().into_bytes();
        let op = match (kind, model.get(&path).map(|(_, version)| *version)) {
            (2, Some(_)) => {
                model.remove(&path);
                Step::Delete { path }
            }
            (_, Some(version)) => {
                model.insert(path.clone(), (data.clone(), version + 1));
                Step::SetData { path, data: Some(data), version: version + 1 }
            }
            (_, None) => {
                model.insert(path.clone(), (data.clone(), 0));
                let mut create = create(&path, tree.node("/t").unwrap().cversion + 1, 0);
                let TxnOp::Single(Step::Create(ref mut txn)) = create else { unreachable!() };
                txn.data = Some(data);
                return drop(apply(tree, zxid, create));
            }
        };
        apply(tree, zxid, TxnOp::Single(op));
    }

    proptest::proptest! {
        #[test]
        fn every_version_shows_the_tree_at_its_zxid_while_later_batches_apply(
            batches in proptest::collection::vec(proptest::collection::vec((0u8..3, 0usize..12), 1..8), 1..30)
        ) {
            // One thread applies batches; readers on other threads hold the version each
            // batch published. A version must show exactly the tree as of its last
            // zxid, never part of a later batch, however long it is held.
            let mut tree = DataTree::new();
            apply(&mut tree, 1, create("/t", 1, 0));
            let mut model = Model::new();
            let (versions, received) = std::sync::mpsc::channel::<(std::sync::Arc<DataTree>, Model)>();
            let reader = std::thread::spawn(move || {
                let held: Vec<_> = received.iter().inspect(|(version, expected)| assert_eq!(&shown(version), expected)).collect();
                held
            });
            let mut zxid = 1;
            for batch in batches {
                for (kind, index) in batch {
                    zxid += 1;
                    write(&mut tree, &mut model, zxid, kind, index);
                }
                versions.send((std::sync::Arc::new(tree.clone()), model.clone())).unwrap();
            }
            drop(versions);
            for (version, expected) in reader.join().unwrap() {
                proptest::prop_assert_eq!(shown(&version), expected, "version at {:#x} changed", version.last_zxid());
            }
        }
    }
}

/// How many nodes `FetchingAhead` asks for before they are used: enough for the loads to
/// overlap, few enough that what it fetched is still cached when it is used.
const FETCH_AHEAD: usize = 32;

/// A walk of the nodes that asks the CPU for each node's record `FETCH_AHEAD` nodes
/// before it yields it, and for its path and data halfway there. Without it a snapshot
/// waited on memory at every node, one load after another: encoding a million-node tree
/// took 790-890 ns a node, 460-560 with it (16 ahead: 450-740; 8: 610-710), where a walk
/// that only touches each record overlaps its loads by itself and takes 60-90.
#[derive(Clone)]
pub struct FetchingAhead<'a, I> {
    inner: I,
    // The box's own address is the record's, known without reading the record; the
    // `&str` inside is not.
    #[allow(clippy::borrowed_box)]
    ahead: std::collections::VecDeque<(&'a Box<str>, &'a Znode)>,
}

impl<'a, I: Iterator<Item = (&'a Box<str>, &'a Znode)>> Iterator for FetchingAhead<'a, I> {
    type Item = (&'a str, &'a Znode);

    fn next(&mut self) -> Option<(&'a str, &'a Znode)> {
        while self.ahead.len() < FETCH_AHEAD {
            let Some(next) = self.inner.next() else { break };
            // The record itself: its address is known without reading it. A path and its
            // znode span two or three cache lines: its first byte and its last.
            super::prefetch::fetch(next.0 as *const Box<str> as *const u8);
            let node_end = (next.1 as *const Znode as *const u8).wrapping_add(std::mem::size_of::<Znode>() - 1);
            super::prefetch::fetch(node_end);
            self.ahead.push_back(next);
        }
        if let Some(&(path, node)) = self.ahead.get(FETCH_AHEAD / 2) {
            // Its record was asked for half a walk ago: now where it points.
            super::prefetch::fetch(path.as_ptr());
            if let Some(data) = &node.data {
                super::prefetch::fetch(data.as_ptr());
            }
        }
        let (path, node) = self.ahead.pop_front()?;
        Some((&**path, node))
    }
}
