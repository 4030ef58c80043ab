//! A client connection: the handshake (or a four-letter word), then a reader that
//! frames and dispatches requests and a writer that flushes the connection's output.
//! Whatever a client sends, the worst outcome is its own connection closing.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::TcpStream;

use super::connection_state::{
    output_cap_bytes, Connection, Phase, OUTPUT_BYTES_HIGH_WATER, QUEUED_READS_MAX, QUEUED_REQUESTS_MAX,
};
use super::core_state::{CoreState, Dispatch};
use super::deadline::within;
use super::ensemble::Ensemble;
use super::four_letter;
use super::leader::Leader;
use super::messages::ToLeader;
use super::shared::Shared;
use super::statistics;
use crate::proto::connect::ConnectRequest;
use crate::proto::four_letter::is_allowed;
use crate::proto::request::{decode_request, Request};
use crate::proto::response::{encode_reply, ReplyBody};
use crate::proto::{four_letter as words, frame, ErrorCode};
use crate::session::auth::AuthIds;

/// The way from a core to the ordering point: a direct call on core 0 (to the ordering
/// point itself, or to the ensemble driver, which orders or forwards), a bounded channel
/// from the other cores.
pub enum LeaderLink {
    Local(Rc<RefCell<Leader>>),
    Ensemble(Rc<RefCell<Ensemble>>),
    Remote(glommio::channels::shared_channel::ConnectedSender<ToLeader>),
}

impl LeaderLink {
    /// Hands a message to the ordering point; false if it is gone (shutdown).
    pub async fn send(&self, message: ToLeader) -> bool {
        match self {
            LeaderLink::Local(leader) => {
                leader.borrow_mut().handle(message);
                true
            }
            LeaderLink::Ensemble(driver) => {
                driver.borrow_mut().handle(message);
                true
            }
            LeaderLink::Remote(sender) => sender.send(message).await.is_ok(),
        }
    }
}

/// What every connection task of a core shares.
pub struct CoreContext {
    pub core: usize,
    pub state: Rc<RefCell<CoreState>>,
    pub leader: LeaderLink,
    pub shared: std::sync::Arc<Shared>,
}

/// A connection's input buffer starts small (most sessions are idle or send one small
/// request at a time: thousands of them should not hold 64 KiB each) and doubles, up to
/// `INPUT_BYTES_MAX`, whenever a read fills it (a pipelining client).
const INPUT_BYTES_INITIAL: usize = 4 * 1024;
const INPUT_BYTES_MAX: usize = 64 * 1024;

/// Bytes read from the socket and not yet consumed as frames: `bytes[start..end]`. The
/// buffer is zeroed when it grows and is otherwise reused (it was resized by a 64 KiB
/// chunk before every read, which zeroed 64 KiB per small request).
struct Input {
    bytes: Vec<u8>,
    start: usize,
    end: usize,
}

impl Input {
    fn new() -> Input {
        Input { bytes: vec![0; INPUT_BYTES_INITIAL], start: 0, end: 0 }
    }

    fn available(&self) -> &[u8] {
        &self.bytes[self.start..self.end]
    }

