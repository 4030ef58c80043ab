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
    let (Some((acl, bits)), IpAddr::V4(client)) = (parse_ip_acl(id), client) else {
        return false;
    };
    let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
    acl & mask == u32::from(client) & mask
}

/// An `ip` ACL id as ZooKeeper 3.8's `IPAuthenticationProvider` reads it: an IPv4
/// address, optionally `/bits` (0 to 32). It knows no IPv6 (its `addr2Bytes` reads
/// IPv4 only), so IPv6 ids are invalid and IPv6 clients match no `ip` ACL. Each number
/// is read with Java's `Integer.parseInt`: leading zeros and a sign are allowed.
pub fn parse_ip_acl(id: &str) -> Option<(u32, u32)> {
    let (address, bits) = match id.split_once('/') {
        Some((address, bits)) => (address, java_parse_int(bits).filter(|bits| (0..=32).contains(bits))?),
        None => (id, 32),
    };
    let mut octets = address.split('.');
    let mut value = 0u32;
    for _ in 0..4 {
        let octet = java_parse_int(octets.next()?).filter(|octet| (0..=255).contains(octet))?;
        value = value << 8 | octet as u32;
    }
    octets.next().is_none().then_some((value, bits as u32))
}

/// Java's `Integer.parseInt(text)` for ASCII digits: an optional sign, then digits,
/// within an int.
fn java_parse_int(text: &str) -> Option<i32> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
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
    fn ip_acl_ids_are_ipv4_read_as_java_reads_numbers() {
        assert_eq!(parse_ip_acl("10.1.2.3"), Some((0x0a01_0203, 32)));
        assert_eq!(parse_ip_acl("010.1.2.3/+8"), Some((0x0a01_0203, 8)), "leading zeros, a plus sign");
        assert_eq!(parse_ip_acl("-0.0.0.0/0"), Some((0, 0)));
        for invalid in ["::1", "fe80::/10", "1.2.3", "1.2.3.4.5", "1.2.3.", "256.1.1.1", "1.2.3.4/33", "1.2.3.4/", ""] {
            assert_eq!(parse_ip_acl(invalid), None, "{invalid:?}");
        }
        let v6 = [acl(PERM_READ, "ip", "::1")];
        assert!(!permits(&v6, PERM_READ, &ip("::1")), "ZooKeeper 3.8 matches IPv4 only");
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
