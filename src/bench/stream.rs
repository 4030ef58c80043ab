//! A generator's connection: plain TCP, or TLS to a secure client port (`--tls-*`), so
//! the TLS cost is measured with the same workloads.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::pki_types::ServerName;

pub enum BenchStream {
    Plain(TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

/// Connects, with TLS when a client configuration is given; the server's certificate is
/// checked against the address dialed.
pub async fn connect(server: SocketAddr, tls: Option<&Arc<rustls::ClientConfig>>) -> io::Result<BenchStream> {
    let stream = TcpStream::connect(server).await?;
    stream.set_nodelay(true)?;
    let Some(tls) = tls else { return Ok(BenchStream::Plain(stream)) };
    let name = ServerName::IpAddress(server.ip().into());
    let stream = futures_rustls::TlsConnector::from(tls.clone()).connect(name, stream).await?;
    Ok(BenchStream::Tls(Box::new(stream)))
}

impl AsyncRead for BenchStream {
    fn poll_read(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BenchStream::Plain(stream) => Pin::new(stream).poll_read(context, buffer),
            BenchStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for BenchStream {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, buffer: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            BenchStream::Plain(stream) => Pin::new(stream).poll_write(context, buffer),
            BenchStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, buffer),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BenchStream::Plain(stream) => Pin::new(stream).poll_flush(context),
            BenchStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_close(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            BenchStream::Plain(stream) => Pin::new(stream).poll_close(context),
            BenchStream::Tls(stream) => Pin::new(stream.as_mut()).poll_close(context),
        }
    }
}

/// The client configuration for `--tls-key-store` and `--tls-trust-store`.
pub fn client_config(settings: Option<&crate::tls::TlsSettings>) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    settings
        .map(|settings| {
            crate::tls::connector::client_config(settings).map(Arc::new).map_err(|error| format!("TLS: {error}"))
        })
        .transpose()
}
