//! The only layer that touches the runtime: one glommio executor per core, client
//! connections accepted on core 0 and placed on the core with the fewest
//! (`connection_placement`), the ordering point and its publisher on core 0, and the
//! committed stream to every other core.

pub(crate) mod connection;
pub(crate) mod connection_placement;
pub(crate) mod connection_state;
pub(crate) mod core_state;
pub mod deadline;
pub(crate) mod ensemble;
pub(crate) mod ensemble_log;
pub(crate) mod four_letter;
pub(crate) mod histogram;
pub(crate) mod leader;
pub mod log_writer;
pub(crate) mod messages;
pub(crate) mod peer_codec;
pub(crate) mod peer_links;
pub(crate) mod placement;
pub(crate) mod published_version;
pub(crate) mod service_manager;
pub(crate) mod shared;
pub(crate) mod snapshotter;
pub(crate) mod statistics;

pub use core_state::is_replaying_log;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::channels::shared_channel::{self, ConnectedSender, SharedReceiver, SharedSender};
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::Config;
use crate::consensus::core::{Core, Members, Settings};
use crate::log::recovery::RecoveredLog;
use crate::log::snapshot_file::LoadedSnapshot;
use crate::tree::DataTree;
use connection::{CoreContext, LeaderLink};
use connection_placement::{ClientPort, HandedConnection};
use core_state::CoreState;
use ensemble::{Ensemble, EnsembleParts};
use leader::Leader;
use log_writer::{LogWriter, WritePath};
use messages::{CommittedBatch, Control, ToLeader};
use shared::Shared;
use snapshotter::Snapshotter;

/// The buffer memory each executor registers with io_uring for glommio's DMA files
/// (10 MiB by default, pinned, so resident on every core). Nothing here reads or writes
/// through them: the log has its own ring. 64 KiB is glommio's floor.
const EXECUTOR_IO_MEMORY_BYTES: usize = 64 * 1024;
/// Capacity of each cross-core channel, in messages.
const CHANNEL_CAPACITY: usize = 4096;
/// Connections core 0 may have handed a core that has not taken them yet: a burst of
/// connects waits in the listen backlog beyond that.
const CONNECTION_CHANNEL_CAPACITY: usize = 256;
/// Bytes sent to one follower and not yet acknowledged before the leader waits for it.
const ENSEMBLE_WINDOW_BYTES: usize = 32 * 1024 * 1024;
/// The most bytes of batches in one Append.
const ENSEMBLE_FRAME_BYTES_MAX: usize = 1024 * 1024;

/// The channel ends one core takes with it to its executor.
struct CoreChannels {
    /// Core 0: the receiving ends of every other core's channel to the ordering point.
    leader_inboxes: Vec<SharedReceiver<ToLeader>>,
    /// Core 0: the sending ends of the committed stream to every other core.
    committed_outboxes: Vec<SharedSender<CommittedBatch>>,
    /// Other cores: their channel to the ordering point.
    leader_outbox: Option<SharedSender<ToLeader>>,
    /// Other cores: their committed stream.
    committed_inbox: Option<SharedReceiver<CommittedBatch>>,
    /// Core 0: the sending ends of the connections it hands to every other core.
    connection_outboxes: Vec<SharedSender<HandedConnection>>,
    /// Other cores: the connections core 0 hands them.
    connection_inbox: Option<SharedReceiver<HandedConnection>>,
}

/// The channels between the cores, and with `operations` one more to the ordering point
/// for the operations endpoints' executor (`admin`).
fn make_channels(cores: usize, operations: bool) -> (Vec<CoreChannels>, Option<SharedSender<ToLeader>>) {
    let mut channels: Vec<CoreChannels> = (0..cores)
        .map(|_| CoreChannels {
            leader_inboxes: Vec::new(),
            committed_outboxes: Vec::new(),
            leader_outbox: None,
            committed_inbox: None,
            connection_outboxes: Vec::new(),
            connection_inbox: None,
        })
        .collect();
    for core in 1..cores {
        let (to_leader, leader_inbox) = shared_channel::new_bounded(CHANNEL_CAPACITY);
        let (to_core, core_inbox) = shared_channel::new_bounded(CHANNEL_CAPACITY);
        let (connections_to_core, connection_inbox) = shared_channel::new_bounded(CONNECTION_CHANNEL_CAPACITY);
        channels[0].leader_inboxes.push(leader_inbox);
        channels[0].committed_outboxes.push(to_core);
        channels[0].connection_outboxes.push(connections_to_core);
        channels[core].leader_outbox = Some(to_leader);
        channels[core].committed_inbox = Some(core_inbox);
        channels[core].connection_inbox = Some(connection_inbox);
    }
    let to_leader = operations.then(|| {
        let (to_leader, leader_inbox) = shared_channel::new_bounded(CHANNEL_CAPACITY);
        channels[0].leader_inboxes.push(leader_inbox);
        to_leader
    });
    (channels, to_leader)
}

