//! ACLs and authentication through a real client (zookeeper-client): the auth packet with
//! the digest scheme, the `auth` ACL scheme, getACL and setACL with their versions, NoAuth,
//! and the super digest. Each test opens with the ZooKeeper behaviour it checks.

mod support;

use support::run_within;

use std::time::Duration;

use support::Server;
use zookeeper_client as zk;

async fn connect(server: &Server, auth: Option<&[u8]>) -> zk::Client {
    let connector = zk::Client::connector();
    let connector = match auth {
        Some(credential) => connector.with_auth("digest", credential),
        None => connector,
    };
    connector.connect(&server.address()).await.expect("connects")
}

#[test]
fn the_creator_of_an_auth_acl_node_holds_it_and_others_get_no_auth() {
    // "auth: uses the authenticated ids of the creator"; a digest id is
    // user:base64(sha1(user:password)); everyone else gets NoAuth.
    let server = Server::start();
    run(async {
        let alice = connect(&server, Some(b"alice:secret")).await;
        let stranger = connect(&server, None).await;
        let creator_only = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
        alice.create("/secret", b"s", &creator_only).await.unwrap();
        let (acl, _) = alice.get_acl("/secret").await.unwrap();
        assert_eq!(acl.len(), 1);
        assert_eq!((acl[0].scheme(), acl[0].id()), ("digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="));
        assert_eq!(alice.get_data("/secret").await.unwrap().0, b"s");
        assert_eq!(stranger.get_data("/secret").await.unwrap_err(), zk::Error::NoAuth);
        assert_eq!(stranger.set_data("/secret", b"x", None).await.unwrap_err(), zk::Error::NoAuth);
        // getACL needs READ or ADMIN, which a stranger lacks here.
        assert_eq!(stranger.get_acl("/secret").await.unwrap_err(), zk::Error::NoAuth);
    });
}

#[test]
fn set_acl_checks_admin_and_the_acl_version() {
    // setACL needs ADMIN and matches the aversion; it bumps the aversion.
    let server = Server::start();
    run(async {
        let alice = connect(&server, Some(b"alice:secret")).await;
        let stranger = connect(&server, None).await;
        alice.create("/doc", b"", &zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all())).await.unwrap();
        let read_only = [zk::Acl::new(zk::Permission::READ, zk::AuthId::anyone())];
        assert_eq!(stranger.set_acl("/doc", &read_only, None).await.unwrap_err(), zk::Error::NoAuth);
        assert_eq!(alice.set_acl("/doc", &read_only, Some(3)).await.unwrap_err(), zk::Error::BadVersion);
        let stat = alice.set_acl("/doc", &read_only, Some(0)).await.unwrap();
        assert_eq!(stat.aversion, 1);
        assert!(stranger.get_data("/doc").await.is_ok());
        assert_eq!(stranger.set_data("/doc", b"x", None).await.unwrap_err(), zk::Error::NoAuth);
    });
}

#[test]
fn the_super_digest_holds_every_permission() {
    // zookeeper.DigestAuthenticationProvider.superDigest: super:test digests to this.
    let server = Server::start_with("DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    run(async {
        let alice = connect(&server, Some(b"alice:secret")).await;
        alice.create("/vault", b"v", &zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all())).await.unwrap();
        let admin = connect(&server, Some(b"super:test")).await;
        assert_eq!(admin.get_data("/vault").await.unwrap().0, b"v");
        admin.delete("/vault", None).await.unwrap();
    });
}

#[test]
fn an_auth_acl_without_authentication_is_invalid() {
    // fixupACL: an `auth` entry with no authenticated id is InvalidACL.
    let server = Server::start();
    run(async {
        let stranger = connect(&server, None).await;
        let creator_only = zk::CreateMode::Persistent.with_acls(zk::Acls::creator_all());
        assert_eq!(stranger.create("/x", b"", &creator_only).await.unwrap_err(), zk::Error::InvalidAcl);
    });
}

fn run<F: std::future::Future<Output = ()>>(test: F) {
    run_within(Duration::from_secs(30), test)
}
