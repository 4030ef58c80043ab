//! Interned ACL lists: most znodes share a handful of ACLs, so each node stores a small
//! index instead of its own list (ZooKeeper's `ReferenceCountedACLCache` does the same).

use std::collections::HashMap;
use std::sync::Arc;

use crate::proto::acl::Acl;

#[derive(Debug, Default)]
pub struct AclTable {
    lists: Vec<Arc<[Acl]>>,
    ids: HashMap<Vec<Acl>, u32>,
}

impl AclTable {
    /// The id of `acl`, adding it if it is new.
    pub fn intern(&mut self, acl: Vec<Acl>) -> u32 {
        if let Some(&id) = self.ids.get(&acl) {
            return id;
        }
        let id = u32::try_from(self.lists.len()).expect("fewer than 2^32 distinct ACLs");
        self.lists.push(Arc::from(acl.as_slice()));
        self.ids.insert(acl, id);
        assert_eq!(self.lists.len(), self.ids.len());
        id
    }

    pub fn get(&self, id: u32) -> &[Acl] {
        &self.lists[id as usize]
    }

    /// The list itself, shared: validation holds it without copying the entries.
    pub fn shared(&self, id: u32) -> Arc<[Acl]> {
        self.lists[id as usize].clone()
    }

    pub fn len(&self) -> usize {
        self.lists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}
