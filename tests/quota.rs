//! Quotas through a real client (zookeeper-client), set up the way the CLI's `setquota`
//! does: `/zookeeper/quota/<path>/zookeeper_limits` written by the client,
//! `/zookeeper/quota/<path>/zookeeper_stats` kept by the server. Each test opens with the
//! ZooKeeper 3.8 behaviour it checks.

mod support;

use support::{persistent, run_within};

use std::time::Duration;

use support::Server;
use zookeeper_client as zk;

async fn connect(server: &Server) -> zk::Client {
    zk::Client::connector().connect(&server.address()).await.expect("connects")
}

/// Sets a quota on `path` as `SetQuotaCommand.createQuota` does for a new one: the
/// parents under /zookeeper/quota, the limits node, then the stats node with zeroes
/// (which the server recounts on creation).
async fn set_quota(client: &zk::Client, path: &str, limits: &str) {
    let mut quota_path = "/zookeeper/quota".to_owned();
    for component in path.split('/').skip(1) {
        quota_path.push('/');
        quota_path.push_str(component);
        match client.create(&quota_path, b"", &persistent()).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(error) => panic!("{quota_path}: {error:?}"),
        }
    }
    client.create(&format!("{quota_path}/zookeeper_limits"), limits.as_bytes(), &persistent()).await.unwrap();
    client.create(&format!("{quota_path}/zookeeper_stats"), b"count=0,bytes=0", &persistent()).await.unwrap();
}

async fn usage(client: &zk::Client, path: &str) -> String {
    let (data, _) = client.get_data(&format!("/zookeeper/quota{path}/zookeeper_stats")).await.unwrap();
    String::from_utf8(data).unwrap()
}

/// The value of one mntr line, if present.
fn mntr_value(server: &Server, key: &str) -> Option<String> {
    server.four_letter("mntr").lines().find_map(|line| line.strip_prefix(&format!("{key}\t")).map(str::to_owned))
}

fn server_log(server: &Server) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(&server.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|extension| extension == "log") {
            text.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        }
    }
    text
}

#[test]
fn a_hard_count_limit_refuses_creates_with_quota_exceeded() {
    // ZooKeeperServer.checkQuota with zookeeper.enforceQuota=true: a create that would
    // take the count (the quota's root included) past countHardLimit fails with
    // QuotaExceeded (-125) and counts in <namespace>_quota_exceeded_error_per_namespace;
    // the refused create changes nothing.
    let server = Server::start_with("enforceQuota=true");
    run(async {
        let client = connect(&server).await;
        client.create("/app", b"", &persistent()).await.unwrap();
        set_quota(&client, "/app", "count=-1,bytes=-1=;byteHardLimit=-1;countHardLimit=3").await;
        assert_eq!(usage(&client, "/app").await, "count=1,bytes=0");
        client.create("/app/a", b"", &persistent()).await.unwrap();
        client.create("/app/b", b"", &persistent()).await.unwrap();
        assert_eq!(client.create("/app/c", b"", &persistent()).await.unwrap_err(), zk::Error::QuotaExceeded);
        assert_eq!(client.check_stat("/app/c").await.unwrap(), None);
        assert_eq!(usage(&client, "/app").await, "count=3,bytes=0");
        // A deeper node counts against the same quota; a delete makes room again.
        assert_eq!(client.create("/app/a/x", b"", &persistent()).await.unwrap_err(), zk::Error::QuotaExceeded);
        client.delete("/app/b", None).await.unwrap();
        client.create("/app/a/x", b"", &persistent()).await.unwrap();
        // Paths outside the quota are not limited.
        client.create("/other", b"", &persistent()).await.unwrap();
    });
    assert_eq!(mntr_value(&server, "zk_app_quota_exceeded_error_per_namespace").as_deref(), Some("2"));
    assert_eq!(mntr_value(&server, "zk_app_quota_count_limit_per_namespace").as_deref(), Some("3"));
    assert_eq!(mntr_value(&server, "zk_app_quota_count_usage_per_namespace").as_deref(), Some("3"));
    assert!(server_log(&server).contains("Quota exceeded: /app [current count=4, hardCountLimit=3]"));
}

