//! Authentication: the identities a connection holds (`ip` always, `digest` after an auth
//! packet, `super` for the configured super digest), and the digest scheme's id
//! derivation, `user:base64(sha1(user:password))` (DigestAuthenticationProvider).
//! Sans-IO.

use crate::java_hash::string_hash;

/// One identity: (scheme, id), as ZooKeeper's `Id`.
pub type Identity = (String, String);

/// The identities of one connection, kept in the order ZooKeeper iterates them.
///
/// ZooKeeper keeps a connection's ids in a set backed by a `java.util.concurrent.
/// ConcurrentHashMap<Id, Boolean>` (`ServerCnxn.authInfo`) and copies it into a list for
/// every request: whoAmI lists the ids in that order, and an ACL entry of the `auth`
/// scheme expands into them in that order (`PrepRequestProcessor.fixupACL`). This set
/// reproduces the map's layout: bins indexed by the spread hash of `Id.hashCode`, new ids
/// appended to their bin, a table of 16 bins doubled when the count reaches three quarters
/// of it, and the map's own way of splitting bins when it doubles (which reverses part of
/// a bin). Ids are never removed: ZooKeeper removes one only for SASL and x509.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthIds {
    /// The map's table: each bin holds (spread hash, id) in iteration order.
    bins: Vec<AuthBin>,
    /// The count at which the table doubles (`sizeCtl`, three quarters of its length).
    resize_at_count: usize,
    count: usize,
    /// The ids in iteration order, rebuilt after every insertion.
    ordered: Vec<Identity>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AuthBin {
    entries: Vec<(u32, Identity)>,
    /// A bin of more than eight ids in a table of 64 or more becomes a red-black tree
    /// (`TreeBin`), which iterates its newest id first.
    tree: bool,
}

/// ConcurrentHashMap's constants: its default table length, the bin length that turns a
/// bin into a tree (or doubles a small table), the length below which a split tree bin
/// turns back into a list, and the smallest table that holds trees.
const AUTH_TABLE_LENGTH_DEFAULT: usize = 16;
const AUTH_TREEIFY_LENGTH: usize = 8;
const AUTH_UNTREEIFY_LENGTH: usize = 6;
const AUTH_TREE_TABLE_LENGTH_MIN: usize = 64;
/// A connection holds one id per auth packet; the table never grows past this.
const AUTH_TABLE_LENGTH_MAX: usize = 1 << 30;

impl Default for AuthIds {
    fn default() -> Self {
        AuthIds {
            bins: vec![AuthBin::default(); AUTH_TABLE_LENGTH_DEFAULT],
            resize_at_count: three_quarters(AUTH_TABLE_LENGTH_DEFAULT),
            count: 0,
            ordered: Vec::new(),
        }
    }
}

fn three_quarters(length: usize) -> usize {
    length - (length >> 2)
}

impl AuthIds {
    /// The set holding `identities`, added in this order.
    pub fn from_added(identities: impl IntoIterator<Item = Identity>) -> AuthIds {
        let mut ids = AuthIds::default();
        for identity in identities {
            ids.insert(identity);
        }
        ids
    }

    /// The ids in ZooKeeper's iteration order.
    pub fn as_slice(&self) -> &[Identity] {
        &self.ordered
    }

    /// Adds an id (`ServerCnxn.addAuthInfo`); false if the connection held it already.
    pub fn insert(&mut self, identity: Identity) -> bool {
        let hash = spread(java_id_hash(&identity));
        let index = hash as usize & (self.bins.len() - 1);
        let bin = &mut self.bins[index];
        if bin.entries.iter().any(|(_, held)| *held == identity) {
            return false;
        }
        let length_before = bin.entries.len();
        let was_tree = bin.tree;
        if was_tree {
            // TreeBin.putTreeVal links the new node in front of `first`.
            bin.entries.insert(0, (hash, identity));
        } else {
            bin.entries.push((hash, identity));
        }
        self.count += 1;
        if !was_tree && length_before >= AUTH_TREEIFY_LENGTH {
            self.treeify_or_grow(index);
        }
        // addCount: double while the count has reached the threshold.
        while self.count >= self.resize_at_count && self.bins.len() < AUTH_TABLE_LENGTH_MAX {
            self.double();
        }
        self.reorder();
        true
    }

    /// Rebuilds the iteration order from the table.
    fn reorder(&mut self) {
        self.ordered = self.bins.iter().flat_map(|bin| bin.entries.iter().map(|(_, id)| id.clone())).collect();
        assert_eq!(self.ordered.len(), self.count);
    }

