//! ZooKeeper's snapshot files (`FileSnap`, as they are once decompressed): a 16-byte header (`ZKSN`, 2,
//! dbid), the sessions, the ACL cache, every node depth-first with the root under the
//! empty path, a "/" that ends the list, then an Adler-32 seal (the checksum of every
//! byte before it, then "/"), and, since 3.6, the tree digest with a second seal.
//! Sans-IO: it reads bytes.

use std::collections::HashMap;
use std::path::Path;

use super::error::ImportError;
use super::java::adler32;
use crate::proto::acl::{decode_acl_vec, Acl};
use crate::proto::jute::{DecodeError, Reader};
use crate::tree::snapshot::SnapshotNode;

const MAGIC: i32 = 0x5A4B_534E; // "ZKSN"
/// `ReferenceCountedACLCache.OPEN_UNSAFE_ACL_ID`: a node created with no ACL list.
const OPEN_UNSAFE_ACL_ID: i64 = -1;

/// What a ZooKeeper snapshot holds, in Ringkeeper's snapshot records.
#[derive(Debug)]
pub struct ZookeeperSnapshot {
    /// The zxid in the file's name: transactions after it are replayed from the log.
    pub zxid: i64,
    /// Session id and timeout (passwords are derived from ids, not stored).
    pub sessions: Vec<(i64, i32)>,
    /// Sorted by path, so every parent comes before its children.
    pub nodes: Vec<SnapshotNode>,
    /// The tree digest ZooKeeper recorded and the zxid it belongs to, if it wrote one.
    pub digest: Option<(i64, u64)>,
}

/// The zxid of a snapshot file's name (`snapshot.<hex>`), if it names one.
pub fn zxid_of_name(name: &str) -> Option<i64> {
    i64::from_str_radix(name.strip_prefix("snapshot.")?, 16).ok()
}

/// Reads a snapshot's uncompressed bytes (`compressed::decompress` for a `.gz` or
/// `.snappy` file).
pub fn read(file: &Path, bytes: &[u8]) -> Result<ZookeeperSnapshot, ImportError> {
    let name = file.file_name().and_then(|name| name.to_str()).unwrap_or_default();
    let (_, stem) = super::compressed::Compression::of_name(name);
    let zxid = zxid_of_name(stem).ok_or_else(|| ImportError::new(file, 0, "not named snapshot.<hex zxid>"))?;
    let mut reader = Reader::new(bytes);
    let at = |reader: &Reader<'_>, error: DecodeError| ImportError::new(file, reader.position(), error.to_string());
    let magic = reader.read_i32().map_err(|error| at(&reader, error))?;
    if magic != MAGIC {
        return Err(ImportError::new(file, 0, format!("magic {magic:#x} is not a ZooKeeper snapshot's (ZKSN)")));
    }
    let version = reader.read_i32().map_err(|error| at(&reader, error))?;
    if version != 2 {
        return Err(ImportError::new(file, 4, format!("snapshot format version {version}, not 2")));
    }
    reader.read_i64().map_err(|error| at(&reader, error))?;
    let sessions = read_sessions(&mut reader).map_err(|error| at(&reader, error))?;
    let acls = read_acl_cache(&mut reader).map_err(|error| at(&reader, error))?;
    let mut nodes = read_nodes(file, &mut reader, &acls)?;
    check_seal(file, &mut reader, bytes)?;
    let digest = if reader.is_empty() { None } else { Some(read_digest(file, &mut reader, bytes)?) };
    nodes.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    Ok(ZookeeperSnapshot { zxid, sessions, nodes, digest })
}

/// Whether the file ends as a complete uncompressed snapshot does (ZooKeeper's
/// `SnapStream.isValidCheckedStream`: the last bytes are a seal's "/"): a snapshot that
/// a crash cut short is skipped for an older one.
pub fn looks_complete(bytes: &[u8]) -> bool {
    bytes.len() >= 10 && bytes.ends_with(&[0, 0, 0, 1, b'/'])
}

