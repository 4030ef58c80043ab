//! The links between ensemble members, on core 0. Every member dials every other one on
//! its quorum port and sends only on the link it dialed; what it receives comes in on the
//! links the others dialed. A link that closes tells the consensus core at once: when a
//! leader's process dies its followers see their links from it close and start looking
//! for a new leader without waiting out the sync limit. Under `sslQuorum` every link is
//! TLS with certificates on both ends, checked against the quorum trust store, and (with
//! `ssl.quorum.hostnameVerification`) against the host of the member each end says it is.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};

use super::deadline::within;
use super::ensemble::{Ensemble, PeerSender};
use super::peer_codec::{self, DecodeError, PeerFrame};
use crate::consensus::message::MemberId;
use crate::tls::QuorumTls;
use rustls::pki_types::{CertificateDer, ServerName};

/// Every member's id and the host of its `server.N` line.
pub type MemberHosts = Rc<BTreeMap<MemberId, String>>;

/// Bytes queued for one peer before the link is dropped (and the peer resynced later):
/// a peer that cannot keep up must not grow the leader's memory without bound.
const OUTBOX_BYTES_MAX: usize = 512 * 1024 * 1024;
const READ_CHUNK_BYTES: usize = 256 * 1024;
const DIAL_BACKOFF_MS_MAX: u64 = 500;

/// What is waiting to be written to one peer.
struct Outbox {
    /// Encoded frames, written in one go by the link's writer.
    bytes: RefCell<Vec<u8>>,
    connected: Cell<bool>,
    overflowed: Cell<bool>,
    wake: LocalSender<()>,
}

pub struct PeerLinks {
    outboxes: BTreeMap<MemberId, Outbox>,
}

impl PeerSender for PeerLinks {
    fn send(&self, to: MemberId, frame: &PeerFrame) {
        let Some(outbox) = self.outboxes.get(&to) else {
            tracing::warn!(to, "a frame for a member not in the configuration");
            return;
        };
        // Frames for a peer that is not connected are dropped: the consensus core resends
        // what matters, and a follower that lost its link to the leader starts over.
        if !outbox.connected.get() || outbox.overflowed.get() {
            return;
        }
        let mut bytes = outbox.bytes.borrow_mut();
        peer_codec::encode(frame, &mut bytes);
        if bytes.len() > OUTBOX_BYTES_MAX {
            tracing::warn!(to, queued_bytes = bytes.len(), "a peer is not reading; dropping its link");
            outbox.overflowed.set(true);
        }
        let _ = outbox.wake.try_send(());
    }
}

/// The links' sending halves, and what the link tasks need once the driver exists.
pub struct Dialers {
    wakes: Vec<(Peer, LocalReceiver<()>)>,
}

/// A member to dial: its id, its quorum address, and the host name its certificate is
/// checked against under quorum TLS.
#[derive(Debug, Clone)]
pub struct Peer {
    pub id: MemberId,
    pub address: SocketAddr,
    pub host: String,
}

pub fn links(my_id: MemberId, peers: &[Peer]) -> (Rc<PeerLinks>, Dialers) {
    let mut outboxes = BTreeMap::new();
    let mut wakes = Vec::new();
    for peer in peers.iter().filter(|peer| peer.id != my_id) {
        let (wake, woken) = local_channel::new_bounded(1);
        let outbox =
            Outbox { bytes: RefCell::new(Vec::new()), connected: Cell::new(false), overflowed: Cell::new(false), wake };
        outboxes.insert(peer.id, outbox);
        wakes.push((peer.clone(), woken));
    }
    (Rc::new(PeerLinks { outboxes }), Dialers { wakes })
}

/// Starts the listener and one dialer per peer.
pub fn start(
    my_id: MemberId,
    listen_on: SocketAddr,
    members: MemberHosts,
    links: Rc<PeerLinks>,
    dialers: Dialers,
    driver: Rc<RefCell<Ensemble>>,
    tls: Option<QuorumTls>,
) -> Result<(), String> {
    let listener =
        TcpListener::bind(listen_on).map_err(|error| format!("cannot listen on quorum port {listen_on}: {error}"))?;
    glommio::spawn_local(accept(listener, members, driver.clone(), tls.clone())).detach();
    for (peer, woken) in dialers.wakes {
        glommio::spawn_local(dial(my_id, peer, woken, links.clone(), driver.clone(), tls.clone())).detach();
    }
    Ok(())
}

