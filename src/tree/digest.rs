//! ZooKeeper's tree digest (`DigestCalculator`, digest version 2), so `hash` answers
//! what ZooKeeper's does: the sum of a CRC32 per node over its path, its data and its
//! persisted Stat, kept as nodes change rather than recomputed.

use super::znode::Znode;

/// The digest version ZooKeeper 3.8 reports beside each digest.
pub const DIGEST_VERSION: u32 = 2;

/// One node's share of the digest. Nodes below `/zookeeper/` (quotas, the membership)
/// count for nothing, and the root is digested under the empty path, as ZooKeeper
/// stores it.
pub fn node_digest(path: &str, node: &Znode) -> u64 {
    if path.starts_with("/zookeeper/") {
        return 0;
    }
    let path = if path == "/" { "" } else { path };
    // StatPersisted's fields in ZooKeeper's order, big-endian (a ByteBuffer's default).
    let mut stat = [0u8; 60];
    let fields: [&[u8]; 9] = [
        &node.czxid.to_be_bytes(),
        &node.mzxid.to_be_bytes(),
        &node.pzxid.to_be_bytes(),
        &node.ctime_ms.to_be_bytes(),
        &node.mtime_ms.to_be_bytes(),
        &node.version.to_be_bytes(),
        &node.cversion.to_be_bytes(),
        &node.aversion.to_be_bytes(),
        &node.ephemeral_owner.to_be_bytes(),
    ];
    let mut offset = 0;
    for field in fields {
        stat[offset..offset + field.len()].copy_from_slice(field);
        offset += field.len();
    }
    assert_eq!(offset, stat.len());
    let mut crc = crc32fast::Hasher::new();
    crc.update(path.as_bytes());
    if let Some(data) = &node.data {
        crc.update(data);
    }
    crc.update(&stat);
    u64::from(crc.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_quota_and_config_subtree_is_not_digested_but_zookeeper_itself_is() {
        let node = Znode { data: Some(Box::default()), ..Znode::default() };
        assert_eq!(node_digest("/zookeeper/quota", &node), 0);
        assert_eq!(node_digest("/zookeeper/config", &node), 0);
        assert_ne!(node_digest("/zookeeper", &node), 0);
    }

    #[test]
    fn a_node_digest_is_the_crc32_of_path_data_and_stat() {
        // java.util.zip.CRC32 over "/a", "x" and 60 bytes of Stat with czxid = 1:
        // computed here from the definition with an independent CRC (zlib's).
        let node = Znode { data: Some(b"x".to_vec().into()), czxid: 1, ..Znode::default() };
        let mut bytes = b"/ax".to_vec();
        let mut stat = [0u8; 60];
        stat[7] = 1;
        bytes.extend_from_slice(&stat);
        assert_eq!(node_digest("/a", &node), u64::from(crc32_bitwise(&bytes)));
        assert_eq!(node_digest("/", &Znode::default()), u64::from(crc32_bitwise(&[0u8; 60])), "root digested as \"\"");
    }

    /// The IEEE CRC-32 bit by bit, as its definition reads.
    fn crc32_bitwise(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in bytes {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
}
