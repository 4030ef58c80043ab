//! The pieces both ends of a TLS link are built from: the crypto provider with the
//! configured cipher suites, the protocol versions, and the trusted roots.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;

use super::settings::{TlsSettings, TlsVersion};
use super::store;

/// ring's provider, keeping only the suites `ssl.ciphersuites` names (all by default).
/// Java names TLS 1.3 suites `TLS_AES_128_GCM_SHA256` where rustls says `TLS13_...`.
pub fn provider(settings: &TlsSettings) -> Result<Arc<CryptoProvider>, String> {
    // Deprecated for lacking post-quantum key exchange, which no ZooKeeper client (Java's
    // JSSE included) offers; aws-lc-rs, which has it, needs cmake and minutes to build.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = &settings.cipher_suites {
        let java_name = |suite: &rustls::SupportedCipherSuite| {
            suite.suite().as_str().unwrap_or_default().replacen("TLS13_", "TLS_", 1)
        };
        let offered: Vec<String> = provider.cipher_suites.iter().map(java_name).collect();
        for name in names.iter().filter(|name| !offered.contains(name)) {
            tracing::warn!(suite = %name, "ssl.ciphersuites: a suite this server does not offer; ignored");
        }
        provider.cipher_suites.retain(|suite| names.contains(&java_name(suite)));
        if provider.cipher_suites.is_empty() {
            return Err(format!(
                "ssl.ciphersuites: none of {} is offered (offered: {})",
                names.join(","),
                offered.join(",")
            ));
        }
    }
    Ok(Arc::new(provider))
}

pub fn versions(settings: &TlsSettings) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    Ok(settings
        .versions()?
        .into_iter()
        .map(|version| match version {
            TlsVersion::Tls13 => &rustls::version::TLS13,
            TlsVersion::Tls12 => &rustls::version::TLS12,
        })
        .collect())
}

/// The trust store's certificates as roots.
pub fn roots(settings: &TlsSettings) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for certificate in store::load_trusted(&settings.trust_store)? {
        roots.add(certificate).map_err(|error| format!("trust store: a certificate cannot be trusted: {error}"))?;
    }
    Ok(Arc::new(roots))
}
