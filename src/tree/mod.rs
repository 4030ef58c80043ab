//! The data tree: znodes with ZooKeeper's Stat semantics, the validation of writes
//! against it, and the deterministic application of transactions. Sans-IO.

pub mod acl_check;
pub mod acl_table;
pub mod data_tree;
pub mod digest;
pub mod hash_trie;
pub mod path;
mod prefetch;
pub mod prepare;
pub mod quota;
pub mod snapshot;
pub mod znode;

pub use data_tree::{DataTree, Outcome, Trigger};
pub use prepare::{prepare, Caller, PendingChanges};
pub use znode::Znode;
