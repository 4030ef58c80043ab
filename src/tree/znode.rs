//! A znode: data, ACL, metadata and the names of its children.

use std::collections::HashSet;

use crate::proto::Stat;

/// One node of the data tree. `data_length` and `num_children` are derived, not stored.
#[derive(Debug, Clone, Default)]
pub struct Znode {
    pub data: Box<[u8]>,
    /// Index into the tree's `AclTable`.
    pub acl_id: u32,
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime_ms: i64,
    pub mtime_ms: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
    pub children: HashSet<Box<str>>,
}

impl Znode {
    pub fn stat(&self) -> Stat {
        Stat {
            czxid: self.czxid,
            mzxid: self.mzxid,
            ctime: self.ctime_ms,
            mtime: self.mtime_ms,
            version: self.version,
            cversion: self.cversion,
            aversion: self.aversion,
            ephemeral_owner: self.ephemeral_owner,
            data_length: self.data.len() as i32,
            num_children: self.children.len() as i32,
            pzxid: self.pzxid,
        }
    }
}
