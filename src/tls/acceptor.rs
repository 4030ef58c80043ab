//! The server end of TLS: the secure client port and the quorum port's listener.

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use super::crypto;
use super::settings::{ClientAuth, TlsSettings};
use super::store;

/// A server configuration from the settings: its certificate and key, and, unless
/// `clientAuth=none`, the roots a client's certificate must chain to.
pub fn server_config(settings: &TlsSettings) -> Result<ServerConfig, String> {
    let provider = crypto::provider(settings)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&crypto::versions(settings)?)
        .map_err(|error| format!("TLS versions: {error}"))?;
    let builder = match settings.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Want | ClientAuth::Need => {
            if settings.trust_store.path.is_none() {
                return Err("ssl.clientAuth asks for client certificates but no trustStore.location says which CA \
                            signs them (set clientAuth=none to not ask)"
                    .into());
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(crypto::roots(settings)?, provider);
            let verifier =
                if settings.client_auth == ClientAuth::Want { verifier.allow_unauthenticated() } else { verifier };
            builder.with_client_cert_verifier(verifier.build().map_err(|error| format!("trust store: {error}"))?)
        }
    };
    let (chain, key) = store::load_identity(&settings.key_store)?;
    let config = builder.with_single_cert(chain, key).map_err(|error| format!("key store: {error}"))?;
    Ok(config)
}

/// The subject of the client's certificate, if it presented one (verified by then).
pub fn peer_subject(connection: &rustls::ServerConnection) -> Option<Result<String, super::der::DerError>> {
    let leaf = connection.peer_certificates()?.first()?;
    Some(super::subject::certificate_subject(leaf))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_for_client_certificates_needs_a_trust_store() {
        let mut settings = TlsSettings::default();
        settings.apply("keyStore.location", "/nonexistent/server.pem").unwrap();
        let error = server_config(&settings).unwrap_err();
        assert!(error.contains("trustStore.location"), "{error}");
    }

    #[test]
    fn a_missing_key_store_is_named_in_the_error() {
        let mut settings = TlsSettings::default();
        settings.apply("keyStore.location", "/nonexistent/server.pem").unwrap();
        settings.apply("clientAuth", "none").unwrap();
        let error = server_config(&settings).unwrap_err();
        assert!(error.contains("/nonexistent/server.pem"), "{error}");
    }
}
