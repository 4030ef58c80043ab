//! TLS for the secure client port (`secureClientPort`) and the quorum links (`sslQuorum`),
//! configured with ZooKeeper's `ssl.*` and `ssl.quorum.*` keys. rustls does the protocol;
//! this module turns the keys into its configurations, reloads them when their files
//! change, and names a client certificate's subject for the `x509` ACL scheme.

pub mod acceptor;
pub mod connector;
mod crypto;
mod der;
pub mod jks;
pub mod reloading;
pub mod settings;
mod store;
pub mod subject;

pub use reloading::Reloading;
pub use settings::TlsSettings;

use std::sync::Arc;

use crate::config::Config;

/// The client ports' TLS configuration, if `secureClientPort` or
/// `client.portUnification` asks for one.
pub fn client_port(config: &Config) -> Result<Option<Arc<Reloading<rustls::ServerConfig>>>, String> {
    if config.secure_client_port.is_none() && !config.client_port_unification {
        return Ok(None);
    }
    Reloading::load("client", &config.client_tls, acceptor::server_config).map(|loaded| Some(Arc::new(loaded)))
}

/// Both ends of the quorum links under `sslQuorum`.
#[derive(Clone)]
pub struct QuorumTls {
    pub server: Arc<Reloading<rustls::ServerConfig>>,
    pub client: Arc<Reloading<rustls::ClientConfig>>,
    pub handshake_timeout_ms: u64,
    pub hostname_verification: bool,
}

pub fn quorum(config: &Config) -> Result<Option<QuorumTls>, String> {
    if !config.ssl_quorum || !config.is_ensemble() {
        return Ok(None);
    }
    for server in &config.servers {
        rustls::pki_types::ServerName::try_from(server.host.as_str()).map_err(|error| {
            format!("server.{}: '{}' is not a host a certificate can name: {error}", server.id, server.host)
        })?;
    }
    let server = Arc::new(Reloading::load("quorum listener", &config.quorum_tls, acceptor::server_config)?);
    let client = Arc::new(Reloading::load("quorum dialer", &config.quorum_tls, connector::client_config)?);
    let settings = &config.quorum_tls;
    Ok(Some(QuorumTls {
        server,
        client,
        handshake_timeout_ms: settings.handshake_timeout_ms,
        // A listener that asks dialers for no certificate (`ssl.quorum.clientAuth=none`)
        // has none to check against the member a hello names.
        hostname_verification: settings.hostname_verification && settings.client_auth != settings::ClientAuth::None,
    }))
}

/// Polls the files of every configuration whose reloading is on.
pub fn watch_files(
    config: &Config,
    client: Option<&Arc<Reloading<rustls::ServerConfig>>>,
    quorum: Option<&QuorumTls>,
) -> Result<(), String> {
    let mut reloads: Vec<Arc<dyn reloading::Reload>> = Vec::new();
    if let Some(client) = client.filter(|_| config.client_certificate_reload) {
        reloads.push(client.clone());
    }
    if let Some(quorum) = quorum.filter(|_| config.quorum_certificate_reload) {
        reloads.push(quorum.server.clone());
        reloads.push(quorum.client.clone());
    }
    reloading::watch(reloads)
}

/// Whether a failed handshake failed on bytes that are not TLS records at all (a client
/// speaking the plain protocol, or a four-letter word, to the secure port).
pub fn is_plain_text(error: &std::io::Error) -> bool {
    matches!(
        error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        Some(rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType))
    )
}