async fn dial(
    my_id: MemberId,
    peer: Peer,
    woken: LocalReceiver<()>,
    links: Rc<PeerLinks>,
    driver: Rc<RefCell<Ensemble>>,
    tls: Option<QuorumTls>,
) {
    let outbox = &links.outboxes[&peer.id];
    let server_name = ServerName::try_from(peer.host.clone());
    let mut backoff_ms = 10;
    loop {
        let stream = match TcpStream::connect(peer.address).await {
            Ok(stream) => stream,
            Err(_) => {
                glommio::timer::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(DIAL_BACKOFF_MS_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let up = match (&tls, &server_name) {
            (None, _) => send_on_link(my_id, &peer, stream, &woken, outbox).await,
            (Some(tls), Ok(name)) => {
                let connector = futures_rustls::TlsConnector::from(tls.client.current());
                match within(tls.handshake_timeout_ms, connector.connect(name.clone(), stream)).await {
                    Some(Ok(stream)) => send_on_link(my_id, &peer, stream, &woken, outbox).await,
                    Some(Err(error)) => {
                        tracing::warn!(peer = peer.id, address = %peer.address, %error, "quorum TLS handshake failed");
                        false
                    }
                    None => {
                        tracing::warn!(peer = peer.id, address = %peer.address, "quorum TLS handshake not finished in time");
                        false
                    }
                }
            }
            (Some(_), Err(_)) => unreachable!("tls::quorum refuses hosts a certificate cannot name"),
        };
        if up {
            backoff_ms = 10;
            tracing::info!(peer = peer.id, "peer link down");
            driver.borrow_mut().link_lost(peer.id);
        } else {
            glommio::timer::sleep(Duration::from_millis(backoff_ms)).await;
            backoff_ms = (backoff_ms * 2).min(DIAL_BACKOFF_MS_MAX);
        }
    }
}

/// Sends this member's hello, then whatever the outbox gathers, until the link fails.
/// Returns whether the link came up (and is now down).
async fn send_on_link<S>(
    my_id: MemberId,
    peer: &Peer,
    mut stream: S,
    woken: &LocalReceiver<()>,
    outbox: &Outbox,
) -> bool
where
    S: futures_lite::AsyncRead + futures_lite::AsyncWrite + Unpin,
{
    let mut hello = Vec::new();
    peer_codec::encode(&PeerFrame::Hello { member: my_id }, &mut hello);
    if stream.write_all(&hello).await.is_err() || stream.flush().await.is_err() {
        return false;
    }
    tracing::info!(peer = peer.id, address = %peer.address, "peer link up");
    outbox.bytes.borrow_mut().clear();
    outbox.overflowed.set(false);
    outbox.connected.set(true);
    // The peer never writes on this link: a read that ends means it closed (its
    // process died), found at once rather than by the next write, which would be lost.
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    loop {
        let mut probe = [0u8; 1];
        let woken_up = async { woken.recv().await.is_some() };
        let closed = async {
            let _ = reader.read(&mut probe).await;
            false
        };
        if !futures_lite::future::or(woken_up, closed).await || outbox.overflowed.get() {
            break;
        }
        let bytes = std::mem::take(&mut *outbox.bytes.borrow_mut());
        if !bytes.is_empty() && (writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err()) {
            break;
        }
    }
    outbox.connected.set(false);
    outbox.bytes.borrow_mut().clear();
    true
}

async fn accept(listener: TcpListener, members: MemberHosts, driver: Rc<RefCell<Ensemble>>, tls: Option<QuorumTls>) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let (members, driver) = (members.clone(), driver.clone());
                match &tls {
                    None => {
                        let remote = stream.peer_addr().ok();
                        glommio::spawn_local(receive(stream, remote, None, members, driver)).detach();
                    }
                    Some(tls) => {
                        let handshake = (tls.server.current(), tls.handshake_timeout_ms, tls.hostname_verification);
                        glommio::spawn_local(receive_tls(stream, handshake, members, driver)).detach();
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%error, "quorum port accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// A link under quorum TLS: the handshake (the dialer's certificate checked against the
/// quorum trust store), then the same frames; with hostname verification, the hello must
/// name a member whose host the certificate names.
async fn receive_tls(
    stream: TcpStream,
    (tls, timeout_ms, hostname_verification): (std::sync::Arc<rustls::ServerConfig>, u64, bool),
    members: MemberHosts,
    driver: Rc<RefCell<Ensemble>>,
) {
    let remote = stream.peer_addr().ok();
    match within(timeout_ms, futures_rustls::TlsAcceptor::from(tls).accept(stream)).await {
        Some(Ok(stream)) => {
            let certificate = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).cloned();
            // Without hostname verification any certificate of the quorum CA may be any member.
            let checked = if hostname_verification { Some(certificate) } else { None };
            receive(stream, remote, checked, members, driver).await
        }
        Some(Err(error)) => tracing::warn!(?remote, %error, "quorum TLS handshake failed; closing"),
        None => tracing::warn!(?remote, "quorum TLS handshake not finished in time; closing"),
    }
}

/// Whether a link may speak for `member`: it is in the configuration and, where the
/// link's certificate is checked, the certificate names the member's host.
fn may_speak_for(
    member: MemberId,
    members: &MemberHosts,
    certificate: &Option<Option<CertificateDer<'static>>>,
) -> bool {
    let Some(host) = members.get(&member) else { return false };
    let Some(certificate) = certificate else { return true };
    let (Some(certificate), Ok(name)) = (certificate, ServerName::try_from(host.as_str())) else { return false };
    rustls::server::ParsedCertificate::try_from(certificate)
        .and_then(|parsed| rustls::client::verify_server_name(&parsed, &name))
        .is_ok()
}

/// Reads one peer's frames until its link closes, then tells the driver. `certificate`
/// is the link's TLS certificate where hostname verification checks it against the
/// member the hello names.
async fn receive<S: futures_lite::AsyncRead + Unpin>(
    mut stream: S,
    remote: Option<SocketAddr>,
    certificate: Option<Option<CertificateDer<'static>>>,
    members: MemberHosts,
    driver: Rc<RefCell<Ensemble>>,
) {
    let mut buffer: Vec<u8> = Vec::new();
    let mut from: Option<MemberId> = None;
    let mut chunk = vec![0; READ_CHUNK_BYTES];
    'reading: loop {
        let count = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(count) => count,
        };
        buffer.extend_from_slice(&chunk[..count]);
        let mut consumed = 0;
        loop {
            match peer_codec::decode(&buffer[consumed..]) {
                Ok((frame, used)) => {
                    consumed += used;
                    match (from, frame) {
                        (None, PeerFrame::Hello { member }) if may_speak_for(member, &members, &certificate) => {
                            from = Some(member)
                        }
                        (None, _) => {
                            tracing::warn!(
                                ?remote,
                                "a peer link that does not open with a known member's hello; closing"
                            );
                            break 'reading;
                        }
                        (Some(member), frame) => {
                            driver.borrow_mut().on_frame(member, frame);
                            glommio::yield_if_needed().await;
                        }
                    }
                }
                Err(DecodeError::Incomplete) => break,
                Err(error) => {
                    tracing::warn!(?remote, ?from, %error, "closing a peer link");
                    break 'reading;
                }
            }
        }
        buffer.drain(..consumed);
    }
    if let Some(member) = from {
        driver.borrow_mut().link_lost(member);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate from the fuzz corpus (made by tests/fixtures/make_certificates.sh).
    fn certificate(name: &str) -> CertificateDer<'static> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/certificate_subject").join(name);
        CertificateDer::from(std::fs::read(path).unwrap())
    }

    #[test]
    fn a_link_speaks_for_a_member_only_with_a_certificate_naming_its_host() {
        let members: MemberHosts = Rc::new([(1, "127.0.0.1".to_owned()), (2, "10.0.0.2".to_owned())].into());
        let naming_loopback = Some(Some(certificate("server.der")));
        assert!(may_speak_for(1, &members, &naming_loopback));
        assert!(!may_speak_for(2, &members, &naming_loopback), "the certificate names another host");
        assert!(!may_speak_for(1, &members, &Some(Some(certificate("client.der")))), "it names no host");
        assert!(!may_speak_for(1, &members, &Some(None)), "no certificate");
        assert!(!may_speak_for(3, &members, &naming_loopback), "not a member");
    }

    #[test]
    fn without_hostname_verification_any_member_may_be_claimed() {
        let members: MemberHosts = Rc::new([(1, "127.0.0.1".to_owned())].into());
        assert!(may_speak_for(1, &members, &None));
        assert!(!may_speak_for(2, &members, &None));
    }
}
