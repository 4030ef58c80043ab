//! Two JDK algorithms ZooKeeper's files depend on: `java.util.zip.Adler32`, the checksum of
//! its snapshots and log records, and `java.util.Random`, which derives a session's
//! password from its id (`ZooKeeperServer.generatePasswd`), so imported sessions keep the
//! passwords their clients hold.

/// Adler-32 (RFC 1950) of `bytes`, as `Adler32.getValue()`.
pub fn adler32(bytes: &[u8]) -> u32 {
    const MODULUS: u32 = 65_521;
    // 5552 bytes is the most that can be summed before the u32 sums could overflow.
    const CHUNK_BYTES: usize = 5552;
    let (mut low, mut high) = (1u32, 0u32);
    for chunk in bytes.chunks(CHUNK_BYTES) {
        for &byte in chunk {
            low += u32::from(byte);
            high += low;
        }
        low %= MODULUS;
        high %= MODULUS;
    }
    (high << 16) | low
}

/// `ZooKeeperServer.superSecret`, mixed into every password's seed.
const SUPER_SECRET: i64 = 0xB341_5C00;

/// The password ZooKeeper gives session `session_id`:
/// `new Random(sessionId ^ superSecret).nextBytes(new byte[16])`.
pub fn session_password(session_id: i64) -> [u8; 16] {
    const MULTIPLIER: u64 = 0x5_DEEC_E66D;
    const MASK: u64 = (1 << 48) - 1;
    let mut seed = ((session_id ^ SUPER_SECRET) as u64 ^ MULTIPLIER) & MASK;
    let mut password = [0u8; 16];
    for word in password.chunks_mut(4) {
        seed = (seed.wrapping_mul(MULTIPLIER).wrapping_add(0xB)) & MASK;
        let next_int = (seed >> 16) as u32;
        // nextBytes takes each int's bytes low byte first.
        word.copy_from_slice(&next_int.to_le_bytes());
    }
    password
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adler32_matches_the_rfc_1950_definition() {
        // zlib.adler32(b"Wikipedia") == 0x11E60398, the RFC's worked example.
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(adler32(b""), 1);
        // Long inputs cross the chunk boundary where the sums are reduced.
        let long: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
        let (mut low, mut high) = (1u64, 0u64);
        for &byte in &long {
            low = (low + u64::from(byte)) % 65_521;
            high = (high + low) % 65_521;
        }
        assert_eq!(adler32(&long), ((high << 16) | low) as u32);
    }

    #[test]
    fn a_session_password_is_what_java_util_random_draws() {
        // new Random(0L).nextInt() is -1155484576 (0xBB20B460), the JDK's well-known
        // first draw; the seed 0 is the session id equal to superSecret.
        let password = session_password(SUPER_SECRET);
        assert_eq!(password[..4], (-1_155_484_576i32 as u32).to_le_bytes());
        assert_ne!(session_password(1), session_password(2));
    }
}
