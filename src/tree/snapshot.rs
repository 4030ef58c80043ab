//! Snapshot images: the whole tree and its sessions at one zxid, as one rkyv archive.
//! Sans-IO: builds the archive from a tree and a tree from an archive read in place.
//!
//! A snapshot file is `[magic 8][zxid i64 LE][length u64 LE][crc32c u32 LE][pad 4][rkyv]`,
//! 32 bytes of header, so the archive starts 16-byte aligned in a mapped file.

use rkyv::rancor::{Error, Fallible};
use rkyv::ser::allocator::ArenaHandle;
use rkyv::ser::writer::IoWriter;
use rkyv::ser::{Allocator, Writer};
use rkyv::vec::{ArchivedVec, VecResolver};
use rkyv::{Archive, Deserialize, Place, Serialize};

use super::{DataTree, Znode};
use crate::proto::acl::Acl;
use crate::txn::{AclEntry, ArchivedAclEntry};
use rkyv::string::{ArchivedString, StringResolver};

pub const MAGIC: [u8; 8] = *b"RKSNAP\0\x01";
pub const HEADER_BYTES: usize = 32;

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotNode {
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub acl: Vec<AclEntry>,
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime_ms: i64,
    pub mtime_ms: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub pzxid: i64,
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSession {
    pub session_id: i64,
    pub timeout_ms: i32,
    pub password: [u8; 16],
}

#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct SnapshotImage {
    pub zxid: i64,
    pub nodes: Vec<SnapshotNode>,
    pub sessions: Vec<SnapshotSession>,
}

/// Serializes the tree into a snapshot file's bytes (header included), in memory.
pub fn encode(tree: &DataTree) -> Vec<u8> {
    in_memory(|bytes| encode_archive(tree, bytes))
}

/// A snapshot file's bytes, built in memory by `archive` (which writes after the header).
fn in_memory(archive: impl FnOnce(&mut Vec<u8>) -> std::io::Result<ArchiveSummary>) -> Vec<u8> {
    let mut bytes = vec![0; HEADER_BYTES];
    let summary = archive(&mut bytes).expect("writing into memory cannot fail");
    bytes[..HEADER_BYTES].copy_from_slice(&summary.header());
    bytes
}

/// Streams the tree's archive into `out`, which stands just after the header's room
/// (`HEADER_BYTES` written before it: rkyv's positions are relative, and 32 keeps the
/// archive 16-byte aligned in the file). Returns what the header must say.
///
/// Nodes are written in the tree's own order, which `load` accepts (sorting them by path,
/// as before, compared strings with long shared prefixes: about 8% of the server's CPU
/// under creates on a growing tree). Each
/// node is archived straight from the tree (`NodeOf`) and goes out at once: the image is
/// never held whole in memory, neither as owned copies of every path and value nor as
/// the archive (a quarter of a gigabyte for a million znodes).
pub fn encode_archive<W: std::io::Write>(tree: &DataTree, out: W) -> std::io::Result<ArchiveSummary> {
    let mut sessions: Vec<SnapshotSession> = tree
        .sessions()
        .map(|(session_id, timeout_ms, password)| SnapshotSession { session_id, timeout_ms, password })
        .collect();
    sessions.sort_by_key(|session| session.session_id);
    let zxid = tree.last_zxid();
    let image = ImageOf { zxid, nodes: NodesOf { tree }, sessions };
    serialize_archive(&image, zxid, out)
}

/// A snapshot file's bytes for an image built elsewhere (an import).
pub fn encode_image(image: &SnapshotImage) -> Vec<u8> {
    in_memory(|bytes| serialize_archive(image, image.zxid, bytes))
}

/// What a snapshot file's header says about the archive after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveSummary {
    pub zxid: i64,
    pub length: u64,
    pub crc: u32,
}