/// The log must continue where the snapshot ends: a gap would lose transactions.
fn check_log_follows_snapshot(snapshot: Option<&LoadedSnapshot>, log: &RecoveredLog) -> Result<(), String> {
    let Some(snapshot) = snapshot else { return Ok(()) };
    tracing::info!(path = %snapshot.path.display(), zxid = format_args!("{:#x}", snapshot.zxid), "loading snapshot");
    match log.records_after(snapshot.zxid).next() {
        Some((first, _)) if first != snapshot.zxid + 1 && crate::consensus::zxid::epoch(first) == crate::consensus::zxid::epoch(snapshot.zxid) => Err(format!(
            "the log resumes at zxid {first:#x} but the snapshot {} ends at {:#x}: transactions are missing; refusing to start",
            snapshot.path.display(),
            snapshot.zxid
        )),
        _ => Ok(()),
    }
}

/// Holds an exclusive lock on the data directory for the life of the process, so two
/// servers never write the same log.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join("ringkeeper.lock");
    let file = std::fs::File::create(&path).map_err(|error| format!("cannot create {}: {error}", path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(format!("{} is in use by another server", dir.display()));
        }
        return Err(format!("cannot lock {}: {error}", path.display()));
    }
    Ok(file)
}

/// The listener binds with SO_REUSEPORT, which would let a second server of the same user
/// share the port silently, so refuse to start while something answers there. A server
/// killed a moment ago can leave its listener answering briefly while the kernel tears
/// down its io_uring, so wait a little before deciding.
fn wait_until_port_is_free(address: SocketAddr) -> Result<(), String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
        if std::time::Instant::now() > deadline {
            return Err(format!("cannot listen on {address}: another server is listening there"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A listening socket with SO_REUSEADDR (a restart need not wait for TIME_WAIT) and
/// SO_REUSEPORT (a restart binds while the kernel still tears down the listener of the
/// server it replaces, `wait_until_port_is_free`).
fn bind_listener(address: SocketAddr) -> std::io::Result<glommio::net::TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let domain = if address.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket(2) returns a new descriptor or -1.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a socket we just created and own; OwnedFd closes it on error.
    let socket = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for option in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: setsockopt with a pointer to a live c_int and its size.
        let result = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let listener = std::net::TcpListener::from(socket);
    // std has no bind-without-create; bind through libc with the address std encodes.
    bind_raw(fd, address)?;
    // SAFETY: listen(2) on our socket.
    if unsafe { libc::listen(fd, 1024) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor is a listening TCP socket we hand over to glommio.
    Ok(unsafe { glommio::net::TcpListener::from_raw_fd(listener.into_raw_fd()) })
}

fn bind_raw(fd: i32, address: SocketAddr) -> std::io::Result<()> {
    let result = match address {
        SocketAddr::V4(v4) => {
            let raw = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
                sin_zero: [0; 8],
            };
            // SAFETY: bind with a pointer to a live sockaddr_in and its size.
            unsafe {
                libc::bind(
                    fd,
                    &raw as *const libc::sockaddr_in as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        SocketAddr::V6(v6) => {
            let raw = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: bind with a pointer to a live sockaddr_in6 and its size.
            unsafe {
                libc::bind(
                    fd,
                    &raw as *const libc::sockaddr_in6 as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Blocks SIGINT and SIGTERM in this thread (and the threads it spawns), so that the
/// main thread can wait for them with sigwait.
pub fn block_shutdown_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set calls on a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        // These fail only on an invalid signal number or `how`, which would be a bug here.
        assert_eq!(libc::sigemptyset(&mut set), 0);
        assert_eq!(libc::sigaddset(&mut set, libc::SIGINT), 0);
        assert_eq!(libc::sigaddset(&mut set, libc::SIGTERM), 0);
        assert_eq!(libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()), 0);
        set
    }
}

/// Unblocks what `block_shutdown_signals` blocked, in this thread only: until the server
/// serves, SIGTERM and SIGINT end the process at once.
fn unblock_shutdown_signals(signals: &libc::sigset_t) {
    // SAFETY: pthread_sigmask with a set built by `block_shutdown_signals`.
    assert_eq!(unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, signals, std::ptr::null_mut()) }, 0);
}

/// Waits for one of the signals `block_shutdown_signals` blocked; returns it.
pub fn wait_for_shutdown_signal(signals: &libc::sigset_t) -> libc::c_int {
    let mut signal: libc::c_int = 0;
    // SAFETY: waits on a signal set blocked in this thread; it fails only on an invalid set.
    let waited = unsafe { libc::sigwait(signals, &mut signal) };
    assert_eq!(waited, 0, "sigwait on the shutdown signals");
    signal
}

/// Starts this process again with the same arguments: an ensemble member whose trees hold
/// records its log no longer has (after a TRUNC below them, or a SNAP) rebuilds them from
/// the log as a restart does. Every descriptor but the standard ones is closed by the exec:
/// sockets accepted through io_uring are not close-on-exec by themselves, and a peer's
/// link left open in the new image would be written to and never read.
pub fn restart_process() -> ! {
    use std::os::unix::process::CommandExt;
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let descriptors: Vec<i32> =
            entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).filter(|&fd| fd > 2).collect();
        for fd in descriptors {
            // SAFETY: fcntl on a descriptor number; an invalid one only returns an error.
            let marked = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
            let error = std::io::Error::last_os_error();
            // The listing's own descriptor is closed by now (EBADF); any other failure
            // leaves a descriptor open across the exec, which is worth a line.
            if marked != 0 && error.raw_os_error() != Some(libc::EBADF) {
                tracing::warn!(fd, %error, "a descriptor stays open across the restart");
            }
        }
    }
    let error = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe).args(std::env::args_os().skip(1)).exec(),
        Err(error) => error,
    };
    tracing::error!(%error, "cannot restart this process");
    std::process::exit(1);
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(mut config: Config, cores: usize) -> Result<(), String> {
    assert!(cores > 0);
    if config.is_ensemble() {
        let my_id = config.identify_member()?;
        tracing::info!(my_id, members = config.servers.len(), "starting as an ensemble member");
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|error| format!("cannot create dataDir {}: {error}", config.data_dir.display()))?;
    let address = SocketAddr::new(config.client_port_address, config.client_port);
    let _data_dir_lock = lock_data_dir(&config.data_dir)?;
    wait_until_port_is_free(address)?;
    let secure_address = config
        .secure_client_port
        .map(|port| SocketAddr::new(config.secure_client_port_address.unwrap_or(config.client_port_address), port));
    if let Some(secure_address) = secure_address {
        wait_until_port_is_free(secure_address)?;
    }
    // Certificates are read before recovery, so a bad one stops the start at once.
    let client_tls = crate::tls::client_port(&config)?;
    let quorum_tls = crate::tls::quorum(&config)?;
    let log_dir = config.log_dir();
    std::fs::create_dir_all(&log_dir).map_err(|error| format!("cannot create {}: {error}", log_dir.display()))?;
    if !config.force_sync {
        tracing::warn!("forceSync=no: writes are acknowledged before they are on disk and can be lost on a crash");
    }
    // The operations endpoints start first, so `/ready` answers while recovery runs.
    let shared = Arc::new(Shared::new(config, cores));
    let operations = shared.config.admin.enabled || shared.config.metrics.enabled;
    let (channels, operations_to_leader) = make_channels(cores, operations);
    if let Some(to_leader) = operations_to_leader {
        // Its threads (glommio's helper thread too) inherit the blocked signals, so only
        // this thread takes them: at once while recovering, by sigwait once serving.
        let signals = block_shutdown_signals();
        crate::admin::start(shared.clone(), to_leader)?;
        unblock_shutdown_signals(&signals);
    }
    let config = &shared.config;
    let recovered = Arc::new(crate::log::recovery::recover(&log_dir).map_err(|error| error.to_string())?);
    let snapshot = crate::log::snapshot_file::newest_valid(&log_dir)
        .map_err(|error| format!("cannot read snapshots in {}: {error}", log_dir.display()))?;
    check_log_follows_snapshot(snapshot.as_ref(), &recovered)?;
    // One tree for every core: recovered once, here, and shared as versions.
    let mut tree = core_state::recovered_tree(snapshot.as_ref(), &recovered)?;
    core_state::set_membership(&mut tree, config);
    let tree = Arc::new(tree);
    let snapshot = Arc::new(snapshot);
    let signals = block_shutdown_signals();
    if let Some(loaded) = snapshot.as_ref() {
        let written_at = std::fs::metadata(&loaded.path).and_then(|metadata| metadata.modified());
        shared.note_snapshot(loaded.zxid, loaded.map.len() as u64, written_at.unwrap_or(std::time::UNIX_EPOCH));
    }
    shared.recovered.store(true, std::sync::atomic::Ordering::Release);
    crate::tls::watch_files(&shared.config, client_tls.as_ref(), quorum_tls.as_ref())?;
    let cpus = placement::executor_cpus(&shared.config, cores);
    let spin = placement::spin_before_park(&shared.config, cores);
    let mut handles = Vec::new();
    for (core, channels) in channels.into_iter().enumerate() {
        let shared = shared.clone();
        let recovered = recovered.clone();
        let snapshot = snapshot.clone();
        let tree = tree.clone();
        let tls = CoreTls {
            client: client_tls.clone(),
            secure_address,
            unified: shared.config.client_port_unification,
            quorum: quorum_tls.clone(),
        };
        let placement = cpus.as_ref().map_or(Placement::Unbound, |cpus| Placement::Fixed(cpus[core]));
        let mut builder = LocalExecutorBuilder::new(placement)
            .name(&format!("core-{core}"))
            .io_memory(EXECUTOR_IO_MEMORY_BYTES)
            // Blocking work (a follower's snapshot, a snapshot install, the hard state)
            // runs on threads the OS may schedule anywhere, not on the executor's own
            // CPU. Two, so that a vote is not written behind a snapshot's encoding.
            .blocking_thread_pool_placement(glommio::PoolPlacement::Unbound(2));
        if let Some(spin) = spin {
            builder = builder.spin_before_park(spin);
        }
        let handle = builder
            .spawn(
                move || async move { core_main(core, shared, channels, address, tls, tree, recovered, snapshot).await },
            )
            .map_err(|error| format!("cannot start executor for core {core}: {error}"))?;
        handles.push(handle);
    }
    drop((tree, recovered, snapshot));
    match secure_address {
        Some(secure_address) => tracing::info!(%address, %secure_address, cores, "ringkeeper serving"),
        None => tracing::info!(%address, cores, "ringkeeper serving"),
    }
    // The lock is held until the process exits.
    let _keep_locked = &_data_dir_lock;
    let signal = wait_for_shutdown_signal(&signals);
    tracing::info!(signal, "shutting down");
    service_manager::notify("STOPPING=1");
    // Nothing is buffered that a client was told is durable: replies are sent only after
    // their transactions are applied. Exiting now closes every connection.
    std::process::exit(0);
}

/// What a core needs of TLS: the client ports' configuration, the secure port, whether
/// the plain port also takes TLS (`client.portUnification`), and the quorum links'
/// configuration (used on core 0).
struct CoreTls {
    client: Option<Arc<crate::tls::Reloading<rustls::ServerConfig>>>,
    secure_address: Option<SocketAddr>,
    unified: bool,
    quorum: Option<crate::tls::QuorumTls>,
}

#[allow(clippy::too_many_arguments)]
async fn core_main(
    core: usize,
    shared: Arc<Shared>,
    mut channels: CoreChannels,
    address: SocketAddr,
    tls: CoreTls,
    tree: Arc<DataTree>,
    recovered: Arc<RecoveredLog>,
    snapshot: Arc<Option<LoadedSnapshot>>,
) {
    let state = Rc::new(RefCell::new(CoreState::new(core, shared.clone())));
    state.borrow_mut().recover(tree);
    let connection_outboxes = std::mem::take(&mut channels.connection_outboxes);
    let connection_inbox = channels.connection_inbox.take();
    let leader = if core == 0 && shared.config.is_ensemble() {
        let driver = start_ensemble(shared.clone(), state.clone(), channels, &recovered, &snapshot, tls.quorum).await;
        LeaderLink::Ensemble(driver)
    } else if core == 0 {
        let (publisher_wake, publisher_woken) = local_channel::new_bounded(1);
        let leader = Rc::new(RefCell::new(Leader::new(shared.clone(), 0, state.clone(), Rc::new(publisher_wake))));
        leader.borrow_mut().restore();
        let config = &shared.config;
        let log_writer = open_log_writer(config, &recovered, WritePath::Executor).await;
        for inbox in channels.leader_inboxes {
            let leader = leader.clone();
            glommio::spawn_local(forward_to_leader(inbox, move |message| leader.borrow_mut().handle(message))).detach();
        }
        let outboxes = connect_outboxes(channels.committed_outboxes).await;
        let snapshotter = Snapshotter::start(shared.clone());
        glommio::spawn_local(publish(
            leader.clone(),
            state.clone(),
            outboxes,
            publisher_woken,
            log_writer,
            snapshotter,
        ))
        .detach();
        let tick_ms = shared.config.tick_time_ms;
        let expiring = leader.clone();
        glommio::spawn_local(every_half_tick(tick_ms, move || expiring.borrow_mut().expire_sessions())).detach();
        let reaping = leader.clone();
        glommio::spawn_local(reap_containers(shared.clone(), move |limit| reaping.borrow_mut().reap_containers(limit)))
            .detach();
        LeaderLink::Local(leader)
    } else {
        let inbox = channels.committed_inbox.expect("every other core has a committed stream").connect().await;
        glommio::spawn_local(apply_committed(inbox, state.clone())).detach();
        LeaderLink::Remote(channels.leader_outbox.expect("every other core has a leader channel").connect().await)
    };
    drop(recovered);
    drop(snapshot);
    let context = Rc::new(CoreContext { core, state: state.clone(), leader, shared: shared.clone() });
    glommio::spawn_local(send_touches(context.clone())).detach();
    let ports = Rc::new(ClientPorts { tls: tls.client.clone(), unified: tls.unified });
    if core == 0 {
        let listener = listen_or_exit(address);
        let secure_listener = tls.client.and(tls.secure_address).map(listen_or_exit);
        let outboxes = Rc::new(connect_outboxes(connection_outboxes).await);
        if let Some(secure_listener) = secure_listener {
            let accepting =
                accept(secure_listener, ClientPort::Secure, outboxes.clone(), ports.clone(), context.clone());
            glommio::spawn_local(accepting).detach();
        }
        note_taking_clients(&shared, address);
        accept(listener, ClientPort::Plain, outboxes, ports, context).await;
    } else {
        let inbox = connection_inbox.expect("every other core has a connection channel").connect().await;
        note_taking_clients(&shared, address);
        while let Some(HandedConnection { stream, port, placed }) = inbox.recv().await {
            let stream = stream.bind_to_executor();
            glommio::spawn_local(serve_placed(stream, port, placed, ports.clone(), context.clone())).detach();
        }
    }
}

/// How this core serves a connection of each client port.
struct ClientPorts {
    /// The secure port's configuration, current when a connection arrives, so reloaded
    /// certificates reach new connections only.
    tls: Option<Arc<crate::tls::Reloading<rustls::ServerConfig>>>,
    /// `client.portUnification`: the plain port also takes TLS.
    unified: bool,
}

/// One more core takes clients; once all do, a service manager may start what depends
/// on this server.
fn note_taking_clients(shared: &Shared, address: SocketAddr) {
    let taking = shared.listening_cores.fetch_add(1, std::sync::atomic::Ordering::AcqRel) + 1;
    if taking == shared.cores {
        service_manager::notify(&format!("READY=1\nSTATUS=serving clients on {address}"));
    }
}

fn listen_or_exit(address: SocketAddr) -> glommio::net::TcpListener {
    match bind_listener(address) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(%error, "cannot listen on {address}");
            std::process::exit(1);
        }
    }
}

