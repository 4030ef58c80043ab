//! ACL evaluation, as `ZooKeeperServer.checkACL` does it for the schemes a connection can
//! hold without authenticating: `world:anyone` matches everyone, `ip` matches the
//! client's address (with an optional CIDR mask).

use std::net::IpAddr;

use crate::proto::acl::Acl;

/// Whether a client at `client_ip` holds `permission` on a node with `acl`. An empty ACL
/// grants everything, as in ZooKeeper.
pub fn permits(acl: &[Acl], permission: i32, client_ip: Option<IpAddr>) -> bool {
    if acl.is_empty() {
        return true;
    }
    acl.iter().filter(|entry| entry.perms & permission != 0).any(|entry| match entry.scheme.as_str() {
        "world" => entry.id == "anyone",
        "ip" => client_ip.is_some_and(|ip| ip_matches(&entry.id, ip)),
        _ => false,
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

    #[test]
    fn world_anyone_grants_its_permissions_only() {
        let read_only = [acl(PERM_READ, "world", "anyone")];
        assert!(permits(&read_only, PERM_READ, None));
        assert!(!permits(&read_only, PERM_WRITE, None));
    }

    #[test]
    fn ip_acls_match_the_client_address_and_masks() {
        let local = [acl(PERM_READ, "ip", "127.0.0.0/8")];
        assert!(permits(&local, PERM_READ, Some("127.0.0.1".parse().unwrap())));
        assert!(!permits(&local, PERM_READ, Some("10.0.0.1".parse().unwrap())));
        assert!(!permits(&local, PERM_READ, None));
    }

    #[test]
    fn digest_acls_need_authentication() {
        assert!(!permits(&[acl(PERM_READ, "digest", "u:hash")], PERM_READ, Some("127.0.0.1".parse().unwrap())));
    }
}