    /// `treeifyBin`: a long bin in a small table grows the table instead (`tryPresize`
    /// with twice the length, which doubles until the wanted size is at most the
    /// threshold); in a large table the bin becomes a tree, keeping its order.
    fn treeify_or_grow(&mut self, index: usize) {
        if self.bins.len() >= AUTH_TREE_TABLE_LENGTH_MIN {
            self.bins[index].tree = true;
            return;
        }
        let size = self.bins.len() << 1;
        let wanted = (size + (size >> 1) + 1).next_power_of_two().min(AUTH_TABLE_LENGTH_MAX);
        while wanted > self.resize_at_count && self.bins.len() < AUTH_TABLE_LENGTH_MAX {
            self.double();
        }
    }

    /// `transfer`: each bin splits into a low bin (same index) and a high bin (index plus
    /// the old length). For a list, the longest tail whose entries all go the same way
    /// moves as it is; the entries before it are pushed in front of their new bin one by
    /// one, so they come out reversed. A tree bin splits in order, and a half of six or
    /// fewer entries becomes a list again.
    fn double(&mut self) {
        let length = self.bins.len();
        let mut bins = vec![AuthBin::default(); length * 2];
        for (index, bin) in std::mem::take(&mut self.bins).into_iter().enumerate() {
            let goes_high = |hash: u32| hash as usize & length != 0;
            let (mut low, mut high) = (Vec::new(), Vec::new());
            if bin.tree {
                for entry in bin.entries {
                    if goes_high(entry.0) {
                        high.push(entry);
                    } else {
                        low.push(entry);
                    }
                }
                bins[index] = AuthBin { tree: low.len() > AUTH_UNTREEIFY_LENGTH, entries: low };
                bins[index + length] = AuthBin { tree: high.len() > AUTH_UNTREEIFY_LENGTH, entries: high };
                continue;
            }
            let Some(last_side) = bin.entries.last().map(|entry| goes_high(entry.0)) else { continue };
            let tail_start = bin
                .entries
                .iter()
                .rposition(|entry| goes_high(entry.0) != last_side)
                .map_or(0, |position| position + 1);
            let mut entries = bin.entries;
            let tail = entries.split_off(tail_start);
            if last_side {
                high = tail;
            } else {
                low = tail;
            }
            for entry in entries {
                if goes_high(entry.0) {
                    high.insert(0, entry);
                } else {
                    low.insert(0, entry);
                }
            }
            bins[index] = AuthBin { entries: low, tree: false };
            bins[index + length] = AuthBin { entries: high, tree: false };
        }
        self.bins = bins;
        self.resize_at_count = three_quarters(self.bins.len());
        self.reorder();
    }
}

/// `ConcurrentHashMap.spread`: the hash's high half folded into its low half, sign bit
/// cleared.
fn spread(hash: i32) -> u32 {
    let hash = hash as u32;
    (hash ^ (hash >> 16)) & 0x7fff_ffff
}

/// `Id.hashCode`, as jute generates it: 17, then `37 * result + field.hashCode()` for
/// scheme and id.
pub fn java_id_hash(identity: &Identity) -> i32 {
    let scheme = 17i32.wrapping_mul(37).wrapping_add(string_hash(&identity.0));
    scheme.wrapping_mul(37).wrapping_add(string_hash(&identity.1))
}

/// The digest id of `user:password`: the user, a colon, and the base64 of the SHA-1 of
/// the whole string.
pub fn digest_id(user_password: &[u8]) -> String {
    let text = String::from_utf8_lossy(user_password);
    let user = text.split(':').next().unwrap_or_default();
    format!("{user}:{}", base64(&sha1(user_password)))
}

/// The user whoAmI reports for an identity: a digest id's part before the colon.
pub fn user_of(identity: &Identity) -> String {
    match identity.0.as_str() {
        "digest" => identity.1.split(':').next().unwrap_or_default().to_owned(),
        _ => identity.1.clone(),
    }
}