/// Core 0: accepts the connections of one client port and places each on a core
/// (`connection_placement`), serving here those placed here.
async fn accept(
    listener: glommio::net::TcpListener,
    port: ClientPort,
    outboxes: Rc<Vec<ConnectedSender<HandedConnection>>>,
    ports: Rc<ClientPorts>,
    context: Rc<CoreContext>,
) {
    loop {
        let stream = match listener.shared_accept().await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(?port, %error, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let placed = connection_placement::place(&context.shared);
        let (stream, placed) = if placed.core == 0 {
            (stream, placed)
        } else {
            use glommio::{GlommioError, ResourceType};
            match outboxes[placed.core - 1].try_send(HandedConnection { stream, port, placed }) {
                Ok(()) => continue,
                // That core has yet to take the connections handed to it before: this one
                // is served here rather than hold up accepting for every core.
                Err(GlommioError::WouldBlock(ResourceType::Channel(handed))) => {
                    drop(handed.placed);
                    (handed.stream, connection_placement::place_on(&context.shared, 0))
                }
                Err(GlommioError::Closed(ResourceType::Channel(handed))) => {
                    tracing::error!(
                        core = handed.placed.core,
                        "a core's connection channel is closed; the connection is dropped"
                    );
                    // Bound here only to be closed: an accepted stream never bound stays open.
                    drop(handed.stream.bind_to_executor());
                    continue;
                }
                Err(_) => unreachable!("a channel's try_send fails only as full or closed"),
            }
        };
        let stream = stream.bind_to_executor();
        glommio::spawn_local(serve_placed(stream, port, placed, ports.clone(), context.clone())).detach();
    }
}

/// Serves a connection on the core it was placed on, which counts it until it ends.
async fn serve_placed(
    stream: glommio::net::TcpStream,
    port: ClientPort,
    placed: connection_placement::Placed,
    ports: Rc<ClientPorts>,
    context: Rc<CoreContext>,
) {
    assert_eq!(placed.core, context.core, "served where it was placed");
    match (port, &ports.tls) {
        (ClientPort::Plain, Some(tls)) if ports.unified => {
            connection::serve_unified(stream, tls.current(), context).await
        }
        (ClientPort::Plain, _) => connection::serve(stream, context).await,
        (ClientPort::Secure, Some(tls)) => connection::serve_tls(stream, tls.current(), context).await,
        (ClientPort::Secure, None) => unreachable!("the secure port listens only with a TLS configuration"),
    }
    drop(placed);
}

/// Core 0 of an ensemble's leader: encodes each snapshot a follower needs on a blocking
/// thread, one at a time, and hands it back to the driver to send.
async fn encode_snapshots(requests: LocalReceiver<ensemble::SnapshotRequest>, driver: Rc<RefCell<Ensemble>>) {
    while let Some(ensemble::SnapshotRequest { to, tree }) = requests.recv().await {
        if !driver.borrow().leads() {
            continue;
        }
        let zxid = tree.last_zxid();
        let image = glommio::executor().spawn_blocking(move || crate::tree::snapshot::encode(&tree)).await;
        driver.borrow_mut().snapshot_encoded(to, zxid, image);
    }
}

/// Core 0 of an ensemble member: makes each hard state (epoch, vote) durable on a blocking
/// thread, in order, and tells the driver, which holds back what followed it until then.
async fn persist_hard_states(
    requests: LocalReceiver<crate::consensus::core::HardState>,
    driver: Rc<RefCell<Ensemble>>,
    log_dir: std::path::PathBuf,
) {
    while let Some(hard) = requests.recv().await {
        let dir = log_dir.clone();
        let written = glommio::executor().spawn_blocking(move || crate::log::epoch_file::write(&dir, &hard)).await;
        if let Err(error) = written {
            // Voting without a durable record of the vote could elect two leaders.
            tracing::error!(%error, "cannot persist the epoch; stopping");
            std::process::exit(1);
        }
        driver.borrow_mut().hard_state_persisted();
    }
}

/// Core 0: takes messages from another core's channel to the ordering point (or the
/// ensemble driver).
async fn forward_to_leader(inbox: SharedReceiver<ToLeader>, handle: impl Fn(ToLeader)) {
    let inbox = inbox.connect().await;
    while let Some(message) = inbox.recv().await {
        handle(message);
        glommio::yield_if_needed().await;
    }
}

async fn open_log_writer(config: &Config, recovered: &RecoveredLog, write_path: WritePath) -> LogWriter {
    let (dir, tail) = (config.log_dir(), recovered.tail());
    match LogWriter::open(&dir, tail, config.segment_size_bytes, config.force_sync, write_path).await {
        Ok(writer) => writer,
        Err(error) => {
            tracing::error!(%error, "cannot open the transaction log");
            std::process::exit(1);
        }
    }
}

async fn connect_outboxes<T: Send + Sized + 'static>(outboxes: Vec<SharedSender<T>>) -> Vec<ConnectedSender<T>> {
    let mut connected = Vec::new();
    for outbox in outboxes {
        connected.push(outbox.connect().await);
    }
    connected
}

