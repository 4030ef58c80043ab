//! An ensemble of real `ringkeeper serve` processes on loopback, driven through the Rust
//! `zookeeper-client` crate. Each test opens with the guarantee it checks (ZooKeeper
//! Programmer's Guide, "ZooKeeper guarantees", and the administrator's guide on
//! ensembles).

mod support;

use support::{ephemeral, persistent, run_within};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::ensemble::Ensemble;
use zookeeper_client as zk;

const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// Sessions of 6 s, a connection attempt of 2 s: what every client of these tests uses.
fn connector() -> zk::Connector {
    zk::Client::connector().with_session_timeout(Duration::from_secs(6)).with_connection_timeout(Duration::from_secs(2))
}

async fn connect(address: &str) -> zk::Client {
    connector().connect(address).await.unwrap_or_else(|error| panic!("client connects to {address}: {error}"))
}

/// Reads `path` on one member after a sync, so the read reflects every write
/// acknowledged before it ("sync: ... the client will see the latest value").
async fn read_on(address: &str, path: &str) -> Option<Vec<u8>> {
    let client = connect(address).await;
    client.sync(path).await.unwrap();
    match client.get_data(path).await {
        Ok((data, _)) => Some(data),
        Err(zk::Error::NoNode) => None,
        Err(error) => panic!("reading {path} on {address}: {error}"),
    }
}

#[test]
fn a_write_through_any_member_is_read_on_every_member() {
    // "Single System Image: a client will see the same view of the service regardless of
    // the server that it connects to." Writes go to followers and the leader alike.
    let ensemble = Ensemble::start(3, 0, "");
    run(async {
        for index in 0..3 {
            let client = connect(&ensemble.address(index)).await;
            let path = format!("/written-on-{index}");
            client.create(&path, format!("from {index}").as_bytes(), &persistent()).await.unwrap();
        }
        for reader in 0..3 {
            for writer in 0..3 {
                let data = read_on(&ensemble.address(reader), &format!("/written-on-{writer}")).await;
                assert_eq!(data, Some(format!("from {writer}").into_bytes()), "read on member {reader}");
            }
        }
    });
}

#[test]
fn one_sessions_writes_apply_in_the_order_it_sent_them() {
    // "Sequential Consistency: updates from a client will be applied in the order that
    // they were sent", here through a follower that forwards them to the leader.
    let ensemble = Ensemble::start(3, 0, "");
    let leader = ensemble.leader().unwrap();
    let follower = (0..3).find(|&index| index != leader).unwrap();
    run(async {
        let client = connect(&ensemble.address(follower)).await;
        client.create("/order", b"", &persistent()).await.unwrap();
        let writes: Vec<_> = (0..200).map(|n| client.set_data("/order", format!("{n}").as_bytes(), None)).collect();
        let mut versions = Vec::new();
        for write in writes {
            versions.push(write.await.unwrap().version);
        }
        assert_eq!(versions, (1..=200).collect::<Vec<i32>>());
        assert_eq!(read_on(&ensemble.address(leader), "/order").await, Some(b"199".to_vec()));
    });
}

/// What writers were told: path -> data.
type Acknowledged = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// Creates nodes through `address` until told to stop or the connection fails; records
/// every create the ensemble acknowledged.
async fn write_until_stopped(address: String, writer: usize, acknowledged: Acknowledged, stop: Arc<AtomicBool>) {
    let Ok(client) = connector().connect(&address).await else {
        return;
    };
    for n in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let path = format!("/failover/w{writer}-{n}-{}", rand_suffix());
        let leaked: &'static str = Box::leak(path.clone().into_boxed_str());
        let data = format!("{writer}:{n}").into_bytes();
        match client.create(leaked, &data, &persistent()).await {
            Ok(_) => {
                acknowledged.lock().unwrap().insert(path, data);
            }
            Err(_) => return,
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now())
}

