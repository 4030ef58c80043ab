//! The shared tree's candidates, measured before one was chosen (issue 11): one applied
//! tree is read by every core while one thread writes the next version, so the map of
//! znodes must give readers an immutable version in O(1) and let the writer change a few
//! nodes per batch without copying the rest. Each candidate maps a path to an
//! `Arc<Znode>` over one million znodes:
//!
//! - `std`: today's `HashMap` (the baseline: a version for readers is a full copy);
//! - `imbl`: imbl's HAMT (`imbl::HashMap`), 32-way nodes held in fixed arrays;
//! - `rpds`: rpds's HAMT (`HashTrieMapSync`), 32-way nodes held in exact-size vectors.
//!
//! For each: the cost of a version for readers (a clone), a lookup of a present path (what a read costs on any core), a batch of 64
//! setData applied to a fresh version (clone, then 64 copy-on-write replacements: what the
//! writer pays per batch while readers hold the previous version), a batch of 64 creates
//! (new paths) applied the same way, and the bytes the map
//! itself allocates per znode (counted by this bench's allocator, nodes and paths
//! excluded).
//!
//!     cargo bench --bench tree_candidates

use std::alloc::{GlobalAlloc, Layout};
use std::collections::HashMap;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ringkeeper::tree::data_tree::PathHasher;
use ringkeeper::tree::hash_trie::HashTrie;
use ringkeeper::tree::Znode;

const NODE_COUNT: usize = 1_000_000;
const BATCH_WRITES: usize = 64;

/// Counts the bytes live on the heap, to price each map's structure, over the server's
/// own allocator (copies on write allocate and free at every change).
struct CountingAllocator;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        mimalloc::MiMalloc.alloc(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        mimalloc::MiMalloc.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// The operations the tree needs of its node map.
trait NodeMap: Clone {
    fn empty() -> Self;
    fn insert(&mut self, path: Box<str>, node: Arc<Znode>);
    fn lookup(&self, path: &str) -> Option<&Arc<Znode>>;
    /// Replaces a node's version in place where the map allows it.
    fn set_version(&mut self, path: &str, version: i32);
}

impl NodeMap for HashMap<Box<str>, Arc<Znode>, PathHasher> {
    fn empty() -> Self {
        HashMap::default()
    }
    fn insert(&mut self, path: Box<str>, node: Arc<Znode>) {
        HashMap::insert(self, path, node);
    }
    fn lookup(&self, path: &str) -> Option<&Arc<Znode>> {
        self.get(path)
    }
    fn set_version(&mut self, path: &str, version: i32) {
        Arc::make_mut(self.get_mut(path).expect("present")).version = version;
    }
}

impl NodeMap for imbl::GenericHashMap<Box<str>, Arc<Znode>, PathHasher, imbl::shared_ptr::DefaultSharedPtr> {
    fn empty() -> Self {
        imbl::GenericHashMap::with_hasher(PathHasher::new())
    }
    fn insert(&mut self, path: Box<str>, node: Arc<Znode>) {
        imbl::GenericHashMap::insert(self, path, node);
    }
    fn lookup(&self, path: &str) -> Option<&Arc<Znode>> {
        self.get(path)
    }
    fn set_version(&mut self, path: &str, version: i32) {
        Arc::make_mut(self.get_mut(path).expect("present")).version = version;
    }
}

impl NodeMap for rpds::HashTrieMap<Box<str>, Arc<Znode>, archery::ArcK, PathHasher> {
    fn empty() -> Self {
        rpds::HashTrieMap::new_with_hasher_and_ptr_kind(PathHasher::new())
    }
    fn insert(&mut self, path: Box<str>, node: Arc<Znode>) {
        self.insert_mut(path, node);
    }
    fn lookup(&self, path: &str) -> Option<&Arc<Znode>> {
        self.get(path)
    }
    fn set_version(&mut self, path: &str, version: i32) {
        Arc::make_mut(self.get_mut(path).expect("present")).version = version;
    }
}

impl NodeMap for HashTrie<Box<str>, Arc<Znode>, PathHasher> {
    fn empty() -> Self {
        HashTrie::with_hasher(PathHasher::new())
    }
    fn insert(&mut self, path: Box<str>, node: Arc<Znode>) {
        self.insert_mut(path, node);
    }
    fn lookup(&self, path: &str) -> Option<&Arc<Znode>> {
        self.get(path)
    }
    fn set_version(&mut self, path: &str, version: i32) {
        Arc::make_mut(self.get_mut(path).expect("present")).version = version;
    }
}

fn path_of(index: usize) -> String {
    format!("/service/instances/member-{index:08}")
}

/// Builds the map and returns it with the heap bytes its structure takes per znode.
fn build<M: NodeMap>() -> (M, f64) {
    let nodes: Vec<(Box<str>, Arc<Znode>)> =
        (0..NODE_COUNT).map(|index| (path_of(index).into(), Arc::new(Znode::default()))).collect();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut map = M::empty();
    for (path, node) in nodes {
        map.insert(path, node);
    }
    // The vector that held the entries is gone: what grew is the map's structure.
    let structure = LIVE_BYTES.load(Ordering::Relaxed) - before;
    (map, structure as f64 / NODE_COUNT as f64)
}

fn candidate<M: NodeMap>(c: &mut Criterion, name: &str) {
    let (map, bytes_per_node) = build::<M>();
    eprintln!("{name}: {bytes_per_node:.1} bytes of map structure per znode ({NODE_COUNT} znodes)");
    let probes: Vec<String> = (0..4096).map(|i| path_of(i * 7919 % NODE_COUNT)).collect();
    let mut next = 0;
    c.bench_function(&format!("tree_lookup_{name}"), |b| {
        b.iter(|| {
            next = (next + 1) % probes.len();
            map.lookup(&probes[next]).expect("present").version
        })
    });
    c.bench_function(&format!("tree_publish_version_{name}"), |b| b.iter(|| map.clone()));
    let mut round = 0;
    c.bench_function(&format!("tree_apply_64_sets_{name}"), |b| {
        b.iter_batched(
            // A reader holds the published version, so every change copies on write.
            || map.clone(),
            |mut version| {
                round += 1;
                for write in 0..BATCH_WRITES {
                    version.set_version(&probes[(round * BATCH_WRITES + write) % probes.len()], round as i32);
                }
                version
            },
            BatchSize::LargeInput,
        )
    });
    let mut created = NODE_COUNT;
    c.bench_function(&format!("tree_apply_64_creates_{name}"), |b| {
        b.iter_batched(
            || {
                let nodes: Vec<(Box<str>, Arc<Znode>)> = (created..created + BATCH_WRITES)
                    .map(|index| (path_of(index).into(), Arc::new(Znode::default())))
                    .collect();
                created += BATCH_WRITES;
                (map.clone(), nodes)
            },
            |(mut version, nodes)| {
                for (path, node) in nodes {
                    version.insert(path, node);
                }
                version
            },
            BatchSize::LargeInput,
        )
    });
}

fn candidates(c: &mut Criterion) {
    candidate::<HashMap<Box<str>, Arc<Znode>, PathHasher>>(c, "std");
    candidate::<imbl::GenericHashMap<Box<str>, Arc<Znode>, PathHasher, imbl::shared_ptr::DefaultSharedPtr>>(c, "imbl");
    candidate::<rpds::HashTrieMap<Box<str>, Arc<Znode>, archery::ArcK, PathHasher>>(c, "rpds");
    candidate::<HashTrie<Box<str>, Arc<Znode>, PathHasher>>(c, "hash_trie");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = candidates
}
criterion_main!(benches);
