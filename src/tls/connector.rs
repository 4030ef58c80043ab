//! The client end of TLS: a member dialing another's quorum port presents its own
//! certificate and checks the other's against the quorum trust store.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::crypto;
use super::settings::TlsSettings;
use super::store;

pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, String> {
    if settings.trust_store.path.is_none() {
        return Err("quorum TLS needs ssl.quorum.trustStore.location: the CA that signs the members".into());
    }
    let provider = crypto::provider(settings)?;
    let verifier = WebPkiServerVerifier::builder_with_provider(crypto::roots(settings)?, provider.clone())
        .build()
        .map_err(|error| format!("quorum trust store: {error}"))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&crypto::versions(settings)?)
        .map_err(|error| format!("TLS versions: {error}"))?;
    let builder = if settings.hostname_verification {
        builder.with_webpki_verifier(verifier)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
    };
    let (chain, key) = store::load_identity(&settings.key_store)?;
    builder.with_client_auth_cert(chain, key).map_err(|error| format!("quorum key store: {error}"))
}

/// `ssl.quorum.hostnameVerification=false`: the peer's chain must still lead to a trusted
/// root and be valid now; only the name it was dialed by is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
