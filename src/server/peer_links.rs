//! The links between ensemble members, on core 0. Every member dials every other one on
//! its quorum port and sends only on the link it dialed; what it receives comes in on the
//! links the others dialed. A link that closes tells the consensus core at once: when a
//! leader's process dies its followers see their links from it close and start looking
//! for a new leader without waiting out the sync limit.

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
    wakes: Vec<(MemberId, SocketAddr, LocalReceiver<()>)>,
}

pub fn links(my_id: MemberId, peers: &[(MemberId, SocketAddr)]) -> (Rc<PeerLinks>, Dialers) {
    let mut outboxes = BTreeMap::new();
    let mut wakes = Vec::new();
    for &(id, address) in peers.iter().filter(|(id, _)| *id != my_id) {
        let (wake, woken) = local_channel::new_bounded(1);
        let outbox =
            Outbox { bytes: RefCell::new(Vec::new()), connected: Cell::new(false), overflowed: Cell::new(false), wake };
        outboxes.insert(id, outbox);
        wakes.push((id, address, woken));
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
) -> Result<(), String> {
    let listener =
        TcpListener::bind(listen_on).map_err(|error| format!("cannot listen on quorum port {listen_on}: {error}"))?;
    glommio::spawn_local(accept(listener, members, driver.clone())).detach();
    for (peer, address, woken) in dialers.wakes {
        glommio::spawn_local(dial(my_id, peer, address, woken, links.clone(), driver.clone())).detach();
    }
    Ok(())
}

async fn dial(
    my_id: MemberId,
    peer: MemberId,
    address: SocketAddr,
    woken: LocalReceiver<()>,
    links: Rc<PeerLinks>,
    driver: Rc<RefCell<Ensemble>>,
) {
    let outbox = &links.outboxes[&peer];
    let mut backoff_ms = 10;
    loop {
        let mut stream = match TcpStream::connect(address).await {
            Ok(stream) => stream,
            Err(_) => {
                glommio::timer::sleep(Duration::from_millis(backoff_ms)).await;
                backoff_ms = (backoff_ms * 2).min(DIAL_BACKOFF_MS_MAX);
                continue;
            }
        };
        backoff_ms = 10;
        let _ = stream.set_nodelay(true);
        let mut hello = Vec::new();
        peer_codec::encode(&PeerFrame::Hello { member: my_id }, &mut hello);
        if stream.write_all(&hello).await.is_err() {
            continue;
        }
        tracing::info!(peer, %address, "peer link up");
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
        tracing::info!(peer, "peer link down");
        driver.borrow_mut().link_lost(peer);
    }
}

async fn accept(listener: TcpListener, members: BTreeSet<MemberId>, driver: Rc<RefCell<Ensemble>>) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                glommio::spawn_local(receive(stream, members.clone(), driver.clone())).detach();
            }
            Err(error) => {
                tracing::warn!(%error, "quorum port accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Reads one peer's frames until its link closes, then tells the driver.
async fn receive(mut stream: TcpStream, members: BTreeSet<MemberId>, driver: Rc<RefCell<Ensemble>>) {
    let remote = stream.peer_addr().ok();
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
