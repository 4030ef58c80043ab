//! Reads key and trust stores from disk: PEM (one file with the key and its certificate
//! chain, as ZooKeeper's `PEMFileLoader` reads it), PKCS12 (what `keytool` and `openssl
//! pkcs12` write) and JKS (`keytool` before Java 9, or `-storetype JKS`). BCFKS is
//! refused with the command that converts it.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::settings::StoreSettings;

/// A store's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Pem,
    Pkcs12,
    Jks,
}

/// `KeyStoreFileType.fromPropertyValueOrFileName`: the `type` key if given, else the
/// file's extension; then the bytes for a store called JKS. Since Java 9 `keytool`
/// writes PKCS12 whatever the file is called (and Java's JKS loader reads it), so a
/// `.jks` file that holds PKCS12 is read as PKCS12.
fn store_kind(store: &StoreSettings, path: &Path, bytes: &[u8]) -> Result<StoreKind, String> {
    /// A PKCS12 file is a DER SEQUENCE.
    const DER_SEQUENCE: u8 = 0x30;
    let named = match &store.kind {
        Some(kind) => kind.to_ascii_uppercase(),
        None => match path.extension().and_then(|extension| extension.to_str()).map(str::to_ascii_lowercase) {
            Some(extension) if extension == "pem" || extension == "crt" || extension == "key" => "PEM".to_owned(),
            Some(extension) if extension == "p12" || extension == "pfx" => "PKCS12".to_owned(),
            Some(extension) if extension == "jks" => "JKS".to_owned(),
            Some(extension) if extension == "bcfks" => "BCFKS".to_owned(),
            _ => {
                return Err(format!("{}: cannot tell the store's type; set its .type to PEM or PKCS12", path.display()))
            }
        },
    };
    match named.as_str() {
        "PEM" => Ok(StoreKind::Pem),
        "PKCS12" => Ok(StoreKind::Pkcs12),
        "JKS" if bytes.first() == Some(&DER_SEQUENCE) => Ok(StoreKind::Pkcs12),
        "JKS" if super::jks::is_jks(bytes) => Ok(StoreKind::Jks),
        "JKS" => Err(format!("{}: neither a JKS nor a PKCS12 store", path.display())),
        "BCFKS" => Err(format!(
            "{}: {named} stores are not supported; convert with `keytool -importkeystore -srckeystore {} \
             -destkeystore store.p12 -deststoretype PKCS12`",
            path.display(),
            path.display()
        )),
        other => Err(format!("{}: store type '{other}' is not PEM, PKCS12 or JKS", path.display())),
    }
}

fn password(store: &StoreSettings) -> Result<String, String> {
    match (&store.password_path, &store.password) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|error| format!("cannot read password file {}: {error}", path.display())),
        (None, Some(password)) => Ok(password.clone()),
        (None, None) => Ok(String::new()),
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("cannot read {}: {error}", path.display()))
}

