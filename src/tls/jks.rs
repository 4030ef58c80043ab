//! Java's own key store format (JKS), which `keytool` wrote by default before Java 9 and
//! still writes with `-storetype JKS`: many ZooKeeper deployments hold their keys in one.
//! Sans-IO: it reads bytes.
//!
//! ```text
//! magic 0xFEEDFEED | version 2 | count, then per entry:
//!   1 (private key) | alias | time ms | protected key (len, bytes) | chain (count, then per
//!     certificate: type "X.509", len, DER)
//!   2 (trusted certificate) | alias | time ms | type "X.509" | len | DER
//! SHA-1(password as UTF-16BE | "Mighty Aphrodite" | everything before)
//! ```
//! A private key is protected by Sun's `KeyProtector`: an EncryptedPrivateKeyInfo whose
//! data is a 20-byte salt, the PKCS#8 key XORed with SHA-1(password | previous block)
//! blocks started from the salt, and SHA-1(password | key) to check it.

use super::der;

const MAGIC: u32 = 0xFEED_FEED;
const DIGEST_BYTES: usize = 20;
/// Stores hold a handful of entries and certificates; the bound keeps hostile input cheap.
const ENTRIES_MAX: u32 = 4096;
const CHAIN_MAX: u32 = 64;

/// What a JKS store holds: its private keys (PKCS#8) with their chains, and its trusted
/// certificates.
#[derive(Debug, Default)]
pub struct JksStore {
    pub keys: Vec<(Vec<u8>, Vec<Vec<u8>>)>,
    pub trusted: Vec<Vec<u8>>,
}

pub fn is_jks(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC.to_be_bytes())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(count).filter(|&end| end <= self.bytes.len());
        let end = end.ok_or_else(|| format!("JKS store cut short at offset {}", self.at))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("two bytes")))
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("four bytes")))
    }

    /// `DataInput.readUTF`: a 2-byte length and modified UTF-8, skipped.
    fn skip_utf(&mut self) -> Result<(), String> {
        let length = self.u16()? as usize;
        self.take(length).map(|_| ())
    }

    fn block(&mut self) -> Result<Vec<u8>, String> {
        let length = self.u32()? as usize;
        Ok(self.take(length)?.to_vec())
    }

    /// A certificate of a version 2 store: its type, then its DER.
    fn certificate(&mut self) -> Result<Vec<u8>, String> {
        self.skip_utf()?;
        self.block()
    }
}

fn sha1(parts: &[&[u8]]) -> [u8; DIGEST_BYTES] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    for part in parts {
        context.update(part);
    }
    context.finish().as_ref().try_into().expect("SHA-1 is 20 bytes")
}

