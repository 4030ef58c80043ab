//! Interned ACL lists: most znodes share a handful of ACLs, so each node stores a small
//! index instead of its own list, as in ZooKeeper's `ReferenceCountedACLCache`.
//!
//! Unlike ZooKeeper's cache, entries are not counted or freed while the server runs: a
//! list stays until the next restart, which rebuilds the table from the snapshot's nodes
//! (only lists in use). The table grows only with distinct lists that writes created,
//! and counting would cost a persistent-map update on every create and delete.

use std::sync::Arc;

use rkyv::vec::ArchivedVec;
use rpds::{HashTrieMapSync, VectorSync};

use crate::proto::acl::Acl;
use crate::txn::ArchivedAclEntry;

/// Persistent, as the tree is: a version of the tree shares its table with the next.
#[derive(Debug, Clone)]
pub struct AclTable {
    lists: VectorSync<Arc<[Acl]>>,
    ids: HashTrieMapSync<Vec<Acl>, u32>,
    /// The id the last lookup found: consecutive creates and snapshot nodes nearly always
    /// carry the same ACL, and comparing with it costs no allocation or hashing.
    last_id: Option<u32>,
}

impl Default for AclTable {
    fn default() -> Self {
        AclTable { lists: VectorSync::new_sync(), ids: HashTrieMapSync::new_sync(), last_id: None }
    }
}

impl AclTable {
    /// The id of a logged ACL (read in place from a transaction or snapshot), adding it if
    /// it is new.
    pub fn intern_archived(&mut self, entries: &ArchivedVec<ArchivedAclEntry>) -> u32 {
        if let Some(id) = self.last_id {
            if same_entries(self.get(id), entries) {
                return id;
            }
        }
        let id = self.intern(crate::txn::acl_of(entries));
        self.last_id = Some(id);
        id
    }

    /// The id of `acl`, adding it if it is new.
    pub fn intern(&mut self, acl: Vec<Acl>) -> u32 {
        if let Some(&id) = self.ids.get(&acl) {
            return id;
        }
        let id = u32::try_from(self.lists.len()).expect("fewer than 2^32 distinct ACLs");
        self.lists.push_back_mut(Arc::from(acl.as_slice()));
        self.ids.insert_mut(acl, id);
        assert_eq!(self.lists.len(), self.ids.size());
        id
    }

    pub fn get(&self, id: u32) -> &[Acl] {
        self.lists.get(id as usize).expect("interned ids are never dropped")
    }

    /// The list itself, shared: validation holds it without copying the entries.
    pub fn shared(&self, id: u32) -> Arc<[Acl]> {
        self.lists.get(id as usize).expect("interned ids are never dropped").clone()
    }

    pub fn len(&self) -> usize {
        self.lists.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }
}

fn same_entries(list: &[Acl], entries: &ArchivedVec<ArchivedAclEntry>) -> bool {
    list.len() == entries.len()
        && list.iter().zip(entries.iter()).all(|(acl, entry)| {
            acl.perms == entry.perms.to_native() && acl.scheme == entry.scheme.as_str() && acl.id == entry.id.as_str()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::acl_entries;

    fn archived(acl: &[Acl]) -> rkyv::util::AlignedVec {
        rkyv::to_bytes::<rkyv::rancor::Error>(&acl_entries(acl)).unwrap()
    }

    fn access(bytes: &[u8]) -> &ArchivedVec<ArchivedAclEntry> {
        rkyv::access::<ArchivedVec<ArchivedAclEntry>, rkyv::rancor::Error>(bytes).unwrap()
    }

    #[test]
    fn archived_acls_intern_to_the_same_ids_as_protocol_acls_whatever_the_order_of_lookups() {
        let mut table = AclTable::default();
        let open = vec![Acl::open_unsafe()];
        let read = vec![Acl::read_unsafe()];
        let open_id = table.intern(open.clone());
        let (open_bytes, read_bytes) = (archived(&open), archived(&read));
        assert_eq!(table.intern_archived(access(&open_bytes)), open_id);
        // The cached last id must not answer for a different list.
        let read_id = table.intern_archived(access(&read_bytes));
        assert_ne!(read_id, open_id);
        assert_eq!(table.get(read_id), read.as_slice());
        assert_eq!(table.intern_archived(access(&open_bytes)), open_id);
        assert_eq!(table.intern_archived(access(&read_bytes)), read_id);
        assert_eq!(table.len(), 2);
    }
}