/// Core 0 of an ensemble member: the consensus core from what the disk holds, the log
/// task, the peer links and the tasks that feed the driver.
async fn start_ensemble(
    shared: Arc<Shared>,
    state: Rc<RefCell<CoreState>>,
    channels: CoreChannels,
    recovered: &Arc<RecoveredLog>,
    snapshot: &Arc<Option<LoadedSnapshot>>,
    quorum_tls: Option<crate::tls::QuorumTls>,
) -> Rc<RefCell<Ensemble>> {
    let config = shared.config.clone();
    let fail = |message: String| -> ! {
        tracing::error!("{message}");
        std::process::exit(1);
    };
    let log_dir = config.log_dir();
    let hard = crate::log::epoch_file::read(&log_dir).unwrap_or_else(|error| fail(error));
    let base = snapshot.as_ref().as_ref().map_or(0, |snapshot| snapshot.zxid);
    let (history, window) = ensemble_log::recovered_history(recovered, base, config.sync_retained_bytes);
    let applied = state.borrow().tree.last_zxid();
    assert_eq!(history.last(), applied, "the trees hold the snapshot and the whole log");
    let voters = config.servers.iter().filter(|server| !server.observer).map(|server| server.id).collect();
    let observers = config.servers.iter().filter(|server| server.observer).map(|server| server.id).collect();
    let tick_ms = config.tick_time_ms as u64;
    let settings = Settings {
        id: config.my_id,
        members: Members { voters, observers },
        heartbeat_ms: (tick_ms / 4).clamp(5, 500),
        sync_limit_ms: tick_ms * config.sync_limit_ticks as u64,
        election_timeout_ms: tick_ms,
        window_bytes: ENSEMBLE_WINDOW_BYTES,
        frame_bytes_max: ENSEMBLE_FRAME_BYTES_MAX,
        retained_bytes_max: config.sync_retained_bytes,
        counter_limit: config.zxid_counter_limit,
    };
    let seed = std::hash::BuildHasher::hash_one(&std::collections::hash_map::RandomState::new(), config.my_id);
    let now_ms = shared.started.elapsed().as_millis() as u64;
    let core = Core::new(settings, hard, history, window, applied, seed, now_ms);
    tracing::info!(epoch = hard.epoch, last_zxid = format_args!("{applied:#x}"), "ensemble member recovered");
    let mut peers = Vec::new();
    for server in &config.servers {
        let address = server.quorum_address().unwrap_or_else(|error| fail(error));
        peers.push(peer_links::Peer { id: server.id, address, host: server.host.clone() });
    }
    let listen_on = peers.iter().find(|peer| peer.id == config.my_id).expect("identified").address;
    let (links, dialers) = peer_links::links(config.my_id, &peers);
    let writer = open_log_writer(&config, recovered, WritePath::Ring).await;
    let (publisher_wake, publisher_woken) = local_channel::new_bounded(1);
    let (log_wake, log_woken) = local_channel::new_bounded(1);
    let log_queue = Rc::new(ensemble_log::LogQueue::new(log_wake));
    let (distribute, distributed) = local_channel::new_unbounded();
    let (snapshot_requests, snapshots_wanted) = local_channel::new_unbounded();
    let (hard_state_writes, hard_states) = local_channel::new_unbounded();
    let snapshotter = Snapshotter::start(shared.clone());
    let driver = Rc::new(RefCell::new(Ensemble::new(EnsembleParts {
        shared: shared.clone(),
        core,
        state,
        publisher_wake: Rc::new(publisher_wake),
        links: links.clone(),
        log_ops: log_queue.clone(),
        distribute,
        snapshotter,
        snapshot_requests,
        hard_state_writes,
    })));
    glommio::spawn_local(encode_snapshots(snapshots_wanted, driver.clone())).detach();
    glommio::spawn_local(persist_hard_states(hard_states, driver.clone(), log_dir.clone())).detach();
    glommio::spawn_local(ensemble_log::run(
        log_queue,
        log_woken,
        writer,
        driver.clone(),
        log_dir,
        config.segment_size_bytes,
        config.force_sync,
    ))
    .detach();
    let outboxes = connect_outboxes(channels.committed_outboxes).await;
    glommio::spawn_local(distribute_committed(shared.clone(), distributed, outboxes)).detach();
    let publishing = driver.clone();
    glommio::spawn_local(async move {
        while publisher_woken.recv().await.is_some() {
            publishing.borrow_mut().publish();
        }
    })
    .detach();
    let ticking = driver.clone();
    // Fine enough that a failover with tickTime 500 is not rounded up by the ticks.
    let period_ms = (tick_ms / 100).clamp(2, 20);
    glommio::spawn_local(async move {
        loop {
            glommio::timer::sleep(Duration::from_millis(period_ms)).await;
            ticking.borrow_mut().tick();
        }
    })
    .detach();
    let expiring = driver.clone();
    glommio::spawn_local(every_half_tick(config.tick_time_ms, move || expiring.borrow_mut().expire_sessions()))
        .detach();
    let reaping = driver.clone();
    glommio::spawn_local(reap_containers(shared.clone(), move |limit| reaping.borrow_mut().reap_containers(limit)))
        .detach();
    for inbox in channels.leader_inboxes {
        let forwarding = driver.clone();
        glommio::spawn_local(forward_to_leader(inbox, move |message| forwarding.borrow_mut().handle(message))).detach();
    }
    let members = Rc::new(config.servers.iter().map(|server| (server.id, server.host.clone())).collect());
    if let Err(error) = peer_links::start(config.my_id, listen_on, members, links, dialers, driver.clone(), quorum_tls)
    {
        fail(error);
    }
    driver
}

