//! The links between ensemble members, on core 0. Every member dials every other one on
//! its quorum port and sends only on the link it dialed; what it receives comes in on the
//! links the others dialed. A link that closes tells the consensus core at once: when a
//! leader's process dies its followers see their links from it close and start looking
//! for a new leader without waiting out the sync limit. Under `sslQuorum` every link is
//! TLS with certificates on both ends, checked against the quorum trust store.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};

use super::ensemble::{Ensemble, PeerSender};
use super::peer_codec::{self, DecodeError, PeerFrame};
use crate::consensus::message::MemberId;
use crate::tls::QuorumTls;
use rustls::pki_types::ServerName;

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
    members: BTreeSet<MemberId>,
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
                match connector.connect(name.clone(), stream).await {
                    Ok(stream) => send_on_link(my_id, &peer, stream, &woken, outbox).await,
                    Err(error) => {
                        tracing::warn!(peer = peer.id, address = %peer.address, %error, "quorum TLS handshake failed");
                        false
                    }
                }
            }
            (Some(_), Err(error)) => {
                tracing::error!(peer = peer.id, host = %peer.host, %error, "not a host name a certificate can be checked against");
                false
            }
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

async fn accept(
    listener: TcpListener,
    members: BTreeSet<MemberId>,
    driver: Rc<RefCell<Ensemble>>,
    tls: Option<QuorumTls>,
) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let (members, driver) = (members.clone(), driver.clone());
                match &tls {
                    None => {
                        let remote = stream.peer_addr().ok();
                        glommio::spawn_local(receive(stream, remote, members, driver)).detach();
                    }
                    Some(tls) => {
                        glommio::spawn_local(receive_tls(stream, tls.server.current(), members, driver)).detach();
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
/// quorum trust store), then the same frames.
async fn receive_tls(
    stream: TcpStream,
    tls: std::sync::Arc<rustls::ServerConfig>,
    members: BTreeSet<MemberId>,
    driver: Rc<RefCell<Ensemble>>,
) {
    let remote = stream.peer_addr().ok();
    match futures_rustls::TlsAcceptor::from(tls).accept(stream).await {
        Ok(stream) => receive(stream, remote, members, driver).await,
        Err(error) => tracing::warn!(?remote, %error, "quorum TLS handshake failed; closing"),
    }
}

/// Reads one peer's frames until its link closes, then tells the driver.
async fn receive<S: futures_lite::AsyncRead + Unpin>(
    mut stream: S,
    remote: Option<SocketAddr>,
    members: BTreeSet<MemberId>,
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
                        (None, PeerFrame::Hello { member }) if members.contains(&member) => from = Some(member),
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