/// The password as Java's key stores hash it: each UTF-16 unit, big-endian.
fn password_bytes(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// The digest that ends a store: SHA-1 over the password, a fixed phrase and the body.
pub fn integrity_digest(password: &str, body: &[u8]) -> [u8; DIGEST_BYTES] {
    sha1(&[&password_bytes(password), b"Mighty Aphrodite", body])
}

/// Reads a store, checking its integrity digest with `password` first.
pub fn read(bytes: &[u8], password: &str) -> Result<JksStore, String> {
    let Some(body_bytes) = bytes.len().checked_sub(DIGEST_BYTES) else {
        return Err("JKS store too short".into());
    };
    let (body, digest) = bytes.split_at(body_bytes);
    if integrity_digest(password, body) != digest {
        return Err("JKS store: wrong password, or the store is damaged".into());
    }
    let password = password_bytes(password);
    let mut reader = Reader { bytes: body, at: 0 };
    if reader.u32()? != MAGIC {
        return Err("not a JKS store".into());
    }
    let version = reader.u32()?;
    if version != 2 {
        return Err(format!("JKS store version {version}, not 2"));
    }
    let count = reader.u32()?;
    if count > ENTRIES_MAX {
        return Err(format!("JKS store of {count} entries"));
    }
    let mut store = JksStore::default();
    for _ in 0..count {
        let tag = reader.u32()?;
        reader.skip_utf()?;
        reader.take(8)?;
        match tag {
            1 => {
                let protected = reader.block()?;
                let chain_length = reader.u32()?;
                if chain_length > CHAIN_MAX {
                    return Err(format!("a JKS chain of {chain_length} certificates"));
                }
                let chain = (0..chain_length).map(|_| reader.certificate()).collect::<Result<Vec<_>, _>>()?;
                store.keys.push((unprotect(&protected, &password)?, chain));
            }
            2 => store.trusted.push(reader.certificate()?),
            other => return Err(format!("JKS entry of kind {other} (secret keys are for JCEKS)")),
        }
    }
    Ok(store)
}

/// `KeyProtector.recover`: the PKCS#8 key inside an EncryptedPrivateKeyInfo.
fn unprotect(protected: &[u8], password: &[u8]) -> Result<Vec<u8>, String> {
    let malformed = |_| "a JKS private key is not an EncryptedPrivateKeyInfo".to_owned();
    let (info, _) = der::expect(protected, der::TAG_SEQUENCE, "EncryptedPrivateKeyInfo").map_err(malformed)?;
    let (_algorithm, rest) = der::expect(info.content, der::TAG_SEQUENCE, "algorithm").map_err(malformed)?;
    let (data, _) = der::expect(rest, der::TAG_OCTET_STRING, "encrypted data").map_err(malformed)?;
    let data = data.content;
    if data.len() < 2 * DIGEST_BYTES {
        return Err("a JKS private key too short".into());
    }
    let (salt, rest) = data.split_at(DIGEST_BYTES);
    let (encrypted, check) = rest.split_at(rest.len() - DIGEST_BYTES);
    let mut key = Vec::with_capacity(encrypted.len());
    let mut block = sha1(&[password, salt]);
    for chunk in encrypted.chunks(DIGEST_BYTES) {
        key.extend(chunk.iter().zip(block).map(|(byte, mask)| byte ^ mask));
        block = sha1(&[password, &block]);
    }
    if sha1(&[password, &key]) != check {
        return Err("a JKS private key does not decrypt with the store's password".into());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf(text: &str) -> Vec<u8> {
        [&(text.len() as u16).to_be_bytes()[..], text.as_bytes()].concat()
    }

    fn block(bytes: &[u8]) -> Vec<u8> {
        [&(bytes.len() as u32).to_be_bytes()[..], bytes].concat()
    }

    /// A key protected as `KeyProtector.protect` does, with a fixed salt.
    fn protect(key: &[u8], password: &[u8]) -> Vec<u8> {
        let salt = [9u8; DIGEST_BYTES];
        let mut data = salt.to_vec();
        let mut mask = sha1(&[password, &salt]);
        for chunk in key.chunks(DIGEST_BYTES) {
            data.extend(chunk.iter().zip(mask).map(|(byte, mask)| byte ^ mask));
            mask = sha1(&[password, &mask]);
        }
        data.extend(sha1(&[password, key]));
        let algorithm = [0x30, 0x02, 0x05, 0x00];
        let octets = [&[0x04, data.len() as u8][..], &data].concat();
        let content = [&algorithm[..], &octets].concat();
        [&[0x30, content.len() as u8][..], &content].concat()
    }

    fn store(password: &str, key: &[u8], trusted: &[u8]) -> Vec<u8> {
        let secret = password_bytes(password);
        let mut body = [MAGIC.to_be_bytes(), 2u32.to_be_bytes(), 2u32.to_be_bytes()].concat();
        body.extend([&1u32.to_be_bytes()[..], &utf("server"), &[0; 8], &block(&protect(key, &secret))].concat());
        body.extend([&1u32.to_be_bytes()[..], &utf("X.509"), &block(b"leaf certificate")].concat());
        body.extend([&2u32.to_be_bytes()[..], &utf("ca"), &[0; 8], &utf("X.509"), &block(trusted)].concat());
        let digest = integrity_digest(password, &body);
        [body, digest.to_vec()].concat()
    }

    #[test]
    fn a_store_gives_back_its_key_chain_and_trusted_certificates() {
        let key = b"a PKCS#8 key of more than one SHA-1 block in length".to_vec();
        let bytes = store("changeit", &key, b"ca certificate");
        assert!(is_jks(&bytes));
        let read = read(&bytes, "changeit").unwrap();
        assert_eq!(read.keys, vec![(key, vec![b"leaf certificate".to_vec()])]);
        assert_eq!(read.trusted, vec![b"ca certificate".to_vec()]);
    }

    #[test]
    fn a_wrong_password_or_a_damaged_store_is_refused() {
        let bytes = store("changeit", b"key", b"ca");
        assert!(read(&bytes, "other").unwrap_err().contains("wrong password"));
        let mut damaged = bytes.clone();
        damaged[30] ^= 1;
        assert!(read(&damaged, "changeit").is_err());
        for length in 0..bytes.len() {
            assert!(read(&bytes[..length], "changeit").is_err());
        }
    }
}
