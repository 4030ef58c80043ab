//! A persistent hash set of entries: a hash array mapped trie whose nodes are shared by
//! reference count, so `clone` is O(1) and a change copies only the nodes on its path (the
//! tree's versions, `DataTree`). It replaced rpds's `HashTrieMap` for the tree's two
//! largest structures: rpds wraps every entry in a leaf node of its own (a 48-byte
//! allocation and an 8-byte slot per entry); here a branch's slot holds the entry itself
//! (`cargo bench --bench tree_candidates`, and perf/README.md for a million znodes).
//!
//! Layout: a branch has up to 64 slots, indexed by 6 bits of the key's hash per level,
//! stored densely behind a 64-bit occupancy bitmap. A slot is an entry, a deeper branch,
//! or, once all 64 bits of the hash are spent, a list of entries whose hashes are equal.
//! A removal that leaves a branch with a single entry puts that entry in the branch's
//! place, so the trie stays as shallow as its keys require.
//!
//! What a slot holds is the `Entry`'s choice, and it decides what copying a branch costs:
//! a shared entry (`Pair`, the node map's: a path and its znode) adds one to a count in
//! another allocation, up to 64 cache misses per branch copied; an entry held by value
//! (a child's name, `znode::ChildName`) is copied with the branch's own bytes.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

const BITS_PER_LEVEL: u32 = 6;
const SLOTS_PER_BRANCH: u32 = 1 << BITS_PER_LEVEL;
/// Levels that still have hash bits to index by (the last one gets the 4 left over).
const LEVELS_MAX: u32 = u64::BITS.div_ceil(BITS_PER_LEVEL);

/// What a trie holds, found by its key. Cloned whenever a branch holding it is copied.
pub trait Entry: Clone {
    type Key: Hash + Eq + ?Sized;
    fn key(&self) -> &Self::Key;
}

/// A map's entry: a key and its value, shared between versions until one changes it.
pub struct Pair<K, V>(Arc<(K, V)>);

impl<K, V> Clone for Pair<K, V> {
    fn clone(&self) -> Self {
        Pair(self.0.clone())
    }
}

impl<K: Hash + Eq, V> Entry for Pair<K, V> {
    type Key = K;
    fn key(&self) -> &K {
        &self.0 .0
    }
}

pub struct Trie<E, S> {
    root: Arc<Branch<E>>,
    len: usize,
    hasher: S,
}

/// A persistent hash map.
pub type HashTrie<K, V, S> = Trie<Pair<K, V>, S>;

struct Branch<E> {
    occupied: u64,
    slots: Vec<Slot<E>>,
}

#[derive(Clone)]
enum Slot<E> {
    Entry(E),
    Branch(Arc<Branch<E>>),
    /// Entries whose 64-bit hashes are all equal, at least two.
    Collision(Arc<Vec<E>>),
}

impl<E, S: Clone> Clone for Trie<E, S> {
    fn clone(&self) -> Self {
        Trie { root: self.root.clone(), len: self.len, hasher: self.hasher.clone() }
    }
}