impl ArchiveSummary {
    pub fn header(&self) -> [u8; HEADER_BYTES] {
        let mut header = [0; HEADER_BYTES];
        header[..8].copy_from_slice(&MAGIC);
        header[8..16].copy_from_slice(&self.zxid.to_le_bytes());
        header[16..24].copy_from_slice(&self.length.to_le_bytes());
        header[24..28].copy_from_slice(&self.crc.to_le_bytes());
        header
    }
}

fn serialize_archive<T, W>(image: &T, zxid: i64, out: W) -> std::io::Result<ArchiveSummary>
where
    W: std::io::Write,
    T: for<'a> Serialize<rkyv::api::high::HighSerializer<IoWriter<Checksummed<W>>, ArenaHandle<'a>, Error>>,
{
    let checksummed = Checksummed { out, pending: Vec::with_capacity(PENDING_BYTES_MAX), length: 0, crc: 0 };
    let writer = IoWriter::with_pos(checksummed, HEADER_BYTES);
    let written = rkyv::api::high::to_bytes_in::<_, Error>(image, writer).map_err(std::io::Error::other)?;
    let (length, crc) = written.into_inner().finish()?;
    Ok(ArchiveSummary { zxid, length, crc })
}

/// rkyv writes a field at a time; the checksum and the writer below get slices this long.
const PENDING_BYTES_MAX: usize = 64 << 10;

/// Passes bytes on a slice at a time and keeps their running length and crc32c.
struct Checksummed<W> {
    out: W,
    pending: Vec<u8>,
    length: u64,
    crc: u32,
}

impl<W: std::io::Write> Checksummed<W> {
    fn pass_on(&mut self) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.pending);
        self.length += self.pending.len() as u64;
        self.out.write_all(&self.pending)?;
        self.pending.clear();
        Ok(())
    }

    /// Passes on what is left; the length and checksum of everything written.
    fn finish(mut self) -> std::io::Result<(u64, u32)> {
        self.pass_on()?;
        self.out.flush()?;
        Ok((self.length, self.crc))
    }
}

impl<W: std::io::Write> std::io::Write for Checksummed<W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= PENDING_BYTES_MAX {
            self.pass_on()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A tree's snapshot image as rkyv writes it: archived exactly as `SnapshotImage`, with
/// the nodes made one at a time from the tree.
struct ImageOf<'a> {
    zxid: i64,
    nodes: NodesOf<'a>,
    sessions: Vec<SnapshotSession>,
}

struct ImageOfResolver {
    nodes: VecResolver,
    sessions: VecResolver,
}

impl Archive for ImageOf<'_> {
    type Archived = ArchivedSnapshotImage;
    type Resolver = ImageOfResolver;

    fn resolve(&self, resolver: ImageOfResolver, out: Place<ArchivedSnapshotImage>) {
        rkyv::munge::munge!(let ArchivedSnapshotImage { zxid, nodes, sessions } = out);
        self.zxid.resolve((), zxid);
        self.nodes.resolve(resolver.nodes, nodes);
        self.sessions.resolve(resolver.sessions, sessions);
    }
}

impl<S> Serialize<S> for ImageOf<'_>
where
    S: Fallible + Allocator + Writer + ?Sized,
    S::Error: rkyv::rancor::Source,
    Vec<SnapshotSession>: Serialize<S, Archived = ArchivedVec<ArchivedSnapshotSession>, Resolver = VecResolver>,
{
    fn serialize(&self, serializer: &mut S) -> Result<ImageOfResolver, S::Error> {
        Ok(ImageOfResolver { nodes: self.nodes.serialize(serializer)?, sessions: self.sessions.serialize(serializer)? })
    }
}

/// A tree's nodes, archived as `Vec<SnapshotNode>`.
struct NodesOf<'a> {
    tree: &'a DataTree,
}

impl Archive for NodesOf<'_> {
    type Archived = ArchivedVec<ArchivedSnapshotNode>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: VecResolver, out: Place<Self::Archived>) {
        ArchivedVec::resolve_from_len(self.tree.node_count(), resolver, out);
    }
}