/// Core 0 of an ensemble member: hands committed batches to the other cores, in order.
async fn distribute_committed(
    shared: Arc<Shared>,
    distributed: LocalReceiver<Vec<CommittedBatch>>,
    outboxes: Vec<ConnectedSender<CommittedBatch>>,
) {
    while let Some(batches) = distributed.recv().await {
        assert_eq!(batches.len(), outboxes.len(), "one batch per other core");
        if !send_committed(&shared, &outboxes, batches).await {
            return;
        }
    }
}

/// Core 0: publishes each batch the ordering point made: makes it durable in the log
/// (group commit: the batch holds everything that arrived during the previous fdatasync),
/// applies it here, then sends it to the other cores that need it (`send_committed`), in
/// order. A slow core slows the
/// publisher (bounded channels). If the log fails, publishing stops for good: no write is
/// acknowledged that is not on disk.
async fn publish(
    leader: Rc<RefCell<Leader>>,
    state: Rc<RefCell<CoreState>>,
    outboxes: Vec<ConnectedSender<CommittedBatch>>,
    woken: LocalReceiver<()>,
    mut log_writer: LogWriter,
    snapshotter: Snapshotter,
) {
    let shared = state.borrow().shared.clone();
    while woken.recv().await.is_some() {
        // How long this round's writes held core 0: the touches that came meanwhile wait
        // unread until the round ends.
        let mut held = Duration::ZERO;
        loop {
            let published = leader.borrow_mut().take_batch();
            let Some(published) = published else { break };
            if !published.records.is_empty() {
                let started = std::time::Instant::now();
                let appended = log_writer.append(&published.records, published.first_zxid).await;
                note_log_write(&shared, started, published.last_zxid - published.first_zxid + 1);
                match appended {
                    Ok(write_held) => held += write_held,
                    Err(error) => {
                        tracing::error!(%error, "the transaction log failed; no further write will be acknowledged, reads go on");
                        *shared.log_failure.lock().expect("not poisoned") = error.to_string();
                        shared.log_failed.store(true, std::sync::atomic::Ordering::Release);
                        publish_listings_only(leader, state, outboxes, woken).await;
                        return;
                    }
                }
                shared.log_fsyncs.store(log_writer.fsync_count, std::sync::atomic::Ordering::Relaxed);
            }
            let mut controls = published.controls.into_iter();
            // Committed (durable) before anyone hears of it: reads on any core wait until
            // their core has applied this far, so no client reads older state than a
            // write already acknowledged to anyone.
            shared.committed_zxid.fetch_max(published.last_zxid, std::sync::atomic::Ordering::AcqRel);
            let applied = state.borrow_mut().apply_records(&published.records);
            let applied_zxid = state.borrow_mut().deliver(&applied, &controls.next().unwrap_or_default());
            if published.snapshot_due {
                snapshotter.take(applied.version.clone());
            }
            assert!(published.last_zxid == 0 || applied_zxid >= published.last_zxid);
            leader.borrow_mut().applied_through(applied_zxid);
            let batches = controls.map(|controls| CommittedBatch { applied: applied.clone(), controls });
            if !send_committed(&shared, &outboxes, batches).await {
                return;
            }
        }
        leader.borrow_mut().held_in_write(held);
    }
}