/// SHA-1 (FIPS 180-4). Only the digest scheme uses it, for compatibility; it protects
/// nothing that SHA-1's weaknesses matter to.
pub fn sha1(message: &[u8]) -> [u8; 20] {
    let mut state: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let bit_length = (message.len() as u64).wrapping_mul(8);
    let mut padded = message.to_vec();
    padded.push(0x80);
    while padded.len() % 64 != 56 {
        padded.push(0);
    }
    padded.extend_from_slice(&bit_length.to_be_bytes());
    for block in padded.chunks_exact(64) {
        let mut words = [0u32; 80];
        for (index, word) in block.chunks_exact(4).enumerate() {
            words[index] = u32::from_be_bytes(word.try_into().expect("four bytes"));
        }
        for index in 16..80 {
            words[index] = (words[index - 3] ^ words[index - 8] ^ words[index - 14] ^ words[index - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = state;
        for (index, word) in words.iter().enumerate() {
            let (f, k) = match index {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let temporary = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temporary;
        }
        for (slot, value) in state.iter_mut().zip([a, b, c, d, e]) {
            *slot = slot.wrapping_add(value);
        }
    }
    let mut digest = [0u8; 20];
    for (chunk, value) in digest.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&value.to_be_bytes());
    }
    digest
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let value =
            (chunk[0] as u32) << 16 | (*chunk.get(1).unwrap_or(&0) as u32) << 8 | *chunk.get(2).unwrap_or(&0) as u32;
        for position in 0..4 {
            if position <= chunk.len() {
                text.push(ALPHABET[(value >> (18 - 6 * position) & 0x3f) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// The `ip` id of a client address, written as Java's `InetAddress.getHostAddress` writes
/// it (ZooKeeper's IPAuthenticationProvider): IPv4 dotted; IPv6 as eight hex groups without
/// leading zeros and without `::` compression; an IPv4-mapped IPv6 address as the IPv4
/// address it maps (Java hands those over as Inet4Address).
pub fn ip_id(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_string(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.segments().iter().map(|group| format!("{group:x}")).collect::<Vec<_>>().join(":"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn sha1_matches_the_standard_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
        assert_eq!(hex(&sha1(long)), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    }

    #[test]
    fn base64_pads_like_java() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }

    fn digest(user: &str) -> Identity {
        ("digest".to_owned(), digest_id(format!("{user}:p").as_bytes()))
    }

    fn users(ids: &AuthIds) -> Vec<String> {
        ids.as_slice().iter().map(user_of).collect()
    }

    #[test]
    fn id_hashes_match_the_jdk() {
        assert_eq!(java_id_hash(&("".into(), "".into())), 17 * 37 * 37);
    }

    #[test]
    fn auth_ids_iterate_as_zookeeper_lists_them() {
        // whoAmI on ZooKeeper 3.8.0 after digest auth carol:wrong, bob:hunter2,
        // alice:secret from 127.0.0.1 (probe_differences.py).
        let mut ids = AuthIds::from_added([("ip".to_owned(), "127.0.0.1".to_owned())]);
        for credential in ["carol:wrong", "bob:hunter2", "alice:secret"] {
            assert!(ids.insert(("digest".to_owned(), digest_id(credential.as_bytes()))));
        }
        assert!(!ids.insert(("digest".to_owned(), digest_id(b"bob:hunter2"))));
        assert_eq!(users(&ids), ["bob", "alice", "carol", "127.0.0.1"]);
    }

    #[test]
    fn auth_ids_keep_zookeepers_order_across_a_resize() {
        // whoAmI on ZooKeeper 3.8.0 after digest auth u0:p .. u13:p from 127.0.0.1: the
        // twelfth id doubled the table to 32 bins.
        let mut ids = AuthIds::from_added([("ip".to_owned(), "127.0.0.1".to_owned())]);
        for user in 0..14 {
            ids.insert(digest(&format!("u{user}")));
        }
        assert_eq!(
            users(&ids),
            ["u3", "u5", "u7", "u11", "127.0.0.1", "u9", "u2", "u8", "u12", "u0", "u1", "u13", "u6", "u4", "u10"]
        );
    }

    #[test]
    fn a_split_bin_reverses_the_entries_before_its_last_run() {
        // ConcurrentHashMap.transfer: in a bin [a(low), b(low), c(high)] the last run is
        // [c]; a and then b are pushed in front of the low bin, which comes out [b, a].
        let mut by_side: [Vec<Identity>; 2] = [Vec::new(), Vec::new()];
        let mut user = 0;
        while by_side[0].len() < 2 || by_side[1].is_empty() {
            let id = ("x".to_owned(), format!("{user}"));
            let hash = spread(java_id_hash(&id));
            if hash & 15 == 0 {
                by_side[usize::from(hash & 16 != 0)].push(id);
            }
            user += 1;
        }
        let [low, high] = by_side;
        let mut ids = AuthIds::from_added([low[0].clone(), low[1].clone(), high[0].clone()]);
        assert_eq!(ids.as_slice(), [low[0].clone(), low[1].clone(), high[0].clone()]);
        ids.double();
        assert_eq!(ids.as_slice(), [low[1].clone(), low[0].clone(), high[0].clone()]);
    }

    #[test]
    fn digest_ids_are_user_and_base64_sha1_of_user_colon_password() {
        // The example of ZooKeeper's programmer's guide: super:test.
        assert_eq!(digest_id(b"super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert_eq!(user_of(&("digest".into(), "u:abc".into())), "u");
        assert_eq!(user_of(&("ip".into(), "127.0.0.1".into())), "127.0.0.1");
    }

    #[test]
    fn ip_ids_are_written_as_java_writes_host_addresses() {
        assert_eq!(ip_id("127.0.0.1".parse().unwrap()), "127.0.0.1");
        assert_eq!(ip_id("::1".parse().unwrap()), "0:0:0:0:0:0:0:1");
        assert_eq!(ip_id("fe80::1:abcd".parse().unwrap()), "fe80:0:0:0:0:0:1:abcd");
        assert_eq!(ip_id("::ffff:10.1.2.3".parse().unwrap()), "10.1.2.3");
    }
}
