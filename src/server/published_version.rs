//! The newest version of the tree, where a core that let go of its own can take it back.
//!
//! Every version another core holds makes core 0 copy, on its next batch, each branch
//! that batch touches, and the holder then frees the branches it replaced. A core that
//! served no read since its previous batch lets go of its version at the end of the
//! next one (`CoreState::deliver`), so under writes alone core 0 changes the tree in
//! place, as with one core (`perf/README.md`, "Cores that do not read"). When a read
//! arrives, the core takes the version back from here, provided it is still the one the
//! core last delivered: a newer one may not be read before its watch events are
//! delivered on that core, and then the read waits for that delivery, which is on its way.
//!
//! Core 0 withdraws the version before it applies a batch in place and publishes the
//! result after; a core that looks in between finds nothing and waits for that batch's
//! delivery. The lock makes each of those steps one: a version is taken either before
//! the withdrawal (and core 0 then sees it shared and copies) or not at all.

use std::sync::{Arc, Mutex};

use crate::tree::DataTree;

#[derive(Default)]
pub struct PublishedVersion {
    slot: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    /// Core 0 numbers the versions it publishes; a core knows a version by its number
    /// (an address can come back: a version applied in place keeps its allocation).
    number: u64,
    tree: Option<Arc<DataTree>>,
}

impl PublishedVersion {
    /// Core 0: `tree` is the newest version, numbered `number`.
    pub fn publish(&self, number: u64, tree: Arc<DataTree>) {
        let mut slot = self.slot.lock().expect("not poisoned");
        assert!(number > slot.number, "version numbers only grow");
        *slot = Slot { number, tree: Some(tree) };
    }

    /// Core 0, before it changes the newest version in place: nobody can take it from
    /// here until the next `publish`.
    pub fn withdraw(&self) -> Option<Arc<DataTree>> {
        self.slot.lock().expect("not poisoned").tree.take()
    }

    /// Another core: the version numbered `number`, if it is still the published one.
    pub fn take(&self, number: u64) -> Option<Arc<DataTree>> {
        let slot = self.slot.lock().expect("not poisoned");
        if slot.number != number {
            return None;
        }
        slot.tree.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_taken_only_while_published_and_only_by_its_number() {
        let published = PublishedVersion::default();
        assert!(published.take(1).is_none(), "nothing published yet");
        let first = Arc::new(DataTree::new());
        published.publish(1, first.clone());
        let taken = published.take(1).expect("the published version");
        assert!(Arc::ptr_eq(&taken, &first));
        assert!(published.withdraw().is_some());
        assert!(published.take(1).is_none(), "withdrawn while core 0 applies");
        published.publish(2, first);
        assert!(published.take(1).is_none(), "a newer version is not the one delivered");
        assert!(published.take(2).is_some());
    }
}