/// Core 0: sends every other core its committed batch, in order; false once a core's
/// stream is closed. A core with no connection gets a batch only if it carries a control
/// for it: with no session to answer and no watch to fire, the batch would only wake
/// that core. The next batch it gets carries a newer version, and a connection is
/// counted from its handshake (`Shared::holds_connections`), so every batch after goes
/// there; its session comes through a control (`Connected`), which moves the core to
/// the newest version before the session can read.
/// Read-only sessions come through none: while the member is read-only every core gets
/// every batch, and it became read-only either without ever serving (nothing skipped
/// yet) or with the `CloseAll` every core got when it stopped serving. Whoever waits for
/// every core to apply a zxid waits only for the cores that hold connections
/// (`Shared::applied_everywhere`).
async fn send_committed(
    shared: &Shared,
    outboxes: &[ConnectedSender<CommittedBatch>],
    batches: impl IntoIterator<Item = CommittedBatch>,
) -> bool {
    for (core, (outbox, batch)) in (1..).zip(outboxes.iter().zip(batches)) {
        if !needs_batch(shared, core, &batch) {
            continue;
        }
        if outbox.send(batch).await.is_err() {
            tracing::error!(core, "a core's committed stream is closed");
            return false;
        }
    }
    true
}

/// Whether core `core` must be sent `batch` (`send_committed`).
fn needs_batch(shared: &Shared, core: usize, batch: &CommittedBatch) -> bool {
    use std::sync::atomic::Ordering;
    !batch.controls.is_empty() || shared.holds_connections(core) || shared.read_only.load(Ordering::Acquire)
}