impl<E: Clone> Clone for Branch<E> {
    fn clone(&self) -> Self {
        Branch { occupied: self.occupied, slots: self.slots.clone() }
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug, S> std::fmt::Debug for HashTrie<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The slot index of `hash` at `level`.
fn index_at(hash: u64, level: u32) -> u32 {
    assert!(level < LEVELS_MAX);
    ((hash >> (level * BITS_PER_LEVEL)) & u64::from(SLOTS_PER_BRANCH - 1)) as u32
}

impl<E> Branch<E> {
    fn empty() -> Branch<E> {
        Branch { occupied: 0, slots: Vec::new() }
    }

    /// Where slot `index` is (or would go) in the dense `slots`.
    fn position(&self, index: u32) -> usize {
        (self.occupied & ((1u64 << index) - 1)).count_ones() as usize
    }

    fn slot(&self, index: u32) -> Option<&Slot<E>> {
        (self.occupied & (1u64 << index) != 0).then(|| &self.slots[self.position(index)])
    }

    fn put(&mut self, index: u32, slot: Slot<E>) {
        assert_eq!(self.occupied & (1u64 << index), 0, "slot {index} is free");
        let position = self.position(index);
        self.slots.insert(position, slot);
        self.occupied |= 1u64 << index;
        assert_eq!(self.slots.len(), self.occupied.count_ones() as usize);
    }

    fn take(&mut self, index: u32) -> Slot<E> {
        assert_ne!(self.occupied & (1u64 << index), 0, "slot {index} is used");
        let slot = self.slots.remove(self.position(index));
        self.occupied &= !(1u64 << index);
        slot
    }

    /// A branch holding one entry and nothing else is replaced by that entry.
    fn sole_entry(&self) -> Option<&E> {
        match self.slots.as_slice() {
            [Slot::Entry(entry)] => Some(entry),
            _ => None,
        }
    }
}

impl<E: Entry, S: BuildHasher> Trie<E, S> {
    pub fn with_hasher(hasher: S) -> Trie<E, S> {
        Trie { root: Arc::new(Branch::empty()), len: 0, hasher }
    }

    pub fn find<Q>(&self, key: &Q) -> Option<&E>
    where
        E::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find_hashed(key, self.hasher.hash_one(key))
    }

    /// `find` with the key's hash already computed (each operation hashes its key once).
    fn find_hashed<Q>(&self, key: &Q, hash: u64) -> Option<&E>
    where
        E::Key: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mut branch = &*self.root;
        for level in 0..LEVELS_MAX {
            match branch.slot(index_at(hash, level))? {
                Slot::Entry(entry) => return (entry.key().borrow() == key).then_some(entry),
                Slot::Branch(deeper) => branch = deeper,
                Slot::Collision(entries) => return entries.iter().find(|entry| entry.key().borrow() == key),
            }
        }
        unreachable!("the trie is at most LEVELS_MAX deep")
    }

    /// Asks the CPU for the branches on the paths of `keys`, a level at a time for all of
    /// them, so that a batch's misses overlap instead of following one another; the
    /// walks that come after find the branches cached. Returns how many branches it asked
    /// for below the root.
    pub fn fetch_paths<'k, Q>(&self, keys: impl Iterator<Item = &'k Q>) -> usize
    where
        E::Key: Borrow<Q>,
        Q: Hash + ?Sized + 'k,
    {
        let mut walks: Vec<(u64, &Branch<E>)> = keys.map(|key| (self.hasher.hash_one(key), &*self.root)).collect();
        let mut fetched = 0;
        for level in 0..LEVELS_MAX {
            // Each branch was asked for in the round before: first the slot every walk
            // reads in it, for all walks, then the deeper branch each slot points to.
            for &(hash, branch) in &walks {
                if let Some(slot) = branch.slot(index_at(hash, level)) {
                    super::prefetch::fetch(slot as *const Slot<E> as *const u8);
                }
            }
            walks.retain_mut(|(hash, branch)| match branch.slot(index_at(*hash, level)) {
                Some(Slot::Branch(deeper)) => {
                    super::prefetch::fetch(Arc::as_ptr(deeper) as *const u8);
                    *branch = deeper;
                    true
                }
                _ => false,
            });
            fetched += walks.len();
            if walks.is_empty() {
                break;
            }
        }
        fetched
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        E::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(key).is_some()
    }

    /// The entry of `key`, to change in this version only: the branches on its path are
    /// copied first where another version shares them. The change must keep the key.
    pub fn find_mut<Q>(&mut self, key: &Q) -> Option<&mut E>
    where
        E::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Only a present key's path is copied.
        let hash = self.hasher.hash_one(key);
        self.find_hashed(key, hash)?;
        let mut branch = Arc::make_mut(&mut self.root);
        for level in 0..LEVELS_MAX {
            let position = branch.position(index_at(hash, level));
            match &mut branch.slots[position] {
                Slot::Entry(entry) => return Some(entry),
                Slot::Branch(deeper) => branch = Arc::make_mut(deeper),
                Slot::Collision(entries) => {
                    return Arc::make_mut(entries).iter_mut().find(|entry| entry.key().borrow() == key)
                }
            }
        }
        unreachable!("the trie is at most LEVELS_MAX deep")
    }

    /// Inserts or replaces the entry with the same key; true if the key is new.
    pub fn insert_entry(&mut self, entry: E) -> bool {
        let hash = self.hasher.hash_one(entry.key());
        let hasher = &self.hasher;
        let added = insert_into(Arc::make_mut(&mut self.root), entry, hash, 0, &|key: &E::Key| hasher.hash_one(key));
        self.len += usize::from(added);
        added
    }

    /// Removes `key`; true if it was there.
    pub fn remove_mut<Q>(&mut self, key: &Q) -> bool
    where
        E::Key: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        if self.find_hashed(key, hash).is_none() {
            return false;
        }
        remove_from(Arc::make_mut(&mut self.root), key, hash, 0);
        self.len -= 1;
        true
    }
}