impl<S> Serialize<S> for NodesOf<'_>
where
    S: Fallible + Allocator + Writer + ?Sized,
    S::Error: rkyv::rancor::Source,
{
    fn serialize(&self, serializer: &mut S) -> Result<VecResolver, S::Error> {
        let tree = self.tree;
        let nodes = tree.nodes_fetched_ahead().map(move |(path, node)| NodeOf { path, node, acl: tree.acl(node) });
        let counted = Counted { items: nodes, left: tree.node_count() };
        ArchivedVec::<ArchivedSnapshotNode>::serialize_from_iter::<NodeOf, _, _>(counted, serializer)
    }
}

/// An iterator whose length is known ahead (rkyv writes a vector's length first).
#[derive(Clone)]
struct Counted<I> {
    items: I,
    left: usize,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let item = self.items.next();
        match item {
            Some(_) => self.left = self.left.checked_sub(1).expect("no more items than counted"),
            None => assert_eq!(self.left, 0, "as many items as counted"),
        }
        item
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

/// A node archived as `SnapshotNode` straight from the tree: its path, data and ACL are
/// written from where the tree holds them, with no owned record made first (rkyv walks a
/// vector's items twice, so that was two copies of every path and value, and their
/// allocations, per snapshot).
struct NodeOf<'a> {
    path: &'a str,
    node: &'a Znode,
    acl: &'a [Acl],
}

impl NodeOf<'_> {
    fn data(&self) -> Option<BytesOf<'_>> {
        self.node.data.as_deref().map(BytesOf)
    }
}

impl Archive for NodeOf<'_> {
    type Archived = ArchivedSnapshotNode;
    type Resolver = SnapshotNodeResolver;

    fn resolve(&self, resolver: SnapshotNodeResolver, out: Place<ArchivedSnapshotNode>) {
        rkyv::munge::munge!(let ArchivedSnapshotNode {
            path, data, acl, czxid, mzxid, ctime_ms, mtime_ms, version, cversion, aversion, ephemeral_owner, pzxid
        } = out);
        let node = self.node;
        ArchivedString::resolve_from_str(self.path, resolver.path, path);
        self.data().resolve(resolver.data, data);
        ArchivedVec::resolve_from_len(self.acl.len(), resolver.acl, acl);
        node.czxid.resolve((), czxid);
        node.mzxid.resolve((), mzxid);
        node.ctime_ms.resolve((), ctime_ms);
        node.mtime_ms.resolve((), mtime_ms);
        node.version.resolve((), version);
        node.cversion.resolve((), cversion);
        node.aversion.resolve((), aversion);
        node.ephemeral_owner.resolve((), ephemeral_owner);
        node.pzxid.resolve((), pzxid);
    }
}

impl<S> Serialize<S> for NodeOf<'_>
where
    S: Fallible + Allocator + Writer + ?Sized,
    S::Error: rkyv::rancor::Source,
{
    fn serialize(&self, serializer: &mut S) -> Result<SnapshotNodeResolver, S::Error> {
        let entries = self.acl.iter().map(AclEntryOf);
        Ok(SnapshotNodeResolver {
            path: ArchivedString::serialize_from_str(self.path, serializer)?,
            data: self.data().serialize(serializer)?,
            acl: ArchivedVec::<ArchivedAclEntry>::serialize_from_iter::<AclEntryOf, _, _>(entries, serializer)?,
            czxid: (),
            mzxid: (),
            ctime_ms: (),
            mtime_ms: (),
            version: (),
            cversion: (),
            aversion: (),
            ephemeral_owner: (),
            pzxid: (),
        })
    }
}

/// A node's data archived as `Vec<u8>`.
struct BytesOf<'a>(&'a [u8]);

impl Archive for BytesOf<'_> {
    type Archived = ArchivedVec<u8>;
    type Resolver = VecResolver;

    fn resolve(&self, resolver: VecResolver, out: Place<ArchivedVec<u8>>) {
        ArchivedVec::resolve_from_len(self.0.len(), resolver, out);
    }
}

impl<S: Fallible + Allocator + Writer + ?Sized> Serialize<S> for BytesOf<'_> {
    fn serialize(&self, serializer: &mut S) -> Result<VecResolver, S::Error> {
        ArchivedVec::<u8>::serialize_from_slice(self.0, serializer)
    }
}

