//! A znode: data, ACL, metadata and the names of its children.

use std::collections::HashSet;

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
    pub children: HashSet<Box<str>, super::data_tree::PathHasher>,
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
            ephemeral_owner: if self.ephemeral_owner < 0 { 0 } else { self.ephemeral_owner },
            data_length: self.data_len() as i32,
            num_children,
            pzxid: self.pzxid,
        }
    }
}