impl<K: Hash + Eq, V: Clone, S: BuildHasher> HashTrie<K, V, S> {
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.find(key).map(|pair| &pair.0 .1)
    }

    /// The value of `key`, to change in this version only: the branches on its path and
    /// the entry are copied first where another version shares them.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        K: Clone,
    {
        self.find_mut(key).map(|pair| &mut Arc::make_mut(&mut pair.0).1)
    }

    /// Inserts or replaces; true if `key` is new.
    pub fn insert_mut(&mut self, key: K, value: V) -> bool {
        self.insert_entry(Pair(Arc::new((key, value))))
    }
}

impl<E, S> Trie<E, S> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entries in the trie's own order (by hash).
    pub fn entries(&self) -> Entries<'_, E> {
        Entries { stack: vec![self.root.slots.iter()], collision: [].iter() }
    }
}

impl<K, V, S> HashTrie<K, V, S> {
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> + Clone {
        self.entries().map(|pair| (&pair.0 .0, &pair.0 .1))
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.iter().map(|(key, _)| key)
    }
}

/// Puts `entry` (whose key hashes to `hash`) in `branch` at `level`; true if its key is new.
fn insert_into<E: Entry>(
    branch: &mut Branch<E>,
    entry: E,
    hash: u64,
    level: u32,
    hash_of: &dyn Fn(&E::Key) -> u64,
) -> bool {
    let index = index_at(hash, level);
    let Some(position) = branch.slot(index).map(|_| branch.position(index)) else {
        branch.put(index, Slot::Entry(entry));
        return true;
    };
    match &mut branch.slots[position] {
        Slot::Branch(deeper) => insert_into(Arc::make_mut(deeper), entry, hash, level + 1, hash_of),
        Slot::Collision(entries) => {
            let entries = Arc::make_mut(entries);
            match entries.iter_mut().find(|present| present.key() == entry.key()) {
                Some(present) => {
                    *present = entry;
                    false
                }
                None => {
                    entries.push(entry);
                    true
                }
            }
        }
        Slot::Entry(present) if present.key() == entry.key() => {
            *present = entry;
            false
        }
        Slot::Entry(present) => {
            let present_hash = hash_of(present.key());
            let present = present.clone();
            branch.slots[position] = split(present, present_hash, entry, hash, level + 1);
            true
        }
    }
}

/// The slot for two entries with different keys that met at `level - 1`.
fn split<E>(first: E, first_hash: u64, second: E, second_hash: u64, level: u32) -> Slot<E> {
    if first_hash == second_hash {
        return Slot::Collision(Arc::new(vec![first, second]));
    }
    // Hashes that differ differ in some level's bits, so this ends within LEVELS_MAX.
    let mut branch = Branch::empty();
    let (first_index, second_index) = (index_at(first_hash, level), index_at(second_hash, level));
    if first_index == second_index {
        branch.put(first_index, split(first, first_hash, second, second_hash, level + 1));
    } else {
        branch.put(first_index, Slot::Entry(first));
        branch.put(second_index, Slot::Entry(second));
    }
    Slot::Branch(Arc::new(branch))
}