/// An ACL entry archived as `AclEntry`.
struct AclEntryOf<'a>(&'a Acl);

impl Archive for AclEntryOf<'_> {
    type Archived = ArchivedAclEntry;
    /// The scheme's and the id's.
    type Resolver = (StringResolver, StringResolver);

    fn resolve(&self, (scheme_resolver, id_resolver): Self::Resolver, out: Place<ArchivedAclEntry>) {
        rkyv::munge::munge!(let ArchivedAclEntry { perms, scheme, id } = out);
        self.0.perms.resolve((), perms);
        ArchivedString::resolve_from_str(&self.0.scheme, scheme_resolver, scheme);
        ArchivedString::resolve_from_str(&self.0.id, id_resolver, id);
    }
}

impl<S: Fallible + Allocator + Writer + ?Sized> Serialize<S> for AclEntryOf<'_>
where
    S::Error: rkyv::rancor::Source,
{
    fn serialize(&self, serializer: &mut S) -> Result<Self::Resolver, S::Error> {
        Ok((
            ArchivedString::serialize_from_str(&self.0.scheme, serializer)?,
            ArchivedString::serialize_from_str(&self.0.id, serializer)?,
        ))
    }
}

/// Why a snapshot file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotError {
    BadHeader,
    Truncated,
    Checksum,
    /// The checksum matches but the archive is not a snapshot image.
    Invalid,
    /// A valid image whose nodes do not make a tree, and why.
    NotATree(&'static str),
}

/// Checks a snapshot file's bytes (16-byte aligned) and returns its archive, read in
/// place. The whole archive is validated (rkyv's bytecheck): a matching checksum does
/// not make crafted or unlucky bytes an image, and reading those in place is undefined
/// behaviour. Run once per file, where it enters the process.
pub fn access(bytes: &[u8]) -> Result<&ArchivedSnapshotImage, SnapshotError> {
    let archive = checked_archive(bytes)?;
    rkyv::access::<ArchivedSnapshotImage, rkyv::rancor::Failure>(archive).map_err(|_| SnapshotError::Invalid)
}

/// Reads in place the archive of bytes that `access` accepted before (a file this
/// process mapped read-only and verified when it found it).
pub fn access_verified(bytes: &[u8]) -> &ArchivedSnapshotImage {
    let archive = checked_archive(bytes).expect("the bytes passed `access` before");
    debug_assert!(rkyv::access::<ArchivedSnapshotImage, rkyv::rancor::Failure>(archive).is_ok());
    // SAFETY: `access` validated these same bytes (the caller's contract), and the archive
    // is aligned (asserted by `checked_archive`).
    unsafe { rkyv::access_unchecked::<ArchivedSnapshotImage>(archive) }
}

/// The archive of a snapshot file's bytes, after its header and checksum.
fn checked_archive(bytes: &[u8]) -> Result<&[u8], SnapshotError> {
    if bytes.len() < HEADER_BYTES || bytes[..8] != MAGIC {
        return Err(SnapshotError::BadHeader);
    }
    assert_eq!(bytes.as_ptr() as usize % 16, 0, "snapshots are read in place from 16-byte aligned bytes");
    let length = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
    let archive = bytes.get(HEADER_BYTES..HEADER_BYTES.saturating_add(length)).ok_or(SnapshotError::Truncated)?;
    if crc32c::crc32c(archive) != crc {
        return Err(SnapshotError::Checksum);
    }
    Ok(archive)
}