/// Every acknowledged write is on `member`, read after a sync.
async fn verify_on(address: &str, acknowledged: &Acknowledged) -> usize {
    let client = connect(address).await;
    client.sync("/failover").await.unwrap();
    let expected: Vec<(String, Vec<u8>)> =
        acknowledged.lock().unwrap().iter().map(|(path, data)| (path.clone(), data.clone())).collect();
    for chunk in expected.chunks(64) {
        let reads: Vec<_> = chunk.iter().map(|(path, _)| client.get_data(path)).collect();
        for ((path, data), read) in chunk.iter().zip(reads) {
            let (found, _) =
                read.await.unwrap_or_else(|error| panic!("acknowledged {path} missing on {address}: {error}"));
            assert_eq!(&found, data, "{path} on {address}");
        }
    }
    expected.len()
}

#[test]
fn no_acknowledged_write_is_lost_when_the_leader_is_killed() {
    // "Reliability: once an update has been applied, it will persist from that time
    // forward." The leader is killed with SIGKILL while writers on every member keep
    // writing; after each failover every acknowledged write is on every member.
    // RINGKEEPER_FAILOVER_CYCLES sets the number of kills (the documented long run: 200).
    let cycles: usize = std::env::var("RINGKEEPER_FAILOVER_CYCLES").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let mut ensemble = Ensemble::start(3, 0, "");
    let acknowledged: Acknowledged = Arc::default();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let client = connect(&ensemble.address(0)).await;
        client.create("/failover", b"", &persistent()).await.unwrap();
    });
    for cycle in 0..cycles {
        let leader = ensemble.wait_serving();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..3)
            .map(|writer| {
                runtime.spawn(write_until_stopped(ensemble.address(writer), writer, acknowledged.clone(), stop.clone()))
            })
            .collect();
        let before = acknowledged.lock().unwrap().len();
        ensemble.wait_for("writes acknowledged before the kill", || acknowledged.lock().unwrap().len() > before + 20);
        ensemble.kill(leader);
        ensemble.wait_for("a new leader", || ensemble.leader().is_some_and(|new| new != leader));
        stop.store(true, Ordering::Relaxed);
        runtime.block_on(async {
            for writer in writers {
                let _ = tokio::time::timeout(Duration::from_secs(30), writer).await;
            }
        });
        ensemble.start_member(leader);
        ensemble.wait_serving();
        runtime.block_on(async {
            for index in 0..3 {
                let checked = tokio::time::timeout(TEST_TIMEOUT, verify_on(&ensemble.address(index), &acknowledged))
                    .await
                    .expect("verification finishes");
                assert!(checked > 0);
            }
        });
        eprintln!(
            "cycle {cycle}: killed member {}, {} acknowledged writes on every member",
            leader + 1,
            acknowledged.lock().unwrap().len()
        );
    }
}