/// Removes `key`, which the caller found present, from `branch` at `level`.
fn remove_from<E, Q>(branch: &mut Branch<E>, key: &Q, hash: u64, level: u32)
where
    E: Entry,
    E::Key: Borrow<Q>,
    Q: Eq + ?Sized,
{
    let index = index_at(hash, level);
    let position = branch.position(index);
    let replacement = match &mut branch.slots[position] {
        Slot::Entry(entry) => {
            assert!(entry.key().borrow() == key, "the key is present");
            None
        }
        Slot::Branch(deeper) => {
            let deeper = Arc::make_mut(deeper);
            remove_from(deeper, key, hash, level + 1);
            match deeper.sole_entry() {
                Some(entry) => Some(Slot::Entry(entry.clone())),
                None => return,
            }
        }
        Slot::Collision(entries) => {
            let entries = Arc::make_mut(entries);
            let at = entries.iter().position(|entry| entry.key().borrow() == key).expect("the key is present");
            entries.swap_remove(at);
            match entries.as_slice() {
                [only] => Some(Slot::Entry(only.clone())),
                _ => return,
            }
        }
    };
    match replacement {
        Some(slot) => branch.slots[position] = slot,
        None => {
            branch.take(index);
        }
    }
}

/// Entries in the trie's own order (by hash), depth first.
pub struct Entries<'a, E> {
    stack: Vec<std::slice::Iter<'a, Slot<E>>>,
    collision: std::slice::Iter<'a, E>,
}

// By hand: a derive would ask `E: Clone`, and only the positions are cloned.
impl<E> Clone for Entries<'_, E> {
    fn clone(&self) -> Self {
        Entries { stack: self.stack.clone(), collision: self.collision.clone() }
    }
}

impl<'a, E> Iterator for Entries<'a, E> {
    type Item = &'a E;

    fn next(&mut self) -> Option<&'a E> {
        if let Some(entry) = self.collision.next() {
            return Some(entry);
        }
        loop {
            let slot = match self.stack.last_mut()?.next() {
                Some(slot) => slot,
                None => {
                    self.stack.pop();
                    continue;
                }
            };
            match slot {
                Slot::Entry(entry) => return Some(entry),
                Slot::Branch(branch) => {
                    assert!(self.stack.len() < LEVELS_MAX as usize);
                    let siblings = self.stack.last().expect("the slot came from it").as_slice();
                    fetch_branches_after(siblings);
                    self.stack.push(branch.slots.iter());
                }
                Slot::Collision(entries) => {
                    self.collision = entries.iter();
                    return self.collision.next();
                }
            }
        }
    }
}