/// Rebuilds a tree from a snapshot read in place.
pub fn load(image: &ArchivedSnapshotImage) -> Result<DataTree, SnapshotError> {
    let sessions = image
        .sessions
        .iter()
        .map(|session| (session.session_id.to_native(), (session.timeout_ms.to_native(), session.password)))
        .collect();
    let mut tree = DataTree::for_loading(sessions, image.zxid.to_native());
    let mut owned = Vec::new();
    for node in image.nodes.iter() {
        if node.ephemeral_owner.to_native() != 0 {
            owned.push((node.czxid.to_native(), node.path.as_str(), node.ephemeral_owner.to_native()));
        }
        let znode = Znode {
            data: crate::txn::data_of(&node.data).map(Into::into),
            acl_id: 0,
            czxid: node.czxid.to_native(),
            mzxid: node.mzxid.to_native(),
            ctime_ms: node.ctime_ms.to_native(),
            mtime_ms: node.mtime_ms.to_native(),
            version: node.version.to_native(),
            cversion: node.cversion.to_native(),
            aversion: node.aversion.to_native(),
            ephemeral_owner: node.ephemeral_owner.to_native(),
            pzxid: node.pzxid.to_native(),
            children: Default::default(),
        };
        tree.insert_loaded(node.path.as_str().into(), znode, &node.acl).map_err(SnapshotError::NotATree)?;
    }
    // Nodes come in any order: each is linked to its parent once all are in.
    for node in image.nodes.iter() {
        tree.link_loaded(node.path.as_str()).map_err(SnapshotError::NotATree)?;
    }
    tree.index_loaded_owners(owned);
    tree.finish_loading().map_err(SnapshotError::NotATree)?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{CreateTxn, Step, Txn, TxnOp};
    use proptest::prelude::*;

    fn apply(tree: &mut DataTree, zxid: i64, op: TxnOp) {
        let bytes = Txn { session_id: 7, cxid: 0, zxid, time_ms: zxid * 10, op }.to_bytes();
        tree.apply(crate::txn::access_written(&bytes), &mut Vec::new());
    }

    fn aligned(bytes: &[u8]) -> rkyv::util::AlignedVec<16> {
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(bytes);
        aligned
    }

    fn same(a: &DataTree, b: &DataTree) {
        assert_eq!(a.last_zxid(), b.last_zxid());
        assert_eq!(a.node_count(), b.node_count());
        assert_eq!(a.digest(), b.digest(), "the same tree has the same digest, loaded or applied");
        for (path, node) in a.nodes() {
            let other = b.node(path).unwrap_or_else(|| panic!("{path} missing"));
            assert_eq!(node.stat(), other.stat(), "{path}");
            assert_eq!(node.data, other.data, "{path}");
            assert_eq!(a.acl(node), b.acl(other), "{path}");
        }
        let sorted = |tree: &DataTree| {
            let mut sessions: Vec<_> = tree.sessions().collect();
            sessions.sort_unstable();
            sessions
        };
        assert_eq!(sorted(a), sorted(b));
        assert_eq!(a.ephemeral_count(), b.ephemeral_count());
    }

    proptest! {
        #[test]
        fn a_snapshot_loads_back_into_the_same_tree(names in prop::collection::vec("[a-c]{1,2}", 1..40)) {
            let mut tree = DataTree::new();
            apply(&mut tree, 1, TxnOp::CreateSession { timeout_ms: 4000, password: [3; 16] });
            let mut zxid = 1;
            for (index, name) in names.iter().enumerate() {
                let parent = if index % 3 == 0 { "/".to_owned() } else { format!("/{}", names[0]) };
                let path = crate::tree::path::join(&parent, name);
                if tree.node(&path).is_some() || tree.node(&parent).is_none() {
                    continue;
                }
                zxid += 1;
                let cversion = tree.node(&parent).unwrap().cversion + 1;
                let owner = if index % 5 == 4 && parent == "/" { 7 } else { 0 };
                apply(&mut tree, zxid, TxnOp::Single(Step::Create(CreateTxn {
                    path,
                    data: Some(name.as_bytes().to_vec()),
                    acl: vec![AclEntry { perms: 31, scheme: "world".into(), id: "anyone".into() }],
                    ephemeral_owner: owner,
                    parent_cversion: cversion,
                })));
            }
            let bytes = aligned(&encode(&tree));
            let loaded = load(access(&bytes).unwrap()).unwrap();
            same(&tree, &loaded);
        }
    }

    proptest! {
        #[test]
        fn a_snapshot_taken_while_writes_continue_plus_replay_equals_the_tree(
            operations in prop::collection::vec((0u8..4, 0usize..6, any::<bool>()), 1..80),
            snapshot_at in any::<prop::sample::Index>(),
        ) {
            // The writes as the log holds them: creates, setData and deletes on six names.
            let mut shadow = DataTree::new();
            let mut log: Vec<Vec<u8>> = Vec::new();
            let mut zxid = 0;
            for (kind, name, ephemeral) in operations {
                let path = format!("/n{name}");
                let exists = shadow.node(&path).is_some();
                let op = match (kind, exists) {
                    (0 | 1, false) => TxnOp::Single(Step::Create(CreateTxn {
                        path: path.clone(),
                        data: Some(vec![kind; 3]),
                        acl: vec![AclEntry { perms: 31, scheme: "world".into(), id: "anyone".into() }],
                        ephemeral_owner: if ephemeral { 7 } else { 0 },
                        parent_cversion: shadow.node("/").unwrap().cversion + 1,
                    })),
                    (2, true) => {
                        let version = shadow.node(&path).unwrap().version + 1;
                        TxnOp::Single(Step::SetData { path, data: None, version })
                    }
                    (3, true) => TxnOp::Single(Step::Delete { path }),
                    _ => continue,
                };
                zxid += 1;
                let bytes = Txn { session_id: 7, cxid: 0, zxid, time_ms: zxid, op }.to_bytes();
                shadow.apply(crate::txn::access_written(&bytes), &mut Vec::new());
                log.push(bytes.to_vec());
            }
            // A core that took its snapshot after some prefix of the log, then a restart that
            // loads it and replays what follows.
            let cut = snapshot_at.index(log.len() + 1);
            let mut core = DataTree::new();
            for bytes in &log[..cut] {
                core.apply(crate::txn::access_written(&aligned(bytes)), &mut Vec::new());
            }
            let snapshot = aligned(&encode(&core));
            let mut restarted = load(access(&snapshot).unwrap()).unwrap();
            for bytes in &log[cut..] {
                restarted.apply(crate::txn::access_written(&aligned(bytes)), &mut Vec::new());
            }
            same(&shadow, &restarted);
        }
    }

    #[test]
    fn nodes_written_from_the_tree_are_archived_exactly_as_their_owned_records() {
        // `NodeOf` writes paths, data and ACLs from where the tree holds them; the bytes
        // must be those of `SnapshotNode`'s own serialization, null data and ACLs included.
        let mut tree = DataTree::new();
        apply(&mut tree, 1, TxnOp::CreateSession { timeout_ms: 4000, password: [3; 16] });
        let acl = vec![
            AclEntry { perms: 1, scheme: "digest".into(), id: "user:hash".into() },
            AclEntry { perms: 31, scheme: "world".into(), id: "anyone".into() },
        ];
        for (zxid, (path, data)) in
            [("/a", Some(b"x".to_vec())), ("/a/b", None), ("/c", Some(Vec::new()))].into_iter().enumerate()
        {
            let parent_cversion = tree.node(crate::tree::path::parent_and_name(path).unwrap().0).unwrap().cversion + 1;
            apply(
                &mut tree,
                zxid as i64 + 2,
                TxnOp::Single(Step::Create(CreateTxn {
                    path: path.into(),
                    data,
                    acl: acl.clone(),
                    ephemeral_owner: 0,
                    parent_cversion,
                })),
            );
        }
        let nodes: Vec<SnapshotNode> = tree
            .nodes()
            .map(|(path, node)| SnapshotNode {
                path: path.to_owned(),
                data: node.data.as_deref().map(<[u8]>::to_vec),
                acl: crate::txn::acl_entries(tree.acl(node)),
                czxid: node.czxid,
                mzxid: node.mzxid,
                ctime_ms: node.ctime_ms,
                mtime_ms: node.mtime_ms,
                version: node.version,
                cversion: node.cversion,
                aversion: node.aversion,
                ephemeral_owner: node.ephemeral_owner,
                pzxid: node.pzxid,
            })
            .collect();
        let sessions = tree
            .sessions()
            .map(|(session_id, timeout_ms, password)| SnapshotSession { session_id, timeout_ms, password })
            .collect();
        let image = SnapshotImage { zxid: tree.last_zxid(), nodes, sessions };
        assert!(encode(&tree) == encode_image(&image));
    }

    #[test]
    fn nodes_load_in_any_order_and_a_node_without_its_parent_is_refused() {
        let node = |path: &str| SnapshotNode {
            path: path.to_owned(),
            data: None,
            acl: Vec::new(),
            czxid: 1,
            mzxid: 1,
            ctime_ms: 0,
            mtime_ms: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            pzxid: 1,
        };
        let image = |paths: &[&str]| SnapshotImage {
            zxid: 1,
            nodes: paths.iter().map(|path| node(path)).collect(),
            sessions: Vec::new(),
        };
        let children_first = aligned(&encode_image(&image(&["/a/b/c", "/a", "/", "/a/b", "/d"])));
        let tree = load(access(&children_first).unwrap()).unwrap();
        let children = |path: &str| tree.node(path).unwrap().children.iter().map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(children("/a"), ["b"]);
        assert_eq!(children("/a/b"), ["c"]);
        assert_eq!(tree.node_count(), 5);
        let orphan = aligned(&encode_image(&image(&["/", "/a/b"])));
        assert_eq!(load(access(&orphan).unwrap()).err(), Some(SnapshotError::NotATree("a node without its parent")));
    }

    #[test]
    fn a_sessions_ephemerals_load_in_the_order_they_were_created() {
        // The order decides the order of the deletes when the session closes; a server
        // that restarted must keep the one it had, whatever order the snapshot holds.
        let mut tree = DataTree::new();
        apply(&mut tree, 1, TxnOp::CreateSession { timeout_ms: 4000, password: [3; 16] });
        let paths = ["/z", "/m", "/a", "/q"];
        for (zxid, path) in (2..).zip(paths) {
            let parent_cversion = tree.node("/").unwrap().cversion + 1;
            let create =
                CreateTxn { path: path.into(), data: None, acl: Vec::new(), ephemeral_owner: 7, parent_cversion };
            apply(&mut tree, zxid, TxnOp::Single(Step::Create(create)));
        }
        assert_eq!(tree.ephemerals_in_addition_order(7), paths);
        let loaded = load(access(&aligned(&encode(&tree))).unwrap()).unwrap();
        assert_eq!(loaded.ephemerals_in_addition_order(7), paths);
    }

    #[test]
    fn a_damaged_snapshot_is_refused() {
        let tree = DataTree::new();
        let mut bytes = encode(&tree);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(access(&aligned(&bytes)).err(), Some(SnapshotError::Checksum));
        assert_eq!(access(&aligned(&bytes[..40])).err(), Some(SnapshotError::Truncated));
        assert_eq!(access(&aligned(b"nonsense")).err(), Some(SnapshotError::BadHeader));
    }

    #[test]
    fn an_archive_that_matches_its_checksum_but_is_not_an_image_is_refused() {
        let mut tree = DataTree::new();
        let op = TxnOp::Single(Step::Create(CreateTxn {
            path: "/a".into(),
            data: Some(b"x".to_vec()),
            acl: Vec::new(),
            ephemeral_owner: 0,
            parent_cversion: 1,
        }));
        tree.apply(
            crate::txn::access_written(&Txn { session_id: 1, cxid: 0, zxid: 1, time_ms: 0, op }.to_bytes()),
            &mut Vec::new(),
        );
        let mut bytes = encode(&tree);
        for byte in &mut bytes[HEADER_BYTES..] {
            *byte = 0xff;
        }
        let crc = crc32c::crc32c(&bytes[HEADER_BYTES..]);
        bytes[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(access(&aligned(&bytes)).err(), Some(SnapshotError::Invalid));
    }
}