fn read_sessions(reader: &mut Reader<'_>) -> Result<Vec<(i64, i32)>, DecodeError> {
    let count = reader.read_count(12)?;
    (0..count).map(|_| Ok((reader.read_i64()?, reader.read_i32()?))).collect()
}

fn read_acl_cache(reader: &mut Reader<'_>) -> Result<HashMap<i64, Vec<Acl>>, DecodeError> {
    let count = reader.read_count(12)?;
    let mut acls = HashMap::with_capacity(count);
    for _ in 0..count {
        let id = reader.read_i64()?;
        acls.insert(id, decode_acl_vec(reader)?);
    }
    Ok(acls)
}

/// Nodes until the "/" that ends the list: path, data, ACL id, then the persisted Stat
/// (czxid, mzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner, pzxid).
fn read_nodes(
    file: &Path,
    reader: &mut Reader<'_>,
    acls: &HashMap<i64, Vec<Acl>>,
) -> Result<Vec<SnapshotNode>, ImportError> {
    let mut nodes = Vec::new();
    loop {
        let offset = reader.position();
        let at = |error: DecodeError| ImportError::new(file, offset, format!("a node: {error}"));
        let path = reader.read_string().map_err(at)?;
        if path == "/" {
            return Ok(nodes);
        }
        let data = reader.read_buffer().map_err(at)?.map(<[u8]>::to_vec);
        let acl_id = reader.read_i64().map_err(at)?;
        let acl = match acl_id {
            OPEN_UNSAFE_ACL_ID => vec![Acl::open_unsafe()],
            id => acls.get(&id).cloned().ok_or_else(|| {
                ImportError::new(file, offset, format!("node {path} names ACL {id}, which the file lacks"))
            })?,
        };
        let mut stat = [0i64; 9];
        for (index, field) in stat.iter_mut().enumerate() {
            // version, cversion and aversion (fields 4 to 6) are ints.
            *field = if (4..=6).contains(&index) {
                i64::from(reader.read_i32().map_err(at)?)
            } else {
                reader.read_i64().map_err(at)?
            };
        }
        let [czxid, mzxid, ctime_ms, mtime_ms, version, cversion, aversion, ephemeral_owner, pzxid] = stat;
        nodes.push(SnapshotNode {
            // ZooKeeper writes the root under the empty path.
            path: if path.is_empty() { "/".to_owned() } else { path },
            data,
            acl: crate::txn::acl_entries(&acl),
            czxid,
            mzxid,
            ctime_ms,
            mtime_ms,
            version: version as i32,
            cversion: cversion as i32,
            aversion: aversion as i32,
            ephemeral_owner,
            pzxid,
        });
    }
}

/// A seal: the Adler-32 of every byte before it, as a long, then the string "/".
fn check_seal(file: &Path, reader: &mut Reader<'_>, bytes: &[u8]) -> Result<(), ImportError> {
    let offset = reader.position();
    let expected = adler32(&bytes[..offset]);
    let at = |error: DecodeError| ImportError::new(file, offset, format!("the checksum seal: {error}"));
    let stored = reader.read_i64().map_err(at)?;
    let marker = reader.read_string().map_err(at)?;
    if stored != i64::from(expected) {
        return Err(ImportError::new(
            file,
            offset,
            format!("checksum {stored:#x} does not match the contents' {expected:#x}"),
        ));
    }
    if marker != "/" {
        return Err(ImportError::new(file, offset + 8, "the checksum seal does not end with \"/\""));
    }
    Ok(())
}

