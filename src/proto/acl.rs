//! ACL records (`org.apache.zookeeper.data.ACL` and `Id`) and permission bits
//! (`ZooDefs.Perms`).

use super::jute::{DecodeError, Reader, Writer};

pub const PERM_READ: i32 = 1;
pub const PERM_WRITE: i32 = 2;
pub const PERM_CREATE: i32 = 4;
pub const PERM_DELETE: i32 = 8;
pub const PERM_ADMIN: i32 = 16;
pub const PERM_ALL: i32 = 31;

/// One access control entry: permission bits granted to an identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Acl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

impl Acl {
    /// `world:anyone` with every permission (`ZooDefs.Ids.OPEN_ACL_UNSAFE`).
    pub fn open_unsafe() -> Acl {
        Acl { perms: PERM_ALL, scheme: "world".into(), id: "anyone".into() }
    }

    /// `world:anyone` with read only (`ZooDefs.Ids.READ_ACL_UNSAFE`).
    pub fn read_unsafe() -> Acl {
        Acl { perms: PERM_READ, scheme: "world".into(), id: "anyone".into() }
    }

    pub fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_i32(self.perms);
        writer.write_str(&self.scheme);
        writer.write_str(&self.id);
    }

    pub fn decode(reader: &mut Reader<'_>) -> Result<Acl, DecodeError> {
        Ok(Acl { perms: reader.read_i32()?, scheme: reader.read_string()?, id: reader.read_string()? })
    }
}

pub fn decode_acl_vec(reader: &mut Reader<'_>) -> Result<Vec<Acl>, DecodeError> {
    let count = reader.read_count(12)?;
    (0..count).map(|_| Acl::decode(reader)).collect()
}

pub fn encode_acl_vec(acl: &[Acl], writer: &mut Writer<'_>) {
    writer.write_i32(acl.len() as i32);
    for entry in acl {
        entry.encode(writer);
    }
}