#[test]
fn a_hard_byte_limit_refuses_set_data_and_creates_in_a_multi() {
    // checkQuota on setData compares the new data's length with the node's current one
    // (null counting 0) and checks bytes only when that difference is not zero; inside
    // a multi the refused step fails the whole multi with QuotaExceeded.
    let server = Server::start_with("enforceQuota=true");
    run(async {
        let client = connect(&server).await;
        client.create("/b", b"12345", &persistent()).await.unwrap();
        set_quota(&client, "/b", "count=-1,bytes=-1=;byteHardLimit=8").await;
        assert_eq!(usage(&client, "/b").await, "count=1,bytes=5");
        client.set_data("/b", b"12345678", None).await.unwrap();
        assert_eq!(client.set_data("/b", b"123456789", None).await.unwrap_err(), zk::Error::QuotaExceeded);
        // Same length: no byte check, even past the limit's edge.
        client.set_data("/b", b"abcdefgh", None).await.unwrap();
        // An empty create adds count but no bytes, and this quota has no count limit.
        client.create("/b/empty", b"", &persistent()).await.unwrap();
        let mut writer = client.new_multi_writer();
        writer.add_create("/b/m1", b"", &persistent()).unwrap();
        writer.add_create("/b/m2", b"x", &persistent()).unwrap();
        let error = writer.commit().await.unwrap_err();
        assert!(
            matches!(error, zk::MultiWriteError::OperationFailed { index: 1, source: zk::Error::QuotaExceeded }),
            "{error:?}"
        );
        assert_eq!(client.check_stat("/b/m1").await.unwrap(), None);
        assert_eq!(usage(&client, "/b").await, "count=2,bytes=8");
    });
    assert_eq!(mntr_value(&server, "zk_b_quota_exceeded_error_per_namespace").as_deref(), Some("2"));
    assert_eq!(mntr_value(&server, "zk_b_quota_bytes_limit_per_namespace").as_deref(), Some("8"));
    assert_eq!(mntr_value(&server, "zk_b_quota_bytes_usage_per_namespace").as_deref(), Some("8"));
}

#[test]
fn soft_limits_are_logged_and_counted_but_let_writes_through() {
    // A soft limit (count, bytes) passed under enforcement is logged
    // ("Quota exceeded: /s [current count=3, softCountLimit=2]") and the write succeeds.
    let server = Server::start_with("enforceQuota=true");
    run(async {
        let client = connect(&server).await;
        client.create("/s", b"", &persistent()).await.unwrap();
        set_quota(&client, "/s", "count=2,bytes=-1").await;
        client.create("/s/a", b"", &persistent()).await.unwrap();
        client.create("/s/b", b"", &persistent()).await.unwrap();
        assert_eq!(usage(&client, "/s").await, "count=3,bytes=0");
    });
    assert!(server_log(&server).contains("Quota exceeded: /s [current count=3, softCountLimit=2]"));
    assert_eq!(mntr_value(&server, "ringkeeper_quota_soft_limit_exceeded_count").as_deref(), Some("1"));
    assert_eq!(mntr_value(&server, "zk_s_quota_exceeded_error_per_namespace"), None);
}

#[test]
fn without_enforcement_limits_are_not_checked_but_usage_is_kept() {
    // zookeeper.enforceQuota defaults to false: checkQuota returns at once, while
    // DataTree still updates zookeeper_stats on every create, delete and setData.
    let server = Server::start();
    run(async {
        let client = connect(&server).await;
        client.create("/n", b"ab", &persistent()).await.unwrap();
        set_quota(&client, "/n", "count=-1,bytes=-1=;countHardLimit=1").await;
        client.create("/n/a", b"xyz", &persistent()).await.unwrap();
        client.set_data("/n", b"", None).await.unwrap();
        assert_eq!(usage(&client, "/n").await, "count=2,bytes=3");
        client.delete("/n/a", None).await.unwrap();
        assert_eq!(usage(&client, "/n").await, "count=1,bytes=0");
        // The stats node's data changes in place: its version stays 0.
        let (_, stat) = client.get_data("/zookeeper/quota/n/zookeeper_stats").await.unwrap();
        assert_eq!(stat.version, 0);
    });
    assert_eq!(mntr_value(&server, "ringkeeper_quota_soft_limit_exceeded_count").as_deref(), Some("0"));
}

#[test]
fn quotas_and_usage_survive_a_restart_from_log_and_from_snapshot() {
    // The stats are nodes of the tree: they come back from the log and from snapshots,
    // and a snapshot load recounts every quota (DataTree.setupQuota); the quota is still
    // enforced after the restart.
    let mut server = Server::start_with("enforceQuota=true\nsnapCount=4");
    run(async {
        let client = connect(&server).await;
        client.create("/r", b"12", &persistent()).await.unwrap();
        set_quota(&client, "/r", "count=-1,bytes=-1=;countHardLimit=4").await;
        for name in ["a", "b"] {
            client.create(&format!("/r/{name}"), b"1", &persistent()).await.unwrap();
        }
    });
    server.crash_and_restart();
    run(async {
        let client = connect(&server).await;
        assert_eq!(usage(&client, "/r").await, "count=3,bytes=4");
        client.create("/r/c", b"", &persistent()).await.unwrap();
        assert_eq!(client.create("/r/d", b"", &persistent()).await.unwrap_err(), zk::Error::QuotaExceeded);
        // Deleting the limits node removes the quota: usage is no longer kept.
        client.delete("/zookeeper/quota/r/zookeeper_limits", None).await.unwrap();
        client.create("/r/d", b"", &persistent()).await.unwrap();
        assert_eq!(usage(&client, "/r").await, "count=4,bytes=4");
    });
    server.crash_and_restart();
    run(async {
        let client = connect(&server).await;
        client.create("/r/e", b"", &persistent()).await.unwrap();
        assert_eq!(usage(&client, "/r").await, "count=4,bytes=4");
    });
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    run_within(Duration::from_secs(30), test)
}