#[test]
fn a_session_and_its_ephemeral_node_survive_a_leader_change() {
    // "Failover keeps sessions": the new leader gives every live session a fresh timeout,
    // so a client that reconnects within its timeout keeps its session and ephemerals.
    let mut ensemble = Ensemble::start(3, 0, "");
    let leader = ensemble.leader().unwrap();
    let follower = (0..3).find(|&index| index != leader).unwrap();
    run(async {
        let client = connect(&ensemble.address(follower)).await;
        client.create("/owned", b"", &ephemeral()).await.unwrap();
        let session = client.session_id();
        ensemble.kill(leader);
        ensemble.wait_for("a new leader", || ensemble.leader().is_some_and(|new| new != leader));
        // The client's connection was closed when its member lost the leader; it
        // reconnects to the same member with the same session.
        let mut reads = 0;
        loop {
            match client.check_stat("/owned").await {
                Ok(Some(stat)) => {
                    assert_eq!(stat.ephemeral_owner, session.0, "the ephemeral node is still the session's");
                    break;
                }
                Ok(None) => panic!("the session's ephemeral node was deleted by the leader change"),
                Err(error) => {
                    assert!(!matches!(error, zk::Error::SessionExpired), "the session expired");
                    reads += 1;
                    assert!(reads < 1000, "the client never got back: {error}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        assert_eq!(client.session_id(), session);
        let reader = connect(&ensemble.address(follower)).await;
        assert!(reader.check_stat("/owned").await.unwrap().is_some());
    });
}

#[test]
fn a_paused_leader_is_replaced_and_rejoins_as_a_follower() {
    // A leader cut off from its peers (SIGSTOP: its sockets stay open, nothing is read)
    // is replaced once the followers stop hearing from it for syncLimit ticks; when it
    // resumes it finds a newer epoch and follows, and writes made meanwhile reach it.
    let ensemble = Ensemble::start(3, 0, "");
    let leader = ensemble.leader().unwrap();
    let other = (0..3).find(|&index| index != leader).unwrap();
    ensemble.pause(leader);
    ensemble.wait_for("a new leader among the others", || {
        (0..3).filter(|&index| index != leader).any(|index| ensemble.mode(index).as_deref() == Some("leader"))
    });
    run(async {
        let client = connect(&ensemble.address(other)).await;
        client.create("/while-paused", b"x", &persistent()).await.unwrap();
    });
    ensemble.resume(leader);
    ensemble.wait_for("the old leader following", || ensemble.mode(leader).as_deref() == Some("follower"));
    run(async {
        assert_eq!(read_on(&ensemble.address(leader), "/while-paused").await, Some(b"x".to_vec()));
    });
}

#[test]
fn a_member_that_loses_its_quorum_stops_serving() {
    // A member that cannot reach a quorum stops serving clients (ZooKeeper closes their
    // connections and answers four-letter words with "not currently serving requests");
    // it serves again once a quorum is back, with every write.
    let mut ensemble = Ensemble::start(3, 0, "");
    run(async {
        let client = connect(&ensemble.address(0)).await;
        client.create("/before", b"", &persistent()).await.unwrap();
    });
    ensemble.kill(1);
    ensemble.kill(2);
    ensemble.wait_for("member 1 to stop serving", || ensemble.mode(0).is_none());
    assert!(ensemble.four_letter(0, "srvr").contains("not currently serving requests"));
    ensemble.start_member(1);
    ensemble.wait_for("members 1 and 2 serving", || ensemble.mode(0).is_some() && ensemble.mode(1).is_some());
    run(async {
        assert_eq!(read_on(&ensemble.address(0), "/before").await, Some(Vec::new()));
    });
}

#[test]
fn restarting_every_member_keeps_every_write() {
    let mut ensemble = Ensemble::start(3, 0, "");
    run(async {
        let client = connect(&ensemble.addresses()).await;
        for n in 0..50 {
            client.create(&format!("/kept-{n}"), b"k", &persistent()).await.unwrap();
        }
    });
    for index in 0..3 {
        ensemble.kill(index);
    }
    for index in 0..3 {
        ensemble.start_member(index);
    }
    ensemble.wait_serving();
    run(async {
        for index in 0..3 {
            for n in [0, 25, 49] {
                assert_eq!(read_on(&ensemble.address(index), &format!("/kept-{n}")).await, Some(b"k".to_vec()));
            }
        }
    });
}

#[test]
fn an_observer_serves_reads_and_writes_but_does_not_vote() {
    // Observers "do not take part in the voting": while a quorum of voters is up the
    // observer forwards writes and serves reads like a follower; with two of the three
    // voters gone, the last voter and the observer together are no quorum.
    let mut ensemble = Ensemble::start(3, 1, "");
    assert_eq!(ensemble.mode(3).as_deref(), Some("observer"));
    run(async {
        let client = connect(&ensemble.address(3)).await;
        client.create("/via-observer", b"o", &persistent()).await.unwrap();
        assert_eq!(read_on(&ensemble.address(0), "/via-observer").await, Some(b"o".to_vec()));
    });
    let leader = ensemble.leader().unwrap();
    let follower = (0..3).find(|&index| index != leader).unwrap();
    ensemble.kill(leader);
    ensemble.kill(follower);
    ensemble.wait_for("the observer to stop serving", || ensemble.mode(3).is_none());
}

#[test]
fn every_member_holds_the_membership_in_zookeeper_config() {
    // ZooKeeper's ensemble members write the configuration into /zookeeper/config as they
    // load their database (`ZKDatabase.initConfigInZKDatabase`), data version -1, mzxid
    // 0 for a static configuration; Curator's EnsembleTracker reads it there.
    let ensemble = Ensemble::start(3, 1, "");
    let config = std::fs::read_to_string(ensemble.members[0].dir.join("zoo.cfg")).unwrap();
    let mut expected: String =
        config.lines().filter(|line| line.starts_with("server.")).map(|line| format!("{line}\n")).collect();
    expected.push_str("version=0");
    assert!(expected.contains(":observer\n"), "{expected}");
    run(async {
        for index in 0..4 {
            let client = connect(&ensemble.address(index)).await;
            let (data, stat) = client.get_data("/zookeeper/config").await.unwrap();
            assert_eq!(String::from_utf8(data).unwrap(), expected, "member {index}");
            assert_eq!((stat.version, stat.mzxid, stat.czxid), (-1, 0, 0), "member {index}");
        }
    });
}

#[test]
fn a_write_through_the_connection_a_session_left_is_refused_and_closes_it() {
    // A session belongs to the connection its client last connected through: ZooKeeper's
    // checkSession refuses a write through the connection the session left, on another
    // server, with SessionMovedException, and that server closes the connection unanswered.
    use std::io::{Read, Write};
    let ensemble = Ensemble::start(3, 0, "");
    let (mut old, session_id, password) = support::raw::handshake(&ensemble.address(0));
    let mut new = support::raw::open(&ensemble.address(1));
    new.write_all(&support::raw::connect_request(0, session_id, &password, Some(false))).unwrap();
    let response = support::raw::read_frame(&mut new).expect("connect response");
    assert_eq!(i64::from_be_bytes(response[8..16].try_into().unwrap()), session_id, "re-attached");
    old.write_all(&support::raw::create_request(1, "/through-the-old-connection")).unwrap();
    old.set_read_timeout(Some(support::ensemble::SETTLE)).unwrap();
    let mut buffer = [0; 256];
    match old.read(&mut buffer) {
        Ok(0) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the old connection should close unanswered, read gave {other:?}"),
    }
    run(async {
        assert_eq!(read_on(&ensemble.address(2), "/through-the-old-connection").await, None, "not created");
    });
    // The session lives on through its new connection: a ping is answered.
    new.write_all(&support::raw::frame(&[0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 11])).unwrap();
    let reply = support::raw::read_frame(&mut new).expect("ping reply");
    assert_eq!(i32::from_be_bytes(reply[0..4].try_into().unwrap()), -2);
    assert_eq!(i32::from_be_bytes(reply[12..16].try_into().unwrap()), 0, "no error");
}

#[test]
fn mntr_reports_the_ensemble_from_the_leader() {
    let ensemble = Ensemble::start(3, 0, "");
    let leader = ensemble.leader().unwrap();
    ensemble
        .wait_for("both followers in sync", || ensemble.four_letter(leader, "mntr").contains("zk_synced_followers\t2"));
    let mntr = ensemble.four_letter(leader, "mntr");
    assert!(mntr.contains("zk_server_state\tleader"), "{mntr}");
    assert!(mntr.contains("zk_followers\t2"), "{mntr}");
    assert!(mntr.contains("zk_pending_syncs\t0"), "{mntr}");
    let follower = (0..3).find(|&index| index != leader).unwrap();
    assert!(ensemble.four_letter(follower, "mntr").contains("zk_server_state\tfollower"));
}

/// A zxid mntr reports for `member`.
fn mntr_zxid(ensemble: &Ensemble, index: usize, key: &str) -> Option<i64> {
    let mntr = ensemble.four_letter(index, "mntr");
    mntr.lines().find_map(|line| line.strip_prefix(&format!("{key}\t")))?.parse().ok()
}

#[test]
fn a_member_far_behind_is_sent_a_snapshot() {
    // SNAP: a follower that was down while the others wrote more than the leader keeps
    // for DIFFs gets the leader's state whole, and serves every write after it.
    let mut ensemble = Ensemble::start(3, 0, "syncRetainedBytes=32768\nsnapCount=100000");
    let leader = ensemble.leader().unwrap();
    let behind = (0..3).find(|&index| index != leader).unwrap();
    ensemble.kill(behind);
    run(async {
        let client = connect(&ensemble.address(leader)).await;
        let value = vec![7u8; 1024];
        for n in 0..200 {
            client.create(&format!("/bulk-{n}"), &value, &persistent()).await.unwrap();
        }
    });
    ensemble.start_member(behind);
    ensemble.wait_serving();
    run(async {
        assert_eq!(read_on(&ensemble.address(behind), "/bulk-0").await.map(|data| data.len()), Some(1024));
        assert_eq!(read_on(&ensemble.address(behind), "/bulk-199").await.map(|data| data.len()), Some(1024));
    });
    let log = std::fs::read_to_string(ensemble.members[behind].dir.join("server.log")).unwrap();
    assert!(log.contains("installing the leader's snapshot"), "the member was brought up by SNAP");
    // One tree serves every core: the snapshot replaces it in place, without a restart.
    let after_install = &log[log.find("installing the leader's snapshot").unwrap()..];
    assert!(!after_install.contains("ringkeeper serving"), "the member did not restart to install it");
}

#[test]
fn a_record_only_the_old_leader_wrote_is_cut_when_it_returns() {
    // TRUNC: the leader appends a write that no follower receives (both are down), then
    // dies. The others elect a leader without it; when the old leader comes back its
    // uncommitted record is cut from its log and its trees (it had applied it when it
    // restarted), and it follows the new history.
    let mut ensemble = Ensemble::start(3, 0, "syncLimit=100");
    let leader = ensemble.leader().unwrap();
    let followers: Vec<usize> = (0..3).filter(|&index| index != leader).collect();
    run(async {
        let client = connect(&ensemble.address(leader)).await;
        client.create("/committed", b"", &persistent()).await.unwrap();
    });
    // The session and a marker exist before the followers go down: the one record they
    // miss is the create after them.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let client = runtime.block_on(connect(&ensemble.address(leader)));
    // The last record the followers hold, as the client was told of it (mntr's figures
    // are published a moment later, and a stale one would end the wait below early).
    let (marker, _) = runtime.block_on(client.create("/marker", b"", &persistent())).unwrap();
    for &follower in &followers {
        ensemble.kill(follower);
    }
    let writer = runtime.spawn(async move {
        let _ = client.create("/uncommitted", b"", &persistent()).await;
    });
    ensemble.wait_for("the leader to make a record nobody else has durable", || {
        mntr_zxid(&ensemble, leader, "ringkeeper_log_durable_zxid").is_some_and(|durable| durable > marker.czxid)
    });
    ensemble.kill(leader);
    writer.abort();
    drop(runtime);
    for &follower in &followers {
        ensemble.start_member(follower);
    }
    ensemble.wait_for("a leader among the others", || {
        followers.iter().any(|&index| ensemble.mode(index).as_deref() == Some("leader"))
    });
    run(async {
        let client = connect(&ensemble.address(followers[0])).await;
        client.create("/after", b"", &persistent()).await.unwrap();
    });
    ensemble.start_member(leader);
    ensemble.wait_serving();
    run(async {
        assert_eq!(read_on(&ensemble.address(leader), "/after").await, Some(Vec::new()));
        assert_eq!(read_on(&ensemble.address(leader), "/uncommitted").await, None, "the uncommitted record was cut");
        assert_eq!(read_on(&ensemble.address(followers[1]), "/uncommitted").await, None);
        assert_eq!(read_on(&ensemble.address(leader), "/committed").await, Some(Vec::new()));
    });
    let log = std::fs::read_to_string(ensemble.members[leader].dir.join("server.log")).unwrap();
    assert!(log.contains("restarting to rebuild them"), "the old leader's trees were rebuilt after TRUNC");
}

// ---- linearizability of compare-and-set across faults

/// What a client saw of one operation on the register `/register`: a compare-and-set
/// (setData with the expected version) or a read (sync, then getData).
#[derive(Debug, Clone)]
struct Operation {
    start_ns: u64,
    /// None: the outcome is unknown (the connection broke), so it may or may not have
    /// taken effect, at any point after it started.
    end_ns: Option<u64>,
    kind: OperationKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OperationKind {
    /// setData(expected version) of a unique value; `applied` is whether it succeeded.
    Cas {
        expected: i32,
        value: Vec<u8>,
        applied: Option<bool>,
    },
    Read {
        version: i32,
        value: Vec<u8>,
    },
}

/// The register's state: its version and value.
type Register = (i32, Vec<u8>);

/// Applies `operation` to `state` if it can explain what the client saw.
fn step_register(state: &Register, operation: &Operation) -> Option<Register> {
    match &operation.kind {
        OperationKind::Cas { expected, value, applied } => {
            let matches = state.0 == *expected;
            match applied {
                Some(true) if matches => Some((state.0 + 1, value.clone())),
                Some(false) if !matches => Some(state.clone()),
                None if matches => Some((state.0 + 1, value.clone())),
                _ => None,
            }
        }
        OperationKind::Read { version, value } => (state.0 == *version && state.1 == *value).then(|| state.clone()),
    }
}

/// Wing and Gong's search with Lowe's memoisation: is there an order of the operations,
/// consistent with real time (an operation that ended before another started goes first),
/// in which each completed one does what its client saw? Operations with unknown outcomes
/// may be left out.
fn linearizable(operations: &[Operation], initial: Register) -> bool {
    let count = operations.len();
    let mut seen: std::collections::HashSet<(Vec<bool>, Register)> = std::collections::HashSet::new();
    let mut stack = vec![(vec![false; count], initial)];
    while let Some((done, state)) = stack.pop() {
        if (0..count).all(|index| done[index] || operations[index].end_ns.is_none()) {
            return true;
        }
        if !seen.insert((done.clone(), state.clone())) {
            continue;
        }
        // The earliest end among the completed operations not yet placed: anything that
        // started after it cannot go before it.
        let horizon = (0..count).filter(|&index| !done[index]).filter_map(|index| operations[index].end_ns).min();
        for index in (0..count).filter(|&index| !done[index]) {
            if horizon.is_some_and(|horizon| operations[index].start_ns > horizon) {
                continue;
            }
            if let Some(next) = step_register(&state, &operations[index]) {
                let mut placed = done.clone();
                placed[index] = true;
                stack.push((placed, next));
            }
        }
    }
    false
}

#[test]
fn the_checker_refuses_a_history_that_is_not_linearizable() {
    // A read that sees a write's value before the write started cannot be ordered.
    let write = Operation {
        start_ns: 10,
        end_ns: Some(20),
        kind: OperationKind::Cas { expected: 0, value: b"a".to_vec(), applied: Some(true) },
    };
    let early_read =
        Operation { start_ns: 0, end_ns: Some(5), kind: OperationKind::Read { version: 1, value: b"a".to_vec() } };
    assert!(!linearizable(&[write.clone(), early_read], (0, Vec::new())));
    let late_read =
        Operation { start_ns: 25, end_ns: Some(30), kind: OperationKind::Read { version: 1, value: b"a".to_vec() } };
    assert!(linearizable(&[write, late_read], (0, Vec::new())));
}

/// What the linearizability test's clients share: when to stop, and how many operations
/// they have completed.
struct Progress {
    stop: AtomicBool,
    completed: std::sync::atomic::AtomicUsize,
}

async fn cas_client(
    address: String,
    client_id: usize,
    progress: Arc<Progress>,
    epoch: std::time::Instant,
) -> Vec<Operation> {
    let now_ns = || epoch.elapsed().as_nanos() as u64;
    let mut history = Vec::new();
    let mut client = None;
    let mut known_version = 0;
    // Bounded, and paced so that the history spans the faults without growing past what
    // the checker searches quickly.
    for n in 0..OPERATIONS_MAX {
        if progress.stop.load(Ordering::Relaxed) {
            break;
        }
        progress.completed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(3)).await;
        if client.is_none() {
            client = connector().connect(&address).await.ok();
            if client.is_none() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        }
        let session = client.as_ref().unwrap();
        let start_ns = now_ns();
        if n % 2 == 0 {
            let sync = session.sync("/register").await;
            let read = match sync {
                Ok(()) => session.get_data("/register").await,
                Err(error) => Err(error),
            };
            match read {
                Ok((value, stat)) => {
                    known_version = stat.version;
                    let kind = OperationKind::Read { version: stat.version, value };
                    history.push(Operation { start_ns, end_ns: Some(now_ns()), kind });
                }
                // A read that failed changed nothing: it is left out.
                Err(_) => client = None,
            }
        } else {
            let value = format!("{client_id}:{n}").into_bytes();
            let expected = known_version;
            let (end_ns, applied) = match session.set_data("/register", &value, Some(expected)).await {
                Ok(stat) => {
                    known_version = stat.version;
                    (Some(now_ns()), Some(true))
                }
                Err(zk::Error::BadVersion) => (Some(now_ns()), Some(false)),
                Err(_) => {
                    client = None;
                    (None, None)
                }
            };
            history.push(Operation { start_ns, end_ns, kind: OperationKind::Cas { expected, value, applied } });
        }
    }
    history
}

/// Operations per client in the linearizability test.
const OPERATIONS_MAX: usize = 1000;

#[test]
fn compare_and_set_and_synced_reads_stay_linearizable_across_leader_kills() {
    // "Linearizable writes": a history of setData-with-version and sync+getData from
    // clients on every member, while the leader is killed twice, has an order consistent
    // with real time in which every operation does what its client saw.
    let mut ensemble = Ensemble::start(3, 0, "");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let client = connect(&ensemble.address(0)).await;
        client.create("/register", b"", &persistent()).await.unwrap();
    });
    let epoch = std::time::Instant::now();
    let progress = Arc::new(Progress { stop: AtomicBool::new(false), completed: Default::default() });
    let clients: Vec<_> = (0..3)
        .map(|index| runtime.spawn(cas_client(ensemble.address(index), index, progress.clone(), epoch)))
        .collect();
    let operations_since = |before: usize| progress.completed.load(Ordering::Relaxed) > before + 60;
    for _ in 0..2 {
        let leader = ensemble.wait_serving();
        let before = progress.completed.load(Ordering::Relaxed);
        ensemble.wait_for("operations before the kill", || operations_since(before));
        ensemble.kill(leader);
        ensemble.wait_for("a new leader", || ensemble.leader().is_some_and(|new| new != leader));
        ensemble.start_member(leader);
    }
    ensemble.wait_serving();
    let before = progress.completed.load(Ordering::Relaxed);
    ensemble.wait_for("operations after the last kill", || operations_since(before));
    progress.stop.store(true, Ordering::Relaxed);
    let histories: Vec<Vec<Operation>> = runtime.block_on(async {
        let mut histories = Vec::new();
        for client in clients {
            histories.push(tokio::time::timeout(TEST_TIMEOUT, client).await.expect("clients finish").unwrap());
        }
        histories
    });
    let operations: Vec<Operation> = histories.into_iter().flatten().collect();
    let applied = operations
        .iter()
        .filter(|operation| matches!(operation.kind, OperationKind::Cas { applied: Some(true), .. }))
        .count();
    assert!(applied > 5, "the clients' compare-and-sets succeeded {applied} times");
    assert!(linearizable(&operations, (0, Vec::new())), "not linearizable: {operations:#?}");
}

/// The epoch mntr reports for `member`.
fn mntr_epoch(ensemble: &Ensemble, index: usize) -> Option<u32> {
    let mntr = ensemble.four_letter(index, "mntr");
    mntr.lines().find_map(|line| line.strip_prefix("ringkeeper_epoch\t"))?.parse().ok()
}

#[test]
fn a_spent_zxid_counter_opens_a_new_epoch_without_an_election() {
    // ZooKeeper re-elects when the 32-bit counter of the zxid runs out (ZOOKEEPER-2789);
    // here the leader opens the next epoch while it leads. With the counter limited to
    // 20, a hundred writes cross several epochs, every one succeeds, and the same member
    // leads throughout.
    let ensemble = Ensemble::start(3, 0, "zxidCounterLimit=20");
    let leader = ensemble.leader().unwrap();
    let first_epoch = mntr_epoch(&ensemble, leader).unwrap();
    run(async {
        let clients = [connect(&ensemble.address(0)).await, connect(&ensemble.address(1)).await];
        for n in 0..100 {
            let client = &clients[n % 2];
            client.create(&format!("/spent-{n}"), b"", &persistent()).await.unwrap();
        }
        for index in 0..3 {
            assert_eq!(read_on(&ensemble.address(index), "/spent-99").await, Some(Vec::new()));
        }
    });
    assert_eq!(ensemble.leader(), Some(leader), "no election");
    assert!(mntr_epoch(&ensemble, leader).unwrap() >= first_epoch + 3, "new epochs opened");
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    run_within(TEST_TIMEOUT, test)
}

#[test]
fn a_leader_cut_off_from_its_peers_is_replaced_and_rejoins_when_the_network_heals() {
    // A partition, not a crash: the leader's links stay open but carry nothing. The others
    // elect a leader within the sync limit and go on writing; the old leader, hearing
    // from no quorum, stops serving; healed, it follows and has every write.
    let ensemble = Ensemble::start_partitionable(3, "");
    let leader = ensemble.leader().unwrap();
    let others: Vec<usize> = (0..3).filter(|&index| index != leader).collect();
    ensemble.cut(&[leader]);
    ensemble.wait_for("a leader among the others", || {
        others.iter().any(|&index| ensemble.mode(index).as_deref() == Some("leader"))
    });
    ensemble.wait_for("the cut-off leader to stop serving", || ensemble.mode(leader).is_none());
    run(async {
        let client = connect(&ensemble.address(others[0])).await;
        client.create("/during-partition", b"p", &persistent()).await.unwrap();
    });
    ensemble.heal();
    ensemble.wait_for("the old leader following", || ensemble.mode(leader).as_deref() == Some("follower"));
    run(async {
        assert_eq!(read_on(&ensemble.address(leader), "/during-partition").await, Some(b"p".to_vec()));
    });
}

#[test]
fn a_minority_cut_off_stops_serving_while_the_majority_goes_on() {
    let ensemble = Ensemble::start_partitionable(5, "");
    let leader = ensemble.leader().unwrap();
    let minority: Vec<usize> = (0..5).filter(|&index| index != leader).take(2).collect();
    ensemble.cut(&minority);
    for &index in &minority {
        ensemble.wait_for("the minority to stop serving", || ensemble.mode(index).is_none());
    }
    run(async {
        let client = connect(&ensemble.address(leader)).await;
        for n in 0..20 {
            client.create(&format!("/majority-{n}"), b"", &persistent()).await.unwrap();
        }
    });
    assert_eq!(ensemble.leader(), Some(leader), "the majority kept its leader");
    ensemble.heal();
    ensemble.wait_serving();
    run(async {
        for &index in &minority {
            assert_eq!(read_on(&ensemble.address(index), "/majority-19").await, Some(Vec::new()));
        }
    });
}

#[test]
fn a_member_without_quorum_serves_read_only_sessions_in_read_only_mode() {
    // readonlymode.enabled: a member cut off from its quorum serves clients that asked for
    // a read-only session (reads of what it has; writes fail with NotReadOnly), refuses
    // the others, answers isro with "ro"; with a quorum again it ends those sessions and
    // serves read-write.
    let mut ensemble = Ensemble::start(3, 0, "readonlymode.enabled=true");
    run(async {
        let client = connect(&ensemble.address(0)).await;
        client.create("/kept", b"v", &persistent()).await.unwrap();
        client.sync("/kept").await.unwrap();
    });
    ensemble.wait_for("every member to hold /kept", || {
        (0..3).all(|index| {
            mntr_zxid(&ensemble, index, "ringkeeper_commit_zxid") == mntr_zxid(&ensemble, 0, "ringkeeper_commit_zxid")
        })
    });
    ensemble.kill(1);
    ensemble.kill(2);
    ensemble.wait_for("member 1 in read-only mode", || ensemble.four_letter(0, "isro") == "ro");
    assert_eq!(ensemble.mode(0).as_deref(), Some("read-only"));
    run(async {
        let client = zk::Client::connector()
            .with_readonly(true)
            .with_session_timeout(Duration::from_secs(6))
            .connect(&ensemble.address(0))
            .await
            .expect("a read-only session");
        assert_eq!(client.get_data("/kept").await.unwrap().0, b"v");
        let refused = client.create("/written", b"", &persistent()).await.unwrap_err();
        assert_eq!(refused, zk::Error::NotReadOnly);
        let read_write = zk::Client::connector()
            .with_connection_timeout(Duration::from_millis(500))
            .with_session_timeout(Duration::from_secs(2))
            .connect(&ensemble.address(0))
            .await;
        assert!(read_write.is_err(), "a session that did not ask for read-only is refused");
    });
    ensemble.start_member(1);
    ensemble.wait_for("member 1 serving read-write", || {
        ensemble.four_letter(0, "isro") == "rw" && ensemble.mode(0).is_some()
    });
    run(async {
        assert_eq!(read_on(&ensemble.address(0), "/kept").await, Some(b"v".to_vec()));
    });
}