/// One group commit for the metrics: how long its write took and how many records it held.
pub(crate) fn note_log_write(shared: &Shared, started: std::time::Instant, records: i64) {
    debug_assert!(records > 0, "a group commit holds records");
    shared.histograms.log_write_us.record(started.elapsed().as_micros() as u64);
    shared.histograms.group_commit_records.record(records as u64);
}

/// Core 0 after the log failed: nothing more is applied, but the four-letter words still
/// get fresh numbers (`mntr` reports the failure), so their requests still reach every
/// core; every other control is dropped with the batch it came in.
async fn publish_listings_only(
    leader: Rc<RefCell<Leader>>,
    state: Rc<RefCell<CoreState>>,
    outboxes: Vec<ConnectedSender<CommittedBatch>>,
    woken: LocalReceiver<()>,
) {
    let shared = state.borrow().shared.clone();
    loop {
        let published = leader.borrow_mut().take_batch();
        let Some(published) = published else {
            if woken.recv().await.is_none() {
                return;
            }
            continue;
        };
        let unchanged = state.borrow().unchanged();
        let mut per_core = published.controls.into_iter().map(|controls| {
            controls.into_iter().filter(|(_, control)| matches!(control, Control::PublishListings)).collect::<Vec<_>>()
        });
        state.borrow_mut().deliver(&unchanged, &per_core.next().unwrap_or_default());
        let batches = per_core.map(|controls| CommittedBatch { applied: unchanged.clone(), controls });
        if !send_committed(&shared, &outboxes, batches).await {
            return;
        }
    }
}

