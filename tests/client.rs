//! Integration tests: a real `ringkeeper serve`, driven through the Rust
//! `zookeeper-client` crate. Each test opens with the ZooKeeper behaviour it checks
//! (ZooKeeper Programmer's Guide unless said otherwise).

mod support;

use support::{ephemeral, persistent, run_within};

use std::time::Duration;

use support::Server;
use zookeeper_client as zk;

const TEST_TIMEOUT: Duration = Duration::from_secs(30);

async fn connect(server: &Server) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(Duration::from_millis(2000))
        .connect(&server.address())
        .await
        .expect("client connects")
}

#[test]
fn create_get_set_delete_follow_stat_semantics() {
    // "The Stat structure ... czxid, mzxid, pzxid, version, cversion, dataLength,
    // numChildren": a create sets czxid = mzxid = pzxid; setData moves mzxid and
    // version; a child create moves the parent's cversion and pzxid.
    let server = Server::start();
    run(async {
        let client = connect(&server).await;
        let (created, _) = client.create("/app", b"v0", &persistent()).await.unwrap();
        assert_eq!(created.czxid, created.mzxid);
        assert_eq!(created.czxid, created.pzxid);
        assert_eq!((created.version, created.cversion, created.data_length, created.num_children), (0, 0, 2, 0));

        let updated = client.set_data("/app", b"value-1", Some(0)).await.unwrap();
        assert_eq!(updated.version, 1);
        assert!(updated.mzxid > created.mzxid);
        assert_eq!(updated.czxid, created.czxid);
        assert_eq!(updated.data_length, 7);

        let (child, _) = client.create("/app/child", b"", &persistent()).await.unwrap();
        let (data, parent) = client.get_data("/app").await.unwrap();
        assert_eq!(data, b"value-1");
        assert_eq!((parent.cversion, parent.num_children, parent.pzxid), (1, 1, child.czxid));

        assert_eq!(client.set_data("/app", b"x", Some(0)).await.unwrap_err(), zk::Error::BadVersion);
        assert_eq!(client.delete("/app", None).await.unwrap_err(), zk::Error::NotEmpty);
        assert_eq!(client.create("/app", b"", &persistent()).await.unwrap_err(), zk::Error::NodeExists);
        assert_eq!(client.get_data("/missing").await.unwrap_err(), zk::Error::NoNode);
        assert_eq!(client.create("/missing/child", b"", &persistent()).await.unwrap_err(), zk::Error::NoNode);

        client.delete("/app/child", Some(0)).await.unwrap();
        client.delete("/app", None).await.unwrap();
        assert_eq!(client.check_stat("/app").await.unwrap(), None);
    });
}

#[test]
fn sequential_names_use_the_parents_child_version_padded_to_ten_digits() {
    // "the sequence number ... is a 10 digit number with 0 padding", taken from the
    // parent's cversion, which deletes do not move.
    let server = Server::start();
    run(async {
        let client = connect(&server).await;
        client.create("/q", b"", &persistent()).await.unwrap();
        let sequential = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
        let (_, first) = client.create("/q/item-", b"", &sequential).await.unwrap();
        assert_eq!(first.to_string(), "0000000000");
        client.create("/q/plain", b"", &persistent()).await.unwrap();
        client.delete("/q/plain", None).await.unwrap();
        let (_, third) = client.create("/q/item-", b"", &sequential).await.unwrap();
        assert_eq!(third.to_string(), "0000000002");
        let mut children = client.list_children("/q").await.unwrap();
        children.sort();
        assert_eq!(children, vec!["item-0000000000", "item-0000000002"]);
    });
}

#[test]
fn ephemerals_belong_to_their_session_and_cannot_have_children() {
    // "Ephemeral znodes ... are deleted when the session ends" and "are not allowed to
    // have children".
    let server = Server::start();
    run(async {
        let owner = connect(&server).await;
        let observer = connect(&server).await;
        let (stat, _) = owner.create("/lease", b"", &ephemeral()).await.unwrap();
        assert_eq!(stat.ephemeral_owner, owner.session_id().0);
        assert_eq!(owner.list_ephemerals("/").await.unwrap(), vec!["/lease"]);
        assert_eq!(
            owner.create("/lease/child", b"", &persistent()).await.unwrap_err(),
            zk::Error::NoChildrenForEphemerals
        );
        let (_, _, deleted) = observer.get_and_watch_data("/lease").await.unwrap();
        drop(owner);
        let event = deleted.changed().await;
        assert_eq!(event.event_type, zk::EventType::NodeDeleted);
        assert_eq!(observer.check_stat("/lease").await.unwrap(), None);
    });
}