    fn consume(&mut self, count: usize) {
        self.start += count;
        assert!(self.start <= self.end && self.end <= self.bytes.len());
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads until at least `count` bytes are available; false on end of stream.
    async fn fill<R: futures_lite::AsyncRead + Unpin>(&mut self, reader: &mut R, count: usize) -> bool {
        while self.end - self.start < count {
            if self.start + count > self.bytes.len() {
                // Not enough room after the unconsumed bytes: move them to the front, and
                // grow the buffer if the frame is larger than it.
                self.bytes.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if count > self.bytes.len() {
                    self.bytes.resize(count, 0);
                }
            }
            match reader.read(&mut self.bytes[self.end..]).await {
                Ok(0) | Err(_) => return false,
                Ok(read) => self.end += read,
            }
            if self.end == self.bytes.len() && self.bytes.len() < INPUT_BYTES_MAX {
                self.bytes.resize(self.bytes.len() * 2, 0);
            }
        }
        true
    }
}

/// A connection on the plain client port.
pub async fn serve(stream: TcpStream, context: Rc<CoreContext>) {
    let Some(peer) = admit(&stream, &context) else { return };
    let fd = stream.as_raw_fd();
    let (mut reader, writer) = futures_lite::io::split(stream);
    let mut input = Input::new();
    handshake_and_serve(&mut reader, writer, &mut input, fd, peer, None, &context).await;
    context.shared.release(peer.ip());
}

/// A connection on the secure client port: the TLS handshake within
/// `ssl.handshakeDetectionTimeoutMillis`, then the same protocol as the plain port. A
/// client certificate (verified by rustls against the trust store) gives the connection
/// its `x509` id.
pub async fn serve_tls(stream: TcpStream, tls: std::sync::Arc<rustls::ServerConfig>, context: Rc<CoreContext>) {
    let Some(peer) = admit(&stream, &context) else { return };
    let fd = stream.as_raw_fd();
    let timeout_ms = context.shared.config.client_tls.handshake_timeout_ms;
    let counters = &context.shared.counters[context.core];
    counters.tls_handshakes_in_progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let handshake = within(timeout_ms, futures_rustls::TlsAcceptor::from(tls).accept(stream)).await;
    counters.tls_handshakes_in_progress.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    if !matches!(handshake, Some(Ok(_))) {
        counters.tls_handshakes_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    match handshake {
        None => tracing::warn!(%peer, timeout_ms, "TLS handshake not finished in time; closing"),
        Some(Err(error)) if crate::tls::is_plain_text(&error) => {
            tracing::warn!(%peer, %error, "plain text on the secure client port, not a TLS handshake; closing")
        }
        Some(Err(error)) => tracing::warn!(%peer, %error, "TLS handshake failed; closing"),
        Some(Ok(stream)) => {
            let subject = match crate::tls::acceptor::peer_subject(stream.get_ref().1) {
                None => None,
                Some(Ok(subject)) => Some(subject),
                Some(Err(error)) => {
                    // Verified by rustls, yet its subject does not parse: served without an id.
                    tracing::warn!(%peer, %error, "a client certificate's subject cannot be read; no x509 id");
                    None
                }
            };
            let (mut reader, writer) = futures_lite::io::split(stream);
            let mut input = Input::new();
            handshake_and_serve(&mut reader, writer, &mut input, fd, peer, subject, &context).await;
        }
    }
    context.shared.release(peer.ip());
}

/// A connection on the plain port under `client.portUnification`: one that opens with a
/// TLS handshake record (first byte 0x16) is served as on the secure port, any other as
/// plain text (a frame's length starts with a 0 byte, a four-letter word with a letter),
/// as ZooKeeper's UnifiedServerSocket tells them apart.
pub async fn serve_unified(stream: TcpStream, tls: std::sync::Arc<rustls::ServerConfig>, context: Rc<CoreContext>) {
    const TLS_HANDSHAKE_RECORD: u8 = 0x16;
    let mut first = [0u8; 1];
    let timeout_ms = context.shared.config.sessionless_connection_timeout_ms;
    match within(timeout_ms, stream.peek(&mut first)).await {
        Some(Ok(1)) if first[0] == TLS_HANDSHAKE_RECORD => serve_tls(stream, tls, context).await,
        Some(Ok(_)) => serve(stream, context).await,
        Some(Err(_)) | None => {}
    }
}

/// The connection's peer, if its address is under `maxClientCnxns`.
fn admit(stream: &TcpStream, context: &CoreContext) -> Option<std::net::SocketAddr> {
    let peer = stream.peer_addr().ok()?;
    if !context.shared.admit(peer.ip()) {
        tracing::warn!(%peer, max = context.shared.config.max_client_connections, "too many connections from this address; closing");
        return None;
    }
    let _ = stream.set_nodelay(true);
    Some(peer)
}

/// The first frame of a connection, if it arrives whole within the sessionless timeout:
/// an idle or trickling socket (slowloris) does not hold its task and buffer forever
/// (ZooKeeper's `NIOServerCnxnFactory` expires sessionless connections the same way).
async fn first_frame<R: futures_lite::AsyncRead + Unpin>(
    reader: &mut R,
    input: &mut Input,
    peer: std::net::SocketAddr,
    context: &CoreContext,
) -> Option<FirstFrame> {
    let config = &context.shared.config;
    let timeout = std::time::Duration::from_millis(config.sessionless_connection_timeout_ms);
    let read = async {
        if !input.fill(reader, 4).await {
            return None;
        }
        let prefix: [u8; 4] = input.available()[..4].try_into().expect("four bytes");
        if let Some(command) = words::parse(prefix) {
            if command != "stmk" {
                return Some(FirstFrame::Word(command, None));
            }
            // stmk is followed by the mask, a big-endian long (`NIOServerCnxn`).
            if !input.fill(reader, 12).await {
                return None;
            }
            let mask: [u8; 8] = input.available()[4..12].try_into().expect("eight bytes");
            return Some(FirstFrame::Word(command, Some(i64::from_be_bytes(mask))));
        }
        next_frame(reader, input, config.jute_max_buffer_bytes, peer).await.map(FirstFrame::Connect)
    };
    let expired = async {
        glommio::timer::sleep(timeout).await;
        tracing::debug!(%peer, "no handshake within the sessionless connection timeout; closing");
        None
    };
    futures_lite::future::or(read, expired).await
}

enum FirstFrame {
    /// A four-letter word, with stmk's mask.
    Word(&'static str, Option<i64>),
    Connect(Vec<u8>),
}

async fn handshake_and_serve<R, W>(
    reader: &mut R,
    mut writer: W,
    input: &mut Input,
    fd: i32,
    peer: std::net::SocketAddr,
    certificate_subject: Option<String>,
    context: &Rc<CoreContext>,
) where
    R: futures_lite::AsyncRead + Unpin,
    W: futures_lite::AsyncWrite + Unpin + 'static,
{
    let frame_bytes = match first_frame(reader, input, peer, context).await {
        None => return,
        Some(FirstFrame::Word(command, argument)) => {
            if command == "crst" && is_allowed(&context.shared.config.four_letter_whitelist, command) {
                statistics::reset_connection_stats(&context.shared);
            }
            // Only the words that report the cores' figures wait for them (ruok, which
            // health checks and launch probes send, answers at once).
            if let Some(in_full) = four_letter::listing_needed(command) {
                refresh_listings(&context.shared, &context.leader, in_full).await;
            }
            let text = four_letter::answer(command, argument, &context.shared, peer);
            let _ = writer.write_all(text.as_bytes()).await;
            let _ = writer.flush().await;
            return;
        }
        Some(FirstFrame::Connect(frame_bytes)) => frame_bytes,
    };
    let max_bytes = context.shared.config.jute_max_buffer_bytes;
    let connect = match ConnectRequest::decode(&frame_bytes) {
        Ok(connect) => connect,
        Err(error) => {
            tracing::warn!(%peer, %error, "malformed connect request; closing");
            return;
        }
    };
    let committed_zxid = context.shared.committed_zxid();
    if connect.last_zxid_seen > committed_zxid {
        // A client must never see older state than it has seen (ZooKeeperServer
        // .processConnectRequest refuses the same way, and the client tries another server).
        tracing::info!(
            %peer,
            "refusing session request: client has seen zxid 0x{:x}, our last zxid is 0x{:x}",
            connect.last_zxid_seen,
            committed_zxid
        );
        return;
    }
    // A member without a quorum in read-only mode serves read-only sessions of its own and
    // refuses the rest, as ZooKeeper's ReadOnlyZooKeeperServer does.
    let read_only = context.shared.read_only.load(std::sync::atomic::Ordering::Acquire);
    if read_only && connect.read_only != Some(true) {
        tracing::info!(%peer, "refusing a session that is not read-only: this member has no quorum");
        return;
    }
    let (writer_wake, writer_woken) = local_channel::new_bounded(1);
    let (reader_wake, reader_woken) = local_channel::new_bounded(1);
    let timeout_ms = context.shared.config.negotiate_timeout_ms(connect.timeout_ms);
    let initial_identities = initial_identities(peer, certificate_subject.as_deref(), &context.shared.config);
    let connection = {
        let mut state = context.state.borrow_mut();
        let id = state.next_connection_id();
        let session_id = if read_only { state.next_read_only_session() } else { 0 };
        let connection = Rc::new(RefCell::new(Connection {
            id,
            peer,
            phase: if read_only { Phase::Connected } else { Phase::Connecting },
            session_id,
            timeout_ms,
            read_only_byte: connect.read_only,
            read_only_session: read_only,
            queue: VecDeque::new(),
            queued_reads: 0,
            output: Vec::new(),
            output_cap_bytes: output_cap_bytes(context.shared.config.jute_max_buffer_bytes),
            writer_wake,
            reader_wake,
            // The connect request and response count, as in ZooKeeper's listings.
            received: 1,
            sent: 0,
            last_zxid: 0,
            identities: std::sync::Arc::new(initial_identities.as_slice().to_vec()),
            auth_ids: initial_identities,
            certificate_subject,
            stats: Default::default(),
        }));
        state.connections.insert(id, connection.clone());
        state.counters().connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if read_only {
            state.sessions.insert(session_id, id);
            let mut conn = connection.borrow_mut();
            let response = crate::proto::connect::ConnectResponse {
                protocol_version: 0,
                timeout_ms,
                session_id,
                password: [0; crate::proto::connect::PASSWORD_SIZE_BYTES],
                read_only: Some(true),
            };
            super::core_state::write_connect_response(&mut conn.output, &response);
            conn.sent += 1;
        }
        connection
    };
    let id = connection.borrow().id;
    let writer_task = glommio::spawn_local(write_loop(connection.clone(), writer_woken, writer, fd));
    let sent = read_only
        || context
            .leader
            .send(ToLeader::Connect {
                member: context.shared.config.my_id,
                core: context.core,
                connection: id,
                session_id: connect.session_id,
                password: connect.password.clone(),
                timeout_ms,
            })
            .await;
    if sent {
        read_loop(reader, input, &connection, &reader_woken, context, max_bytes).await;
    }
    connection.borrow_mut().close();
    context.state.borrow_mut().remove_connection(id);
    // The writer flushes what is queued, then shuts the socket down.
    writer_task.await;
}

/// Every connection is `ip:<address>`; a TLS client's certificate adds its x509 ids
/// where the scheme is configured; with skipACL it also holds the marker that passes
/// every ACL check.
fn initial_identities(
    peer: std::net::SocketAddr,
    certificate_subject: Option<&str>,
    config: &crate::config::Config,
) -> AuthIds {
    let mut identities = vec![("ip".to_owned(), crate::session::auth::ip_id(peer.ip()))];
    if let Some(subject) = certificate_subject.filter(|_| config.x509_auth) {
        identities.extend(x509_identities(subject, config));
    }
    if config.skip_acl {
        identities.push((crate::tree::acl_check::SKIP_ACL_SCHEME.to_owned(), String::new()));
    }
    AuthIds::from_added(identities)
}

/// `X509AuthenticationProvider.handleAuthentication`: `super:<subject>` first if the
/// subject is the configured super user, then `x509:<subject>`.
fn x509_identities(subject: &str, config: &crate::config::Config) -> Vec<(String, String)> {
    let mut identities = Vec::with_capacity(2);
    if config.x509_super_user.as_deref() == Some(subject) {
        identities.push(("super".to_owned(), subject.to_owned()));
    }
    identities.push(("x509".to_owned(), subject.to_owned()));
    identities
}

/// The auth packet, answered at once as ZooKeeper does (not queued behind the session's
/// requests): the digest scheme adds `digest:user:<hash>` (and `super` for the configured
/// super digest), the ip scheme the client's address; any other scheme fails with
/// AuthFailed and closes the connection.
/// Returns whether the connection stays open.
fn authenticate(
    connection: &Rc<RefCell<Connection>>,
    config: &crate::config::Config,
    xid: i32,
    scheme: &str,
    credential: Option<&[u8]>,
) -> bool {
    let mut conn = connection.borrow_mut();
    if scheme == "ip" {
        // IPAuthenticationProvider.handleAuthentication adds ip:<client address>, which
        // every connection already holds, and answers OK whatever the credential.
        let ip = ("ip".to_owned(), crate::session::auth::ip_id(conn.peer.ip()));
        if conn.auth_ids.insert(ip) {
            conn.identities = std::sync::Arc::new(conn.auth_ids.as_slice().to_vec());
        }
        encode_reply(&mut conn.output, xid, 0, ErrorCode::Ok, &ReplyBody::Empty);
        conn.output_appended();
        return true;
    }
    // The x509 provider ignores the credential and authenticates the certificate the
    // connection presented; a connection without one fails.
    if scheme == "x509" && config.x509_auth {
        let Some(subject) = conn.certificate_subject.clone() else {
            tracing::info!(peer = %conn.peer, "x509 authentication failed: no client certificate");
            encode_reply(&mut conn.output, xid, 0, ErrorCode::AuthFailed, &ReplyBody::Empty);
            conn.close();
            return false;
        };
        let mut added = false;
        for identity in x509_identities(&subject, config) {
            added |= conn.auth_ids.insert(identity);
        }
        if added {
            conn.identities = std::sync::Arc::new(conn.auth_ids.as_slice().to_vec());
        }
        encode_reply(&mut conn.output, xid, 0, ErrorCode::Ok, &ReplyBody::Empty);
        conn.output_appended();
        return true;
    }
    // A null credential fails the digest provider (`new String(null)` throws in
    // DigestAuthenticationProvider.handleAuthentication, answered as AuthFailed).
    let Some(credential) = credential.filter(|_| scheme == "digest") else {
        tracing::info!(peer = %conn.peer, scheme, "authentication failed: unsupported scheme or null credential");
        encode_reply(&mut conn.output, xid, 0, ErrorCode::AuthFailed, &ReplyBody::Empty);
        conn.close();
        return false;
    };
    let id = crate::session::auth::digest_id(credential);
    let is_super = config.super_digest.as_deref() == Some(id.as_str());
    // DigestAuthenticationProvider adds `super` first, then the digest id, to the
    // connection's set of ids, whose order whoAmI and `auth` ACLs show.
    let mut added = false;
    if is_super {
        added |= conn.auth_ids.insert(("super".to_owned(), String::new()));
    }
    added |= conn.auth_ids.insert(("digest".to_owned(), id));
    if added {
        conn.identities = std::sync::Arc::new(conn.auth_ids.as_slice().to_vec());
    }
    encode_reply(&mut conn.output, xid, 0, ErrorCode::Ok, &ReplyBody::Empty);
    conn.output_appended();
    true
}

/// A SASL token, answered at once as ZooKeeper without a SASL configuration answers it
/// (`ZooKeeperServer.processSasl` finds no SASL server): OK, a null token, and the session
/// goes on unauthenticated, so a client that tries SASL first (a JAAS `Client` section)
/// still gets in. Where ZooKeeper fails to read the token (a null one, or no record) it
/// closes the connection without a reply. Returns whether the connection stays open.
fn answer_sasl(connection: &Rc<RefCell<Connection>>, xid: i32, request: &Request) -> bool {
    let mut conn = connection.borrow_mut();
    let peer = conn.peer;
    if !matches!(request, Request::Sasl { token: Some(_) }) {
        tracing::warn!(%peer, "a SASL request without a token; closing connection");
        conn.close();
        return false;
    }
    tracing::debug!(%peer, "a SASL token, answered without SASL");
    encode_reply(&mut conn.output, xid, 0, ErrorCode::Ok, &ReplyBody::SaslToken(None));
    conn.output_appended();
    true
}

/// Waits until this core's tree has applied `zxid` (bounded: a core that stops applying
/// is shutting down).
async fn wait_until_applied(state: &RefCell<CoreState>, zxid: i64) {
    const POLL: std::time::Duration = std::time::Duration::from_micros(200);
    const POLLS_MAX: u32 = 50_000;
    for _ in 0..POLLS_MAX {
        if state.borrow().applied_zxid() >= zxid {
            return;
        }
        glommio::timer::sleep(POLL).await;
    }
    tracing::warn!(zxid, "core did not apply a committed zxid in time; answering the auth packet anyway");
}

/// Before a checkWatches: waits until the connection's earlier requests are answered and
/// every core has applied what was committed by then. checkWatches looks at the watches
/// of every core's connections (ZooKeeper's one table for the server), and must see them
/// as ZooKeeper would at that point of the request stream: set by requests already
/// answered, fired by writes already committed.
async fn wait_for_every_core(connection: &Rc<RefCell<Connection>>, shared: &Shared) {
    const POLL: std::time::Duration = std::time::Duration::from_micros(200);
    const POLLS_MAX: u32 = 50_000;
    let mut polls = 0;
    let answered_or_closed = || {
        let conn = connection.borrow();
        conn.queue.is_empty() || conn.phase == Phase::Closing
    };
    while !answered_or_closed() && polls < POLLS_MAX {
        glommio::timer::sleep(POLL).await;
        polls += 1;
    }
    let committed = shared.committed_zxid();
    while !shared.applied_everywhere(committed) && polls < POLLS_MAX {
        glommio::timer::sleep(POLL).await;
        polls += 1;
    }
}

/// Asks every core for fresh numbers and waits (bounded: 5 s, far more than a loaded core
/// takes to get to it) until they published;
/// `in_full` also for every watch and ephemeral. The request reaches every core through
/// core 0 and the committed stream, so no core polls for requests (an idle server wakes
/// for nothing).
pub async fn refresh_listings(shared: &Shared, leader: &LeaderLink, in_full: bool) {
    use std::sync::atomic::Ordering;
    // The watch request goes first, so a core that sees the new generation sees it too.
    if in_full {
        let next = shared.listing_requested.load(Ordering::Acquire) + 1;
        shared.watch_listing_requested.fetch_max(next, Ordering::AcqRel);
    }
    let generation = shared.listing_requested.fetch_add(1, Ordering::AcqRel) + 1;
    if !leader.send(ToLeader::PublishListings).await {
        return;
    }
    for _ in 0..5_000 {
        if shared.listing_published.iter().all(|published| published.load(Ordering::Acquire) >= generation) {
            return;
        }
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Reads the next frame, enforcing jute.maxbuffer. `None` closes the connection.
async fn next_frame<R: futures_lite::AsyncRead + Unpin>(
    reader: &mut R,
    input: &mut Input,
    max_bytes: usize,
    peer: std::net::SocketAddr,
) -> Option<Vec<u8>> {
    if !input.fill(reader, 4).await {
        return None;
    }
    let prefix: [u8; 4] = input.available()[..4].try_into().expect("four bytes");
    let length = match frame::frame_length(prefix, max_bytes) {
        Ok(length) => length,
        Err(error) => {
            tracing::warn!(%peer, %error, "closing connection");
            return None;
        }
    };
    if !input.fill(reader, 4 + length).await {
        return None;
    }
    let bytes = input.available()[4..4 + length].to_vec();
    input.consume(4 + length);
    Some(bytes)
}

/// globalOutstandingLimit: while the server as a whole has this many requests in flight,
/// connections stop reading new ones (ZooKeeper's RequestThrottler does the same). The
/// count is summed over every core, so a core looks again each millisecond rather than
/// being woken by the others; after `THROTTLED_WAIT_MS_MAX` the connection reads on with
/// a warning (ZooKeeper's throttle also gives way to requests that waited too long), so a
/// stalled server never holds a connection's task forever.
async fn wait_below_outstanding_limit(shared: &Shared) {
    const THROTTLED_WAIT_MS_MAX: u32 = 10_000;
    let limit = shared.config.global_outstanding_limit as u64;
    if limit == 0 {
        return;
    }
    for _ in 0..THROTTLED_WAIT_MS_MAX {
        if shared.sum(|counters| &counters.outstanding_requests) < limit {
            return;
        }
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
    tracing::warn!(limit, "requests stayed at globalOutstandingLimit for {THROTTLED_WAIT_MS_MAX} ms; reading on");
}

async fn read_loop<R: futures_lite::AsyncRead + Unpin>(
    reader: &mut R,
    input: &mut Input,
    connection: &Rc<RefCell<Connection>>,
    reader_woken: &LocalReceiver<()>,
    context: &Rc<CoreContext>,
    max_bytes: usize,
) {
    let peer = connection.borrow().peer;
    loop {
        // Wait for the handshake, and pause while the client is not reading its replies.
        loop {
            let (phase, output_bytes, queued, queued_reads) = {
                let conn = connection.borrow();
                (conn.phase, conn.output.len(), conn.queue.len(), conn.queued_reads)
            };
            match phase {
                Phase::Closing => return,
                Phase::Connecting => {}
                Phase::Connected
                    if output_bytes < OUTPUT_BYTES_HIGH_WATER
                        && queued < QUEUED_REQUESTS_MAX
                        && queued_reads < QUEUED_READS_MAX =>
                {
                    break
                }
                Phase::Connected => {}
            }
            if reader_woken.recv().await.is_none() {
                return;
            }
        }
        wait_below_outstanding_limit(&context.shared).await;
        let Some(frame_bytes) = next_frame(reader, input, max_bytes, peer).await else {
            return;
        };
        let (header, request) = match decode_request(&frame_bytes) {
            Ok(decoded) => decoded,
            Err(error) => {
                tracing::warn!(%peer, %error, "malformed request; closing connection");
                return;
            }
        };
        if connection.borrow().phase != Phase::Connected {
            return;
        }
        if let Request::Unimplemented(opcode) = request {
            // ZooKeeper answers an opcode it does not serve with Unimplemented and closes
            // the session's connection (UnimplementedRequestProcessor).
            tracing::warn!(%peer, opcode, "unimplemented opcode; closing connection");
            let mut conn = connection.borrow_mut();
            // The reply carries zxid -1, as ZooKeeper's does.
            encode_reply(&mut conn.output, header.xid, -1, ErrorCode::Unimplemented, &ReplyBody::Empty);
            conn.close();
            return;
        }
        if let Request::Sasl { .. } | Request::Malformed { opcode: crate::proto::opcode::SASL } = &request {
            if !answer_sasl(connection, header.xid, &request) {
                return;
            }
            continue;
        }
        if let Request::Auth { scheme, credential } = &request {
            // ZooKeeper answers an auth packet at once on the connection's thread, after
            // every event of writes already committed (their watches fired when they
            // were applied). This core's tree may trail the ordering point by a hop:
            // wait until it has applied what was committed when the packet arrived, so
            // the reply does not overtake those events and they are checked against the
            // ids held before this one.
            wait_until_applied(&context.state, context.shared.committed_zxid()).await;
            if !authenticate(connection, &context.shared.config, header.xid, scheme, credential.as_deref()) {
                return;
            }
            continue;
        }
        if matches!(request, Request::CheckWatches { .. }) {
            wait_for_every_core(connection, &context.shared).await;
        }
        let is_sync = matches!(request, Request::Sync { .. });
        let leader_message = if request.is_write() || is_sync { Some(request.clone()) } else { None };
        let dispatch = context.state.borrow_mut().dispatch(connection, header.xid, request);
        if dispatch == Dispatch::ToLeader {
            let request = leader_message.expect("writes and syncs go to the leader");
            let (session_id, id) = {
                let conn = connection.borrow();
                (conn.session_id, conn.id)
            };
            let message = if is_sync {
                ToLeader::Sync {
                    member: context.shared.config.my_id,
                    core: context.core,
                    connection: id,
                    xid: header.xid,
                }
            } else {
                let identities = connection.borrow().identities.clone();
                // The frame as received travels along (moved, not copied): a follower
                // forwards it to its leader as is.
                ToLeader::Write {
                    member: context.shared.config.my_id,
                    connection: id,
                    session_id,
                    identities,
                    xid: header.xid,
                    request,
                    frame: frame_bytes,
                }
            };
            if !context.leader.send(message).await {
                return;
            }
        }
    }
}

/// Flushes the connection's output whenever there is some; after the connection starts
/// closing, flushes what is left and shuts the socket so the reader stops too.
/// How long a closing connection waits to send its last bytes (TLS's close_notify).
const CLOSE_NOTIFY_MS: u64 = 1_000;

async fn write_loop<W: futures_lite::AsyncWrite + Unpin>(
    connection: Rc<RefCell<Connection>>,
    woken: LocalReceiver<()>,
    mut writer: W,
    fd: i32,
) {
    let mut spare: Vec<u8> = Vec::new();
    loop {
        let pending = {
            let mut conn = connection.borrow_mut();
            if conn.output.is_empty() {
                if conn.phase == Phase::Closing {
                    break;
                }
                None
            } else {
                Some(std::mem::replace(&mut conn.output, std::mem::take(&mut spare)))
            }
        };
        match pending {
            None => {
                if woken.recv().await.is_none() {
                    break;
                }
            }
            Some(mut bytes) => {
                let written = writer.write_all(&bytes).await;
                let flushed = writer.flush().await;
                if written.is_err() || flushed.is_err() {
                    connection.borrow_mut().close();
                    break;
                }
                bytes.clear();
                if bytes.capacity() > OUTPUT_BYTES_HIGH_WATER {
                    bytes = Vec::new();
                }
                spare = bytes;
                connection.borrow().wake_reader();
            }
        }
    }
    // A TLS connection ends with close_notify, so the client sees an end rather than a
    // truncated stream (a plain one's close is a shutdown of its writing side). Bounded:
    // a client that reads nothing cannot hold the task.
    let closing = async {
        let _ = writer.close().await;
    };
    let expired = glommio::timer::sleep(std::time::Duration::from_millis(CLOSE_NOTIFY_MS));
    futures_lite::future::or(closing, async {
        expired.await;
    })
    .await;
    // SAFETY: the socket is open while `writer`, one of its halves, is alive; shutting it
    // down ends the reader's pending read so both tasks finish.
    let shut = unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    let error = std::io::Error::last_os_error();
    // ENOTCONN: the peer's reset already ended the connection, and the pending read with it.
    if shut != 0 && error.raw_os_error() != Some(libc::ENOTCONN) {
        tracing::warn!(%error, "cannot shut a client's socket down");
    }
    drop(writer);
}
