//! The TLS keys of zoo.cfg, as ZooKeeper's `X509Util` reads them: `ssl.*` for the secure
//! client port, `ssl.quorum.*` for the links between members. ZooKeeper turns unknown
//! zoo.cfg keys into `zookeeper.`-prefixed system properties, so both spellings are taken.
//! Sans-IO: files are named here and read by `store`.

use std::path::PathBuf;

/// Which certificate and key (or which trusted certificates) a side presents or checks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreSettings {
    /// `ssl.keyStore.location` / `ssl.trustStore.location`.
    pub path: Option<PathBuf>,
    /// `...password`: a PKCS12 store's password.
    pub password: Option<String>,
    /// `...passwordPath`: a file holding the password (ZooKeeper 3.8), read at load time.
    pub password_path: Option<PathBuf>,
    /// `...type` as given (PEM, PKCS12, JKS; BCFKS is refused); without it, the file's extension
    /// decides, as ZooKeeper's `KeyStoreFileType.fromPropertyValueOrFileName`.
    pub kind: Option<String>,
}

/// `ssl.clientAuth`: whether the server asks a client for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate asked for.
    None,
    /// Asked for; a client without one still connects (without an x509 id).
    Want,
    /// Required: a client without a trusted certificate is refused (ZooKeeper's default).
    Need,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub key_store: StoreSettings,
    pub trust_store: StoreSettings,
    pub client_auth: ClientAuth,
    /// `ssl.protocol`: the newest version allowed (TLSv1.3 by default, as on Java 11+).
    pub protocol: Option<String>,
    /// `ssl.enabledProtocols`: the versions allowed. Without it, `ssl.protocol` alone,
    /// with TLSv1.2 beside TLSv1.3 so that older clients still connect.
    pub enabled_protocols: Option<Vec<String>>,
    /// `ssl.ciphersuites`: IANA (Java) names; by default every suite rustls offers.
    pub cipher_suites: Option<Vec<String>>,
    /// `ssl.hostnameVerification`: on quorum links, whether each end checks that the
    /// other's certificate names the host of the member it is (the client port never
    /// checks clients' names).
    pub hostname_verification: bool,
    /// `ssl.handshakeDetectionTimeoutMillis`: how long a handshake may take.
    pub handshake_timeout_ms: u64,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            key_store: StoreSettings::default(),
            trust_store: StoreSettings::default(),
            client_auth: ClientAuth::Need,
            protocol: None,
            enabled_protocols: None,
            cipher_suites: None,
            hostname_verification: true,
            handshake_timeout_ms: 5_000,
        }
    }
}