/// `DataTree.ZxidDigest`: the zxid, the digest version, the digest (a hex string before
/// version 2), then a second seal.
fn read_digest(file: &Path, reader: &mut Reader<'_>, bytes: &[u8]) -> Result<(i64, u64), ImportError> {
    let offset = reader.position();
    let at = |error: DecodeError| ImportError::new(file, offset, format!("the tree digest: {error}"));
    let zxid = reader.read_i64().map_err(at)?;
    let version = reader.read_i32().map_err(at)?;
    let digest = if version < 2 {
        let text = reader.read_string().map_err(at)?;
        u64::from_str_radix(&text, 16).map_err(|_| ImportError::new(file, offset, "a digest that is not hex"))?
    } else {
        reader.read_i64().map_err(at)? as u64
    };
    check_seal(file, reader, bytes)?;
    Ok((zxid, digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::jute::Writer;

    /// A snapshot as ZooKeeper 3.8 writes one: a root, /a with an ACL from the cache and
    /// /a/b with the open ACL (-1), one session, sealed, with a digest.
    fn snapshot_bytes() -> Vec<u8> {
        let mut bytes = Vec::new();
        let mut writer = Writer::new(&mut bytes);
        writer.write_i32(MAGIC);
        writer.write_i32(2);
        writer.write_i64(-1);
        writer.write_i32(1);
        writer.write_i64(0x42);
        writer.write_i32(30_000);
        writer.write_i32(1);
        writer.write_i64(1);
        crate::proto::acl::encode_acl_vec(&[Acl::read_unsafe()], &mut writer);
        for (path, acl_id, czxid) in [("", -1, 0), ("/a/b", -1, 3), ("/a", 1, 2)] {
            writer.write_str(path);
            writer.write_buffer(Some(b"x"));
            writer.write_i64(acl_id);
            for field in [czxid, czxid, 7, 7] {
                writer.write_i64(field);
            }
            for field in [0, 1, 0] {
                writer.write_i32(field);
            }
            writer.write_i64(0);
            writer.write_i64(czxid);
        }
        writer.write_str("/");
        seal(&mut bytes);
        let mut writer = Writer::new(&mut bytes);
        writer.write_i64(3);
        writer.write_i32(2);
        writer.write_i64(12_345);
        seal(&mut bytes);
        bytes
    }

    fn seal(bytes: &mut Vec<u8>) {
        let checksum = adler32(bytes);
        let mut writer = Writer::new(bytes);
        writer.write_i64(i64::from(checksum));
        writer.write_str("/");
    }

    #[test]
    fn a_snapshot_reads_into_sorted_nodes_with_their_acls_sessions_and_digest() {
        let bytes = snapshot_bytes();
        assert!(looks_complete(&bytes));
        let snapshot = read(Path::new("snapshot.3"), &bytes).unwrap();
        assert_eq!(snapshot.zxid, 3);
        assert_eq!(snapshot.sessions, vec![(0x42, 30_000)]);
        let paths: Vec<&str> = snapshot.nodes.iter().map(|node| node.path.as_str()).collect();
        assert_eq!(paths, ["/", "/a", "/a/b"]);
        assert_eq!(snapshot.nodes[1].acl[0].perms, 1, "from the cache");
        assert_eq!(snapshot.nodes[2].acl[0].perms, 31, "-1 is the open ACL");
        assert_eq!((snapshot.nodes[1].czxid, snapshot.nodes[1].cversion), (2, 1));
        assert_eq!(snapshot.digest, Some((3, 12_345)));
    }

    #[test]
    fn damage_is_refused_with_the_offset_and_the_reason() {
        let mut bytes = snapshot_bytes();
        let data = bytes.iter().position(|&byte| byte == b'x').unwrap();
        bytes[data] = b'y';
        let error = read(Path::new("snapshot.3"), &bytes).unwrap_err();
        assert!(error.reason.contains("checksum"), "{error}");
        let error = read(Path::new("snapshot.3"), &snapshot_bytes()[..30]).unwrap_err();
        assert_eq!(error.offset, 20, "the ACL cache, cut short: {error}");
        // A compressed snapshot's bytes come here decompressed, named by the stem.
        assert_eq!(read(Path::new("snapshot.3.gz"), &snapshot_bytes()).unwrap().zxid, 3);
        let mut wrong = snapshot_bytes();
        wrong[0] = 0;
        assert!(read(Path::new("snapshot.3"), &wrong).unwrap_err().reason.contains("magic"));
    }
}