/// Asks for the branches a walk enters after the one it enters now, among the `siblings`
/// that follow it: the slots of the next one, whose branch was asked for at the previous
/// descent, and the branch after that. A branch and its slots are two allocations in an
/// order random in memory, and a walk otherwise waited on both at every descent.
fn fetch_branches_after<E>(siblings: &[Slot<E>]) {
    const LOOKED_AT_MAX: usize = 4;
    let mut branches = siblings.iter().take(LOOKED_AT_MAX).filter_map(|slot| match slot {
        Slot::Branch(branch) => Some(branch),
        _ => None,
    });
    if let Some(next) = branches.next() {
        super::prefetch::fetch(next.slots.as_ptr() as *const u8);
    }
    if let Some(after) = branches.next() {
        super::prefetch::fetch(Arc::as_ptr(after) as *const u8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Hashes every key alike below bit `shift`: forces deep branches and collision lists.
    #[derive(Clone, Default)]
    struct CoarseHasher {
        shift: u32,
    }

    struct Coarse(u64, u32);

    impl std::hash::Hasher for Coarse {
        fn finish(&self) -> u64 {
            self.0.checked_shl(self.1).unwrap_or(0)
        }
        fn write(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                self.0 = self.0.wrapping_mul(31).wrapping_add(u64::from(byte));
            }
        }
    }

    impl BuildHasher for CoarseHasher {
        type Hasher = Coarse;
        fn build_hasher(&self) -> Coarse {
            Coarse(0, self.shift)
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u16, u32),
        Remove(u16),
        Change(u16, u32),
        Snapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u16..300, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            2 => (0u16..300).prop_map(Op::Remove),
            2 => (0u16..300, any::<u32>()).prop_map(|(k, v)| Op::Change(k, v)),
            1 => Just(Op::Snapshot),
        ]
    }

    fn contents<S: BuildHasher>(trie: &HashTrie<String, u32, S>) -> HashMap<String, u32> {
        let listed: Vec<_> = trie.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let map: HashMap<_, _> = listed.iter().cloned().collect();
        assert_eq!(map.len(), listed.len(), "each key is listed once");
        map
    }

    proptest! {
        #[test]
        fn the_trie_holds_what_a_hash_map_holds_and_older_versions_never_change(
            ops in prop::collection::vec(op(), 1..400),
            shift in prop_oneof![Just(0u32), Just(40), Just(58), Just(64)],
        ) {
            let mut trie = HashTrie::with_hasher(CoarseHasher { shift });
            let mut model: HashMap<String, u32> = HashMap::new();
            let mut versions = Vec::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let key = format!("/k{k}");
                        prop_assert_eq!(trie.insert_mut(key.clone(), v), model.insert(key, v).is_none());
                    }
                    Op::Remove(k) => {
                        let key = format!("/k{k}");
                        prop_assert_eq!(trie.remove_mut(key.as_str()), model.remove(&key).is_some());
                    }
                    Op::Change(k, v) => {
                        let key = format!("/k{k}");
                        let changed = trie.get_mut(key.as_str()).map(|value| *value = v).is_some();
                        prop_assert_eq!(changed, model.get_mut(&key).map(|value| *value = v).is_some());
                    }
                    Op::Snapshot => versions.push((trie.clone(), model.clone())),
                }
                prop_assert_eq!(trie.len(), model.len());
            }
            prop_assert_eq!(contents(&trie), model.clone());
            for key in model.keys() {
                prop_assert_eq!(trie.get(key.as_str()), model.get(key));
            }
            prop_assert!(!trie.contains_key("/absent"));
            for (version, expected) in versions {
                prop_assert_eq!(contents(&version), expected);
            }
        }
    }

    #[test]
    fn fetching_paths_ahead_follows_branches_as_deep_as_the_keys_go_and_stops_at_lists() {
        let keys: Vec<String> = (0..500).map(|k| format!("/k{k}")).collect();
        let fetched = |shift| {
            let mut trie = HashTrie::with_hasher(CoarseHasher { shift });
            for (value, key) in keys.iter().enumerate() {
                trie.insert_mut(key.clone(), value);
            }
            trie.fetch_paths(keys.iter().map(String::as_str))
        };
        // Hashes alike below bit 58 share their first nine levels: every walk goes at
        // least that deep. Random hashes spread 500 keys over two or three levels.
        let (deep, shallow, alike) = (fetched(58), fetched(0), fetched(64));
        assert!(deep >= 9 * keys.len(), "{deep}");
        assert!(0 < shallow && shallow <= 3 * keys.len(), "{shallow}");
        // All hashes equal: one list of entries in the root's slot, and no branch.
        assert_eq!(alike, 0);
    }

    #[test]
    fn removing_down_to_one_entry_leaves_no_branch_behind() {
        let mut trie = HashTrie::with_hasher(CoarseHasher { shift: 58 });
        for k in 0..100 {
            trie.insert_mut(format!("/k{k}"), k);
        }
        for k in 1..100 {
            assert!(trie.remove_mut(format!("/k{k}").as_str()));
        }
        assert!(matches!(trie.root.slots.as_slice(), [Slot::Entry(entry)] if entry.key() == "/k0"));
        assert!(trie.remove_mut("/k0") && trie.is_empty() && trie.root.slots.is_empty());
    }
}
