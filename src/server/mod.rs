//! The only layer that touches the runtime: one glommio executor per core, each
//! accepting client connections on the same port (SO_REUSEPORT), the ordering point and
//! its publisher on core 0, and the committed stream to every other core.

pub mod connection;
pub mod connection_state;
pub mod core_state;
pub mod four_letter;
pub mod leader;
pub mod messages;
pub mod shared;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::channels::shared_channel::{self, ConnectedSender, SharedReceiver, SharedSender};
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::Config;
use connection::{CoreContext, LeaderLink};
use core_state::CoreState;
use leader::Leader;
use messages::{CommittedBatch, ToLeader};
use shared::Shared;

/// Capacity of each cross-core channel, in messages.
const CHANNEL_CAPACITY: usize = 4096;

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
}

fn make_channels(cores: usize) -> Vec<CoreChannels> {
    let mut channels: Vec<CoreChannels> = (0..cores)
        .map(|_| CoreChannels {
            leader_inboxes: Vec::new(),
            committed_outboxes: Vec::new(),
            leader_outbox: None,
            committed_inbox: None,
        })
        .collect();
    for core in 1..cores {
        let (to_leader, leader_inbox) = shared_channel::new_bounded(CHANNEL_CAPACITY);
        let (to_core, core_inbox) = shared_channel::new_bounded(CHANNEL_CAPACITY);
        channels[0].leader_inboxes.push(leader_inbox);
        channels[0].committed_outboxes.push(to_core);
        channels[core].leader_outbox = Some(to_leader);
        channels[core].committed_inbox = Some(core_inbox);
    }
    channels
}

/// Blocks SIGINT and SIGTERM in this thread (and the threads it spawns), so that the
/// main thread can wait for them with sigwait.
fn block_shutdown_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-set calls on a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Runs the server until SIGINT or SIGTERM.
pub fn run(config: Config, cores: usize) -> Result<(), String> {
    assert!(cores > 0);
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|error| format!("cannot create dataDir {}: {error}", config.data_dir.display()))?;
    let address = SocketAddr::new(config.client_port_address, config.client_port);
    // Every core binds with SO_REUSEPORT, which would let a second server share the port
    // silently; a plain bind first fails the way operators expect if it is taken.
    drop(std::net::TcpListener::bind(address).map_err(|error| format!("cannot listen on {address}: {error}"))?);
    let signals = block_shutdown_signals();
    let shared = Arc::new(Shared::new(config, cores));
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut handles = Vec::new();
    for (core, channels) in make_channels(cores).into_iter().enumerate() {
        let shared = shared.clone();
        let placement = if cores <= cpus { Placement::Fixed(core) } else { Placement::Unbound };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("core-{core}"))
            .spawn(move || async move { core_main(core, shared, channels, address).await })
            .map_err(|error| format!("cannot start executor for core {core}: {error}"))?;
        handles.push(handle);
    }
    tracing::info!(%address, cores, "ringkeeper serving");
    let mut signal: libc::c_int = 0;
    // SAFETY: waits on the signal set blocked above.
    unsafe { libc::sigwait(&signals, &mut signal) };
    tracing::info!(signal, "shutting down");
    // Nothing is buffered that a client was told is durable: replies are sent only after
    // their transactions are applied. Exiting now closes every connection.
    std::process::exit(0);
}

async fn core_main(core: usize, shared: Arc<Shared>, channels: CoreChannels, address: SocketAddr) {
    let state = Rc::new(RefCell::new(CoreState::new(core, shared.clone())));
    let leader = if core == 0 {
        let (publisher_wake, publisher_woken) = local_channel::new_bounded(1);
        let leader = Rc::new(RefCell::new(Leader::new(shared.clone(), state.clone(), publisher_wake)));
        for inbox in channels.leader_inboxes {
            glommio::spawn_local(forward_to_leader(inbox, leader.clone())).detach();
        }
        let mut outboxes = Vec::new();
        for outbox in channels.committed_outboxes {
            outboxes.push(outbox.connect().await);
        }
        glommio::spawn_local(publish(leader.clone(), state.clone(), outboxes, publisher_woken)).detach();
        glommio::spawn_local(expire_sessions(leader.clone(), shared.config.tick_time_ms)).detach();
        LeaderLink::Local(leader)
    } else {
        let inbox = channels.committed_inbox.expect("every other core has a committed stream").connect().await;
        glommio::spawn_local(apply_committed(inbox, state.clone())).detach();
        LeaderLink::Remote(channels.leader_outbox.expect("every other core has a leader channel").connect().await)
    };
    let context = Rc::new(CoreContext { core, state: state.clone(), leader, shared: shared.clone() });
    glommio::spawn_local(send_touches(context.clone())).detach();
    glommio::spawn_local(publish_listings(state.clone())).detach();
    let listener = match glommio::net::TcpListener::bind(address) {
        Ok(listener) => listener,
        Err(error) => {
            tracing::error!(core, %error, "cannot listen on {address}");
            std::process::exit(1);
        }
    };
    loop {
        match listener.accept().await {
            Ok(stream) => {
                glommio::spawn_local(connection::serve(stream, context.clone())).detach();
            }
            Err(error) => {
                tracing::warn!(core, %error, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Core 0: takes messages from another core's channel to the ordering point.
async fn forward_to_leader(inbox: SharedReceiver<ToLeader>, leader: Rc<RefCell<Leader>>) {
    let inbox = inbox.connect().await;
    while let Some(message) = inbox.recv().await {
        leader.borrow_mut().handle(message);
        glommio::yield_if_needed().await;
    }
}

/// Core 0: publishes each batch the ordering point made: applies it here, then sends it
/// to every other core, in order. A slow core slows the publisher (bounded channels).
async fn publish(
    leader: Rc<RefCell<Leader>>,
    state: Rc<RefCell<CoreState>>,
    outboxes: Vec<ConnectedSender<CommittedBatch>>,
    woken: LocalReceiver<()>,
) {
    while woken.recv().await.is_some() {
        loop {
            let published = leader.borrow_mut().take_batch();
            let Some(published) = published else { break };
            let mut controls = published.controls.into_iter();
            let local =
                CommittedBatch { records: published.records.clone(), controls: controls.next().unwrap_or_default() };
            let applied_zxid = state.borrow_mut().apply_batch(&local);
            debug_assert!(published.last_zxid == 0 || applied_zxid >= published.last_zxid);
            leader.borrow_mut().applied_through(applied_zxid);
            for (outbox, controls) in outboxes.iter().zip(controls) {
                let batch = CommittedBatch { records: published.records.clone(), controls };
                if outbox.send(batch).await.is_err() {
                    tracing::error!("a core's committed stream is closed");
                    return;
                }
            }
        }
    }
}

/// Other cores: apply the committed stream in order.
async fn apply_committed(
    inbox: glommio::channels::shared_channel::ConnectedReceiver<CommittedBatch>,
    state: Rc<RefCell<CoreState>>,
) {
    while let Some(batch) = inbox.recv().await {
        state.borrow_mut().apply_batch(&batch);
        glommio::yield_if_needed().await;
    }
}

async fn expire_sessions(leader: Rc<RefCell<Leader>>, tick_ms: u32) {
    let period = Duration::from_millis((tick_ms as u64 / 2).max(1));
    loop {
        glommio::timer::sleep(period).await;
        leader.borrow_mut().expire_sessions();
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

async fn publish_listings(state: Rc<RefCell<CoreState>>) {
    loop {
        glommio::timer::sleep(Duration::from_millis(500)).await;
        let state = state.borrow();
        state.publish_counters();
        state.publish_listings();
    }
}