/// A TLS version rustls speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    fn parse(name: &str) -> Option<TlsVersion> {
        match name {
            "TLSv1.2" => Some(TlsVersion::Tls12),
            "TLSv1.3" | "TLS" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

impl TlsSettings {
    /// Takes one key (without its `ssl.` or `ssl.quorum.` prefix). `Ok(false)`: not a TLS
    /// key this side reads.
    pub fn apply(&mut self, name: &str, value: &str) -> Result<bool, String> {
        match name {
            "keyStore.location" => self.key_store.path = Some(PathBuf::from(value)),
            "keyStore.password" => self.key_store.password = Some(value.to_owned()),
            "keyStore.passwordPath" => self.key_store.password_path = Some(PathBuf::from(value)),
            "keyStore.type" => self.key_store.kind = Some(value.to_owned()),
            "trustStore.location" => self.trust_store.path = Some(PathBuf::from(value)),
            "trustStore.password" => self.trust_store.password = Some(value.to_owned()),
            "trustStore.passwordPath" => self.trust_store.password_path = Some(PathBuf::from(value)),
            "trustStore.type" => self.trust_store.kind = Some(value.to_owned()),
            "clientAuth" => {
                // X509Util.ClientAuth.fromPropertyValue: case-insensitive, empty is NEED.
                self.client_auth = match value.to_ascii_lowercase().as_str() {
                    "" | "need" => ClientAuth::Need,
                    "want" => ClientAuth::Want,
                    "none" => ClientAuth::None,
                    _ => return Err(format!("'{value}' is not none, want or need")),
                }
            }
            "protocol" => self.protocol = Some(value.to_owned()),
            // `protocols` is not ZooKeeper's name, but the one an operator guesses first.
            "enabledProtocols" | "protocols" => self.enabled_protocols = Some(comma_list(value)),
            "ciphersuites" => self.cipher_suites = Some(comma_list(value)),
            "hostnameVerification" => self.hostname_verification = !value.eq_ignore_ascii_case("false"),
            "handshakeDetectionTimeoutMillis" => {
                let timeout_ms: u64 = value.parse().map_err(|_| format!("'{value}' is not a number of ms"))?;
                self.handshake_timeout_ms = timeout_ms.max(1);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether this side has a certificate of its own to present.
    pub fn is_configured(&self) -> bool {
        self.key_store.path.is_some()
    }

    /// The versions to offer. An unknown or retired name (TLSv1, TLSv1.1, SSLv3) is
    /// refused rather than skipped: an operator who listed only old versions would
    /// otherwise get newer ones than asked for.
    pub fn versions(&self) -> Result<Vec<TlsVersion>, String> {
        let names: Vec<String> = match (&self.enabled_protocols, &self.protocol) {
            (Some(names), _) => names.clone(),
            (None, Some(protocol)) if protocol == "TLSv1.3" || protocol == "TLS" => {
                vec!["TLSv1.3".to_owned(), "TLSv1.2".to_owned()]
            }
            (None, Some(protocol)) => vec![protocol.clone()],
            (None, None) => vec!["TLSv1.3".to_owned(), "TLSv1.2".to_owned()],
        };
        let mut versions = Vec::with_capacity(names.len());
        for name in &names {
            let version = TlsVersion::parse(name)
                .ok_or_else(|| format!("TLS version '{name}' is not supported (TLSv1.2 and TLSv1.3 are)"))?;
            if !versions.contains(&version) {
                versions.push(version);
            }
        }
        if versions.is_empty() {
            return Err("no TLS version is enabled".into());
        }
        versions.sort_unstable_by(|a, b| b.cmp(a));
        Ok(versions)
    }

    /// Every file this side reads, for reloading when one changes.
    pub fn files(&self) -> Vec<PathBuf> {
        [&self.key_store, &self.trust_store]
            .into_iter()
            .flat_map(|store| [store.path.clone(), store.password_path.clone()])
            .flatten()
            .collect()
    }
}

fn comma_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_as_zookeeper_names_them() {
        let mut settings = TlsSettings::default();
        assert_eq!(settings.apply("keyStore.location", "/etc/rk/server.pem"), Ok(true));
        assert_eq!(settings.apply("trustStore.type", "PKCS12"), Ok(true));
        assert_eq!(settings.apply("clientAuth", "WANT"), Ok(true));
        assert_eq!(settings.apply("quorumListenOnAllIPs", "true"), Ok(false));
        assert_eq!(settings.key_store.path.as_deref(), Some(std::path::Path::new("/etc/rk/server.pem")));
        assert_eq!(settings.trust_store.kind.as_deref(), Some("PKCS12"));
        assert_eq!(settings.client_auth, ClientAuth::Want);
        assert!(settings.apply("clientAuth", "sometimes").is_err());
    }

    #[test]
    fn client_auth_is_need_unless_said_otherwise() {
        assert_eq!(TlsSettings::default().client_auth, ClientAuth::Need);
    }

    #[test]
    fn versions_default_to_tls13_and_tls12() {
        assert_eq!(TlsSettings::default().versions(), Ok(vec![TlsVersion::Tls13, TlsVersion::Tls12]));
        let mut only12 = TlsSettings::default();
        only12.apply("protocol", "TLSv1.2").unwrap();
        assert_eq!(only12.versions(), Ok(vec![TlsVersion::Tls12]));
        let mut listed = TlsSettings::default();
        listed.apply("enabledProtocols", "TLSv1.2, TLSv1.3").unwrap();
        assert_eq!(listed.versions(), Ok(vec![TlsVersion::Tls13, TlsVersion::Tls12]));
    }

    #[test]
    fn retired_versions_are_refused_not_skipped() {
        let mut old = TlsSettings::default();
        old.apply("enabledProtocols", "TLSv1.1").unwrap();
        assert!(old.versions().unwrap_err().contains("TLSv1.1"));
    }
}