#[test]
fn an_expired_session_loses_its_ephemerals_and_cannot_reattach() {
    // "When a session expires ... the ephemeral nodes are removed" and a client that
    // re-attaches to an expired session is told it has expired.
    let server = Server::start();
    run(async {
        let observer = connect(&server).await;
        let owner = zk::Client::connector()
            .with_session_timeout(Duration::from_millis(800))
            .with_detached()
            .connect(&server.address())
            .await
            .unwrap();
        owner.create("/expiring", b"", &ephemeral()).await.unwrap();
        let (_, _, deleted) = observer.get_and_watch_data("/expiring").await.unwrap();
        let session = owner.into_session();
        // The session stays open (detached) until its timeout passes without pings.
        let event = deleted.changed().await;
        assert_eq!(event.event_type, zk::EventType::NodeDeleted);
        let reattach = zk::Client::connector().with_session(session).connect(&server.address()).await;
        assert!(matches!(reattach, Err(zk::Error::SessionExpired)), "got {reattach:?}");
    });
}

#[test]
fn a_session_reattaches_with_its_password_and_keeps_its_ephemerals() {
    // A client that reconnects with its session id and password within the timeout keeps
    // its session. (A wrong password is covered by the raw protocol tests.)
    let server = Server::start();
    run(async {
        let first = zk::Client::connector().with_detached().connect(&server.address()).await.unwrap();
        first.create("/mine", b"", &ephemeral()).await.unwrap();
        let session = first.into_session();
        let again = zk::Client::connector().with_session(session).connect(&server.address()).await.unwrap();
        assert_eq!(again.list_ephemerals("/").await.unwrap(), vec!["/mine"]);
    });
}

#[test]
fn watches_are_one_shot_and_fire_before_later_reads_see_the_change() {
    // "A client will see a watch event for a znode before it sees the new data", and
    // a standard watch fires once.
    let server = Server::start();
    run(async {
        let writer = connect(&server).await;
        let reader = connect(&server).await;
        let (_, created) = reader.check_and_watch_stat("/w").await.unwrap();
        writer.create("/w", b"1", &persistent()).await.unwrap();
        assert_eq!(created.changed().await.event_type, zk::EventType::NodeCreated);

        let (_, _, changed) = reader.get_and_watch_data("/w").await.unwrap();
        let (_, _, children) = reader.get_and_watch_children("/w").await.unwrap();
        writer.set_data("/w", b"2", None).await.unwrap();
        writer.create("/w/c", b"", &persistent()).await.unwrap();
        let event = changed.changed().await;
        assert_eq!((event.event_type, event.path.as_str()), (zk::EventType::NodeDataChanged, "/w"));
        assert_eq!(children.changed().await.event_type, zk::EventType::NodeChildrenChanged);
        assert_eq!(reader.get_data("/w").await.unwrap().0, b"2");
        let info = server.four_letter("wchs");
        assert!(info.contains("Total watches:0"), "{info}");
    });
}

#[test]
fn multi_is_all_or_nothing() {
    // multi: "either all of the operations succeed or none of them do".
    let server = Server::start();
    run(async {
        let client = connect(&server).await;
        client.create("/m", b"", &persistent()).await.unwrap();
        let mut failing = client.new_multi_writer();
        failing.add_create("/m/a", b"", &persistent()).unwrap();
        failing.add_check_version("/m", 7).unwrap();
        let error = failing.commit().await.unwrap_err();
        assert!(
            matches!(error, zk::MultiWriteError::OperationFailed { index: 1, source: zk::Error::BadVersion }),
            "{error:?}"
        );
        assert_eq!(client.check_stat("/m/a").await.unwrap(), None);

        let mut writer = client.new_multi_writer();
        writer.add_create("/m/a", b"", &persistent()).unwrap();
        writer.add_create("/m/a/b", b"", &persistent()).unwrap();
        writer.add_set_data("/m", b"done", Some(0)).unwrap();
        let results = writer.commit().await.unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(client.get_data("/m").await.unwrap().0, b"done");
        assert_eq!(client.count_descendants_number("/m").await.unwrap(), 2);
    });
}

#[test]
fn sessions_on_different_cores_see_each_others_writes_after_sync() {
    // "sync ... the client will be up to date with the leader"; sessions spread across
    // cores read one order of writes.
    let server = Server::start();
    run(async {
        let mut clients = Vec::new();
        for _ in 0..6 {
            clients.push(connect(&server).await);
        }
        for (index, client) in clients.iter().enumerate() {
            client.create(&format!("/n{index}"), b"", &persistent()).await.unwrap();
        }
        for client in &clients {
            client.sync("/").await.unwrap();
            let mut children = client.list_children("/").await.unwrap();
            children.retain(|name| name.starts_with('n'));
            assert_eq!(children.len(), 6);
        }
    });
}

#[test]
fn a_session_on_a_core_that_served_nobody_reads_every_write_acknowledged_before() {
    // "Single System Image: a client will see the same view of the service regardless of
    // the server that it connects to", and here of the core. A lone session is served on
    // core 0, and a core with no connection is sent no committed batch: the next session
    // goes to that core, whose version predates every write below, and its first reads
    // must still show them all, without a sync.
    let server = Server::start_on_cores("", Some(2));
    run(async {
        let first = connect(&server).await;
        for index in 0..50 {
            first.create(&format!("/w{index}"), b"v", &persistent()).await.unwrap();
        }
        first.set_data("/w0", b"changed", None).await.unwrap();
        let second = connect(&server).await;
        let mut children = second.list_children("/").await.unwrap();
        children.retain(|name| name.starts_with('w'));
        assert_eq!(children.len(), 50);
        assert_eq!(second.get_data("/w0").await.unwrap().0, b"changed");
        first.delete("/w1", None).await.unwrap();
        assert_eq!(second.get_data("/w1").await.unwrap_err(), zk::Error::NoNode);
    });
}

