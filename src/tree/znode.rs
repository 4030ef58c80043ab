//! A znode: data, ACL, metadata and the names of its children.

use super::data_tree::PathHasher;
use super::hash_trie::HashTrie;
use crate::proto::Stat;

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
#[derive(Debug, Clone, Default)]
pub struct Children(Option<Box<ChildSet>>);

type ChildSet = HashTrie<Box<str>, (), PathHasher>;

impl Children {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |set| set.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Box<str>> {
        self.0.iter().flat_map(|set| set.keys())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|set| set.contains_key(name))
    }

    /// Adds `name`; false if it was there already.
    pub fn insert(&mut self, name: Box<str>) -> bool {
        let set = self.0.get_or_insert_with(|| Box::new(ChildSet::with_hasher(PathHasher::new())));
        set.insert_mut(name, ())
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
        assert!(children.insert("a".into()));
        assert!(!children.insert("a".into()), "a name is held once");
        assert!(children.insert("b".into()));
        assert_eq!((children.len(), children.contains("a")), (2, true));
        assert!(children.remove("a") && !children.remove("a"));
        assert!(children.remove("b"));
        assert!(children.0.is_none(), "the empty set is released");
        assert!(!children.remove("b"));
    }
}
