//! A znode: data, ACL, metadata and the names of its children.

use super::data_tree::PathHasher;
use super::hash_trie::{Entry, Trie};
use crate::proto::Stat;
use std::sync::Arc;

/// One node of the data tree. `data_length` and `num_children` are derived, not stored.
#[derive(Debug, Clone, Default)]
pub struct Znode {
    /// None for null data, which ZooKeeper keeps distinct from empty data.
    pub data: Option<Box<[u8]>>,
    /// Index into the tree's `AclTable`.
    pub acl_id: u32,
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime_ms: i64,
    pub mtime_ms: i64,
    pub version: i32,
    /// Child creations (the sequential counter); `stat` derives what clients see.
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
    pub children: Children,
}

// A node's fixed cost (it is stored inline in the tree's trie): keep it from growing unnoticed.
const _: () = assert!(std::mem::size_of::<Znode>() <= 88);

/// The names of a node's children, in a persistent set: a version of the tree that
/// changes a node copies the node, and the copy shares the set's structure instead of
/// copying every name. Most znodes are leaves, so the set is allocated only when the
/// first child arrives: an empty one costs 8 bytes instead of a root and a hasher.
#[derive(Clone, Default)]
pub struct Children(Option<Box<ChildSet>>);

impl std::fmt::Debug for Children {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

type ChildSet = Trie<ChildName, PathHasher>;

/// A child's name as its parent's set holds it. Names up to `INLINE_BYTES_MAX` bytes
/// (sequential nodes' `lock-0000000042` has 15) are kept in the set's slot itself: a
/// version that adds a child copies a branch of up to 64 slots, and names held by value
/// are copied with its bytes, where shared ones would each cost a reference count in an
/// allocation of its own (perf: most of a create's CPU under the create workload went to
/// those counts, in the node map and the child set alike). Longer names are shared.
#[derive(Clone)]
enum ChildName {
    Inline { len: u8, bytes: [u8; INLINE_BYTES_MAX] },
    Shared(Arc<str>),
}

const INLINE_BYTES_MAX: usize = 22;
const _: () = assert!(std::mem::size_of::<ChildName>() == 24);

impl ChildName {
    fn new(name: &str) -> ChildName {
        if name.len() > INLINE_BYTES_MAX {
            return ChildName::Shared(name.into());
        }
        let mut bytes = [0; INLINE_BYTES_MAX];
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        ChildName::Inline { len: name.len() as u8, bytes }
    }

    fn as_str(&self) -> &str {
        match self {
            // SAFETY: `new` copied these bytes whole from a `str`, so they are UTF-8.
            ChildName::Inline { len, bytes } => unsafe { std::str::from_utf8_unchecked(&bytes[..usize::from(*len)]) },
            ChildName::Shared(name) => name,
        }
    }
}

impl Entry for ChildName {
    type Key = str;
    fn key(&self) -> &str {
        self.as_str()
    }
}

impl Children {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |set| set.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().flat_map(|set| set.entries().map(ChildName::as_str))
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|set| set.contains_key(name))
    }

    /// Asks the CPU for the branches where `names` are or would go; how many it asked for.
    pub fn fetch<'k>(&self, names: impl Iterator<Item = &'k str>) -> usize {
        self.0.as_ref().map_or(0, |set| set.fetch_paths(names))
    }

    /// Adds `name`; false if it was there already.
    pub fn insert(&mut self, name: &str) -> bool {
        let set = self.0.get_or_insert_with(|| Box::new(ChildSet::with_hasher(PathHasher::new())));
        set.insert_entry(ChildName::new(name))
    }

    /// Removes `name`, and the set itself once empty; false if it was not there.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(set) = self.0.as_mut() else { return false };
        let removed = set.remove_mut(name);
        if set.is_empty() {
            self.0 = None;
        }
        removed
    }

    pub fn clear(&mut self) {
        self.0 = None;
    }
}

impl Znode {
    pub fn data_len(&self) -> usize {
        self.data.as_ref().map_or(0, |data| data.len())
    }

    /// The Stat clients see. The stored cversion counts child creations (it gives
    /// sequential nodes their numbers); clients see creations plus deletions, which
    /// ZooKeeper derives as `2 * creations - children` (`DataNode.copyStat`), so a fresh
    /// `/` shows -1.
    pub fn stat(&self) -> Stat {
        let num_children = self.children.len() as i32;
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime_ms,
            mtime: self.mtime_ms,
            version: self.version,
            cversion: self.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: self.aversion,
            // Container and TTL markers stay inside: clients see 0 for them
            // (DataNode.getClientEphemeralOwner).
            ephemeral_owner: if super::data_tree::is_special_owner(self.ephemeral_owner) {
                0
            } else {
                self.ephemeral_owner
            },
            data_length: self.data_len() as i32,
            num_children,
            pzxid: self.pzxid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_holds_no_child_set_and_losing_the_last_child_frees_it() {
        let mut children = Children::default();
        assert!(children.is_empty() && children.0.is_none());
        assert!(children.insert("a"));
        assert!(!children.insert("a"), "a name is held once");
        assert!(children.insert("b"));
        assert_eq!((children.len(), children.contains("a")), (2, true));
        assert!(children.remove("a") && !children.remove("a"));
        assert!(children.remove("b"));
        assert!(children.0.is_none(), "the empty set is released");
        assert!(!children.remove("b"));
    }

    #[test]
    fn names_short_and_long_are_held_and_found_alike() {
        // 22 bytes and less in the slot; longer ones shared: both read back the same.
        let names = ["", "a", "lock-0000000042", "exactly-twenty-two-byt", "twenty-three-bytes-long", "é-ü-ñ-日本"];
        let mut children = Children::default();
        for name in names {
            assert!(children.insert(name), "{name}");
        }
        let mut listed: Vec<&str> = children.iter().collect();
        listed.sort_unstable();
        let mut expected = names.to_vec();
        expected.sort_unstable();
        assert_eq!(listed, expected);
        assert!(matches!(ChildName::new("exactly-twenty-two-byt"), ChildName::Inline { len: 22, .. }));
        assert!(matches!(ChildName::new("twenty-three-bytes-long"), ChildName::Shared(_)));
        for name in names {
            assert!(children.contains(name) && children.remove(name), "{name}");
        }
        assert!(children.is_empty());
    }
}