#[test]
fn pipelined_requests_of_one_session_complete_in_order() {
    // "Sequential Consistency - Updates from a client will be applied in the order that
    // they were sent", with reads queued behind writes seeing them.
    let server = Server::start();
    run(async {
        let client = connect(&server).await;
        client.create("/p", b"", &persistent()).await.unwrap();
        let mut writes = Vec::new();
        let mut reads = Vec::new();
        for value in 0..200u32 {
            writes.push(client.set_data("/p", &value.to_be_bytes(), None));
            reads.push(client.get_data("/p"));
        }
        for (value, (write, read)) in writes.into_iter().zip(reads).enumerate() {
            let stat = write.await.unwrap();
            assert_eq!(stat.version, value as i32 + 1);
            let (data, read_stat) = read.await.unwrap();
            assert_eq!(data, (value as u32).to_be_bytes());
            assert_eq!(read_stat.version, stat.version);
        }
    });
}

#[test]
fn persistent_recursive_watches_see_the_subtree_and_stay() {
    // addWatch PERSISTENT_RECURSIVE: events for the node and everything below it, not
    // removed by firing, and no NodeChildrenChanged (ZooKeeper 3.6+).
    let server = Server::start();
    run(async {
        let watcher = connect(&server).await;
        let writer = connect(&server).await;
        let mut watch = watcher.watch("/tree", zk::AddWatchMode::PersistentRecursive).await.unwrap();
        writer.create("/tree", b"", &persistent()).await.unwrap();
        writer.create("/tree/a", b"", &persistent()).await.unwrap();
        writer.set_data("/tree/a", b"x", None).await.unwrap();
        writer.delete("/tree/a", None).await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let event = watch.changed().await;
            seen.push((event.event_type, event.path));
        }
        assert_eq!(
            seen,
            vec![
                (zk::EventType::NodeCreated, "/tree".to_owned()),
                (zk::EventType::NodeCreated, "/tree/a".to_owned()),
                (zk::EventType::NodeDataChanged, "/tree/a".to_owned()),
                (zk::EventType::NodeDeleted, "/tree/a".to_owned()),
            ]
        );
    });
}

#[test]
fn empty_containers_are_reaped_after_their_last_child_goes() {
    // createContainer: "a container node ... will be deleted by the server once it has
    // had children and has none left".
    let server = Server::start_with("znode.container.checkIntervalMs=100");
    run(async {
        let client = connect(&server).await;
        let container = zk::CreateMode::Container.with_acls(zk::Acls::anyone_all());
        client.create("/box", b"", &container).await.unwrap();
        let (_, stat) = client.get_data("/box").await.unwrap();
        assert_eq!(stat.ephemeral_owner, 0, "clients do not see the container marker");
        client.create("/box/item", b"", &persistent()).await.unwrap();
        client.delete("/box/item", None).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while client.check_stat("/box").await.unwrap().is_some() {
            assert!(std::time::Instant::now() < deadline, "the empty container is reaped");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn a_ttl_node_is_reaped_once_unchanged_and_childless_for_its_ttl() {
    // createTTL: "the node will be deleted if it has not been modified within the TTL and
    // has no children" (extendedTypesEnabled), by the same background check as containers.
    let server = Server::start_with("extendedTypesEnabled=true\nznode.container.checkIntervalMs=100");
    run(async {
        let client = connect(&server).await;
        let ttl = persistent().with_ttl(Duration::from_millis(500));
        client.create("/ttl", b"", &ttl).await.unwrap();
        client.create("/ttl/child", b"", &persistent()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert!(client.check_stat("/ttl").await.unwrap().is_some(), "a TTL node with a child stays");
        client.delete("/ttl/child", None).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while client.check_stat("/ttl").await.unwrap().is_some() {
            assert!(std::time::Instant::now() < deadline, "the childless TTL node is reaped");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn wchs_counts_a_path_once_however_many_cores_hold_watches_on_it() {
    // `wchs` reports "N connections watching P paths": P counts distinct paths. Sessions
    // are spread over the cores, so watches on one path sit in several cores' tables.
    let server = Server::start();
    run(async {
        let writer = connect(&server).await;
        writer.create("/shared", b"", &persistent()).await.unwrap();
        let mut readers = Vec::new();
        for _ in 0..8 {
            let reader = connect(&server).await;
            let (_, watch) = reader.check_and_watch_stat("/shared").await.unwrap();
            readers.push((reader, watch));
        }
        assert_eq!(server.four_letter("wchs"), "8 connections watching 1 paths\nTotal watches:8\n");
    });
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    run_within(TEST_TIMEOUT, test)
}
