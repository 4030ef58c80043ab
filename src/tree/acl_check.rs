//! ACL evaluation, as `ZooKeeperServer.checkACL` does it.

use std::net::IpAddr;

use crate::proto::acl::Acl;

/// An identity only the server gives, never shown to clients (whoAmI, `auth` ACLs): with
/// `skipACL=yes` every connection holds it and every check passes, as ZooKeeper's
/// `zookeeper.skipACL` skips `checkACL` without adding an id.
pub const SKIP_ACL_SCHEME: &str = "ringkeeper:skipACL";

/// Whether a client holding `identities` (scheme, id) has `permission` on a node with
/// `acl` (`ZooKeeperServer.checkACL`): an empty ACL grants everything, `super` holds every
/// permission, `world:anyone` matches all, `ip` matches the client's address under the
/// entry's mask, other schemes match an identity of the same scheme and id.
pub fn permits(acl: &[Acl], permission: i32, identities: &[(String, String)]) -> bool {
    if acl.is_empty() || identities.iter().any(|(scheme, _)| scheme == "super" || scheme == SKIP_ACL_SCHEME) {
        return true;
    }
    acl.iter().filter(|entry| entry.perms & permission != 0).any(|entry| match entry.scheme.as_str() {
        "world" => entry.id == "anyone",
        "ip" => identities
            .iter()
            .filter(|(scheme, _)| scheme == "ip")
            .filter_map(|(_, id)| id.parse::<IpAddr>().ok())
            .any(|ip| ip_matches(&entry.id, ip)),
        scheme => identities.iter().any(|(held_scheme, id)| held_scheme == scheme && *id == entry.id),
    })
}

/// `IPAuthenticationProvider.matches`: an address, or address/bits.
fn ip_matches(id: &str, client: IpAddr) -> bool {
    let (address, bits) = match id.split_once('/') {
        Some((address, bits)) => (address, bits.parse::<u32>().ok()),
        None => (id, None),
    };
    let Ok(address) = address.parse::<IpAddr>() else {
        return false;
    };
    match (address, client) {
        (IpAddr::V4(acl), IpAddr::V4(client)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(acl) & mask == u32::from(client) & mask
        }
        (IpAddr::V6(acl), IpAddr::V6(client)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(acl) & mask == u128::from(client) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::acl::{PERM_READ, PERM_WRITE};

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl { perms, scheme: scheme.into(), id: id.into() }
    }

    fn ip(address: &str) -> Vec<(String, String)> {
        vec![("ip".into(), address.into())]
    }

    #[test]
    fn world_anyone_grants_its_permissions_only() {
        let read_only = [acl(PERM_READ, "world", "anyone")];
        assert!(permits(&read_only, PERM_READ, &[]));
        assert!(!permits(&read_only, PERM_WRITE, &[]));
    }

    #[test]
    fn ip_acls_match_the_client_address_and_masks() {
        let local = [acl(PERM_READ, "ip", "127.0.0.0/8")];
        assert!(permits(&local, PERM_READ, &ip("127.0.0.1")));
        assert!(!permits(&local, PERM_READ, &ip("10.0.0.1")));
        assert!(!permits(&local, PERM_READ, &[]));
    }

    #[test]
    fn digest_acls_need_the_matching_digest_identity_and_super_passes_everything() {
        let digest = [acl(PERM_READ, "digest", "u:hash")];
        assert!(!permits(&digest, PERM_READ, &ip("127.0.0.1")));
        assert!(permits(&digest, PERM_READ, &[("digest".into(), "u:hash".into())]));
        assert!(!permits(&digest, PERM_READ, &[("digest".into(), "v:hash".into())]));
        assert!(permits(&digest, PERM_WRITE, &[("super".into(), String::new())]));
    }
}
