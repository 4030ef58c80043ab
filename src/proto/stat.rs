//! The `Stat` record: a znode's metadata as every read reply carries it.

use super::jute::{DecodeError, Reader, Writer};

/// Znode metadata, field for field as `org.apache.zookeeper.data.Stat` (68 bytes on the
/// wire).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    /// The zxid of the transaction that created the node.
    pub czxid: i64,
    /// The zxid of the transaction that last changed the node's data.
    pub mzxid: i64,
    /// Creation time, milliseconds since the epoch.
    pub ctime: i64,
    /// Last data change time, milliseconds since the epoch.
    pub mtime: i64,
    /// Number of data changes.
    pub version: i32,
    /// Number of changes to the children (creations and deletions).
    pub cversion: i32,
    /// Number of ACL changes.
    pub aversion: i32,
    /// Owning session of an ephemeral, the TTL/container marker, or 0.
    pub ephemeral_owner: i64,
    /// Length of the data in bytes.
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// The zxid of the last change to the children.
    pub pzxid: i64,
}

pub const STAT_SIZE_BYTES: usize = 68;

impl Stat {
    pub fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_i64(self.czxid);
        writer.write_i64(self.mzxid);
        writer.write_i64(self.ctime);
        writer.write_i64(self.mtime);
        writer.write_i32(self.version);
        writer.write_i32(self.cversion);
        writer.write_i32(self.aversion);
        writer.write_i64(self.ephemeral_owner);
        writer.write_i32(self.data_length);
        writer.write_i32(self.num_children);
        writer.write_i64(self.pzxid);
    }

    pub fn decode(reader: &mut Reader<'_>) -> Result<Stat, DecodeError> {
        Ok(Stat {
            czxid: reader.read_i64()?,
            mzxid: reader.read_i64()?,
            ctime: reader.read_i64()?,
            mtime: reader.read_i64()?,
            version: reader.read_i32()?,
            cversion: reader.read_i32()?,
            aversion: reader.read_i32()?,
            ephemeral_owner: reader.read_i64()?,
            data_length: reader.read_i32()?,
            num_children: reader.read_i32()?,
            pzxid: reader.read_i64()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_68_bytes_and_round_trips() {
        let stat = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let mut buffer = Vec::new();
        stat.encode(&mut Writer::new(&mut buffer));
        assert_eq!(buffer.len(), STAT_SIZE_BYTES);
        assert_eq!(Stat::decode(&mut Reader::new(&buffer)).unwrap(), stat);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn stats_round_trip(
            zxids in any::<(i64, i64, i64)>(),
            times in any::<(i64, i64)>(),
            versions in any::<(i32, i32, i32)>(),
            owner in any::<i64>(),
            sizes in any::<(i32, i32)>(),
        ) {
            let stat = Stat {
                czxid: zxids.0, mzxid: zxids.1, ctime: times.0, mtime: times.1, version: versions.0,
                cversion: versions.1, aversion: versions.2, ephemeral_owner: owner, data_length: sizes.0,
                num_children: sizes.1, pzxid: zxids.2,
            };
            let mut bytes = Vec::new();
            stat.encode(&mut Writer::new(&mut bytes));
            prop_assert_eq!(Stat::decode(&mut Reader::new(&bytes)).unwrap(), stat);
        }
    }
}