/// Other cores: deliver the committed stream, in order.
async fn apply_committed(
    inbox: glommio::channels::shared_channel::ConnectedReceiver<CommittedBatch>,
    state: Rc<RefCell<CoreState>>,
) {
    while let Some(batch) = inbox.recv().await {
        state.borrow_mut().deliver(&batch.applied, &batch.controls);
        glommio::yield_if_needed().await;
    }
}

/// Session expiry runs twice per tick.
async fn every_half_tick(tick_ms: u32, work: impl Fn()) {
    let period = Duration::from_millis((tick_ms as u64 / 2).max(1));
    loop {
        glommio::timer::sleep(period).await;
        work();
    }
}

async fn reap_containers(shared: Arc<Shared>, reap: impl Fn(usize)) {
    let interval_ms = shared.config.container_check_interval_ms;
    let limit = (shared.config.container_max_per_minute * interval_ms / 60_000).max(1) as usize;
    loop {
        glommio::timer::sleep(Duration::from_millis(interval_ms)).await;
        reap(limit);
    }
}

/// Tells the ordering point which sessions were active, twice per tick, so it can
/// expire the silent ones (as followers report session touches to ZooKeeper's leader).
async fn send_touches(context: Rc<CoreContext>) {
    let period = Duration::from_millis((context.shared.config.tick_time_ms as u64 / 2).clamp(1, 1000));
    loop {
        glommio::timer::sleep(period).await;
        let sessions: Vec<i64> = context.state.borrow_mut().touched.drain().collect();
        if !sessions.is_empty() && !context.leader.send(ToLeader::Touch { sessions }).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn a_core_is_sent_a_batch_if_it_holds_a_connection_has_a_control_in_it_or_the_member_is_read_only() {
        let shared = Shared::new(crate::config::Config::default(), 2);
        let applied =
            Arc::new(messages::AppliedBatch { version: Arc::new(DataTree::new()), number: 1, writes: Vec::new() });
        let plain = CommittedBatch { applied: applied.clone(), controls: Vec::new() };
        let with_control = CommittedBatch { applied, controls: vec![(0, Control::PublishListings)] };
        assert!(!needs_batch(&shared, 1, &plain), "no session to answer, no watch to fire");
        assert!(needs_batch(&shared, 1, &with_control));
        shared.counters[1].connections.store(1, Ordering::Release);
        assert!(needs_batch(&shared, 1, &plain));
        // Read-only sessions come through no control that would bring the core up to date.
        shared.counters[1].connections.store(0, Ordering::Release);
        shared.read_only.store(true, Ordering::Release);
        assert!(needs_batch(&shared, 1, &plain));
    }
}