/// The certificate chain (leaf first) and private key a side presents.
pub fn load_identity(store: &StoreSettings) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let path = store.path.as_deref().ok_or("no keyStore.location")?;
    let bytes = read_file(path)?;
    let (chain, key) = match store_kind(store, path, &bytes)? {
        StoreKind::Pem => {
            let chain = pem_certificates(&bytes, path)?;
            if bytes.windows(b"ENCRYPTED PRIVATE KEY".len()).any(|window| window == b"ENCRYPTED PRIVATE KEY") {
                return Err(format!(
                    "{}: encrypted PEM keys are not supported; write the key unencrypted \
                     (`openssl pkcs8 -topk8 -nocrypt`) with permissions that protect it, or use PKCS12",
                    path.display()
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(&bytes)
                .map_err(|error| format!("{}: no private key: {error}", path.display()))?;
            (chain, key)
        }
        StoreKind::Pkcs12 => {
            let keystore = p12_keystore::KeyStore::from_pkcs12(
                &bytes,
                &password(store)?,
                p12_keystore::Pkcs12ImportPolicy::Strict,
            )
            .map_err(|error| format!("{}: cannot read PKCS12 store: {error}", path.display()))?;
            let (_, chain) = keystore.private_key_chain().ok_or_else(|| {
                format!("{}: the PKCS12 store holds no private key with its certificate", path.display())
            })?;
            let certificates = chain.certs().iter().map(|cert| CertificateDer::from(cert.as_der().to_vec())).collect();
            (certificates, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec())))
        }
        StoreKind::Jks => {
            let store =
                super::jks::read(&bytes, &password(store)?).map_err(|error| format!("{}: {error}", path.display()))?;
            let (key, chain) = store
                .keys
                .into_iter()
                .next()
                .ok_or_else(|| format!("{}: the JKS store holds no private key", path.display()))?;
            (chain.into_iter().map(CertificateDer::from).collect(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
        }
    };
    if chain.is_empty() {
        return Err(format!("{}: no certificate", path.display()));
    }
    Ok((chain, key))
}

/// The certificates a side trusts.
pub fn load_trusted(store: &StoreSettings) -> Result<Vec<CertificateDer<'static>>, String> {
    let path = store.path.as_deref().ok_or("no trustStore.location")?;
    let bytes = read_file(path)?;
    let certificates = match store_kind(store, path, &bytes)? {
        StoreKind::Pem => pem_certificates(&bytes, path)?,
        StoreKind::Pkcs12 => {
            let keystore =
                p12_keystore::KeyStore::from_pkcs12(&bytes, &password(store)?, p12_keystore::Pkcs12ImportPolicy::Raw)
                    .map_err(|error| format!("{}: cannot read PKCS12 store: {error}", path.display()))?;
            keystore
                .entries()
                .filter_map(|(_, entry)| match entry {
                    p12_keystore::KeyStoreEntry::Certificate(cert) => {
                        Some(CertificateDer::from(cert.as_der().to_vec()))
                    }
                    _ => None,
                })
                .collect()
        }
        StoreKind::Jks => super::jks::read(&bytes, &password(store)?)
            .map_err(|error| format!("{}: {error}", path.display()))?
            .trusted
            .into_iter()
            .map(CertificateDer::from)
            .collect(),
    };
    if certificates.is_empty() {
        return Err(format!("{}: no certificate to trust", path.display()));
    }
    Ok(certificates)
}

fn pem_certificates(bytes: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{}: bad PEM certificate: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(path: &str, kind: Option<&str>) -> StoreSettings {
        StoreSettings { path: Some(path.into()), kind: kind.map(str::to_owned), ..StoreSettings::default() }
    }

    const PKCS12_START: &[u8] = &[0x30, 0x82, 0x03, 0xc6];
    const JKS_START: &[u8] = &[0xFE, 0xED, 0xFE, 0xED];

    #[test]
    fn the_type_key_wins_over_the_extension() {
        let path = Path::new("/x/server.bin");
        assert_eq!(store_kind(&store("/x/server.bin", Some("pkcs12")), path, PKCS12_START), Ok(StoreKind::Pkcs12));
        assert!(store_kind(&store("/x/server.bin", None), path, PKCS12_START).is_err());
    }

    #[test]
    fn the_extension_names_the_type_as_in_zookeeper() {
        for (file, kind) in [("a.pem", StoreKind::Pem), ("a.P12", StoreKind::Pkcs12), ("a.pfx", StoreKind::Pkcs12)] {
            assert_eq!(store_kind(&store(file, None), Path::new(file), b"-----BEGIN"), Ok(kind), "{file}");
        }
    }

    #[test]
    fn a_jks_named_store_that_holds_pkcs12_is_read_as_pkcs12_as_java_9_keytool_writes_it() {
        let path = Path::new("keystore.jks");
        assert_eq!(store_kind(&store("keystore.jks", None), path, PKCS12_START), Ok(StoreKind::Pkcs12));
        assert_eq!(store_kind(&store("k", Some("JKS")), Path::new("k"), PKCS12_START), Ok(StoreKind::Pkcs12));
    }

    #[test]
    fn a_real_jks_store_is_read_as_jks_and_bcfks_is_refused_with_the_conversion_command() {
        assert_eq!(store_kind(&store("a.jks", None), Path::new("a.jks"), JKS_START), Ok(StoreKind::Jks));
        assert!(store_kind(&store("a.jks", None), Path::new("a.jks"), b"garbage").is_err());
        let error = store_kind(&store("a.bcfks", None), Path::new("a.bcfks"), b"x").unwrap_err();
        assert!(error.contains("keytool -importkeystore"), "{error}");
    }
}
