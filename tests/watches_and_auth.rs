//! ZooKeeper 3.8 behaviours of watches, ACLs and auth ids, checked over the raw protocol
//! against a real `ringkeeper serve`. Each test opens with the ZooKeeper behaviour it
//! reproduces; the expected answers are what Apache ZooKeeper 3.8.0 (Debian's
//! 3.8.0-11+deb12u2, which carries the CVE-2024-23944 fix) gave to the same requests
//! (tests/differential/probe_differences.py runs them on both servers).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::Server;

const CREATE: i32 = 1;
const DELETE: i32 = 2;
const EXISTS: i32 = 3;
const SET_DATA: i32 = 5;
const GET_ACL: i32 = 6;
const SET_ACL: i32 = 7;
const GET_CHILDREN: i32 = 8;
const CHECK_WATCHES: i32 = 17;
const REMOVE_WATCHES: i32 = 18;
const AUTH: i32 = 100;
const ADD_WATCH: i32 = 106;
const WHO_AM_I: i32 = 107;

const OK: i32 = 0;
const MARSHALLING_ERROR: i32 = -5;
const NO_WATCHER: i32 = -121;
const INVALID_ACL: i32 = -114;

const NODE_CREATED: i32 = 1;
const NODE_DELETED: i32 = 2;
const NODE_DATA_CHANGED: i32 = 3;
const NODE_CHILDREN_CHANGED: i32 = 4;

const CHILDREN: i32 = 1;
const DATA: i32 = 2;
const ANY: i32 = 3;

const PERSISTENT: i32 = 0;
const RECURSIVE: i32 = 1;

/// The digest id of alice:secret, user:base64(sha1(user:password)).
const ALICE: &str = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";

type Acl = (i32, &'static str, String);

fn world() -> Acl {
    (31, "world", "anyone".to_owned())
}

fn alice_only() -> Vec<Acl> {
    vec![(31, "digest", ALICE.to_owned())]
}

/// What a session received, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    Event(i32, String),
    Reply { xid: i32, err: i32 },
}

/// A jute request body.
#[derive(Default)]
struct Body(Vec<u8>);

impl Body {
    fn int(mut self, value: i32) -> Body {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    fn bool(mut self, value: bool) -> Body {
        self.0.push(u8::from(value));
        self
    }

    fn bytes(self, value: &[u8]) -> Body {
        let mut body = self.int(value.len() as i32);
        body.0.extend_from_slice(value);
        body
    }

    fn string(self, value: &str) -> Body {
        self.bytes(value.as_bytes())
    }

    fn acl(self, acl: &[Acl]) -> Body {
        let mut body = self.int(acl.len() as i32);
        for (perms, scheme, id) in acl {
            body = body.int(*perms).string(scheme).string(id);
        }
        body
    }
}

/// Reads jute fields from a reply body.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn int(&mut self) -> i32 {
        let (value, rest) = self.0.split_at(4);
        self.0 = rest;
        i32::from_be_bytes(value.try_into().unwrap())
    }

    fn string(&mut self) -> String {
        let length = self.int() as usize;
        let (value, rest) = self.0.split_at(length);
        self.0 = rest;
        String::from_utf8(value.to_vec()).unwrap()
    }
}

/// One session over a raw socket.
struct Session {
    stream: TcpStream,
    next_xid: i32,
    messages: Vec<Message>,
}

impl Session {
    fn open(server: &Server) -> Session {
        let mut stream = TcpStream::connect(server.address()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd.
        let connect = Body::default().int(0).int(0).int(0).int(10_000).int(0).int(0).bytes(&[0; 16]);
        send_frame(&mut stream, &connect.0);
        read_frame(&mut stream);
        Session { stream, next_xid: 1, messages: Vec::new() }
    }

    /// Sends a request and reads until its reply; returns the error code and body.
    fn call_with_xid(&mut self, xid: i32, opcode: i32, body: Body) -> (i32, Vec<u8>) {
        let frame = Body::default().int(xid).int(opcode);
        let mut bytes = frame.0;
        bytes.extend_from_slice(&body.0);
        send_frame(&mut self.stream, &bytes);
        loop {
            let frame = read_frame(&mut self.stream);
            let mut fields = Fields(&frame);
            let reply_xid = fields.int();
            fields.0 = &fields.0[8..]; // zxid
            let err = fields.int();
            if reply_xid == -1 {
                let event_type = fields.int();
                let _state = fields.int();
                self.messages.push(Message::Event(event_type, fields.string()));
                continue;
            }
            self.messages.push(Message::Reply { xid: reply_xid, err });
            if reply_xid == xid {
                return (err, fields.0.to_vec());
            }
        }
    }

    fn call(&mut self, opcode: i32, body: Body) -> (i32, Vec<u8>) {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.call_with_xid(xid, opcode, body)
    }

    fn auth(&mut self, credential: &str) -> i32 {
        self.auth_with("digest", credential)
    }

    fn auth_with(&mut self, scheme: &str, credential: &str) -> i32 {
        self.call_with_xid(-4, AUTH, Body::default().int(0).string(scheme).string(credential)).0
    }

    fn create(&mut self, path: &str, acl: &[Acl]) -> i32 {
        self.call(CREATE, Body::default().string(path).bytes(b"").acl(acl).int(0)).0
    }

    fn delete(&mut self, path: &str) -> i32 {
        self.call(DELETE, Body::default().string(path).int(-1)).0
    }

    fn exists(&mut self, path: &str, watch: bool) -> i32 {
        self.call(EXISTS, Body::default().string(path).bool(watch)).0
    }

    fn get_children(&mut self, path: &str, watch: bool) -> i32 {
        self.call(GET_CHILDREN, Body::default().string(path).bool(watch)).0
    }

    fn set_data(&mut self, path: &str, data: &[u8]) -> i32 {
        self.call(SET_DATA, Body::default().string(path).bytes(data).int(-1)).0
    }

    fn set_acl(&mut self, path: &str, acl: &[Acl]) -> i32 {
        self.call(SET_ACL, Body::default().string(path).acl(acl).int(-1)).0
    }

    fn get_acl(&mut self, path: &str) -> Vec<(i32, String, String)> {
        let (err, body) = self.call(GET_ACL, Body::default().string(path));
        assert_eq!(err, OK);
        let mut fields = Fields(&body);
        (0..fields.int()).map(|_| (fields.int(), fields.string(), fields.string())).collect()
    }

    fn add_watch(&mut self, path: &str, mode: i32) -> i32 {
        self.call(ADD_WATCH, Body::default().string(path).int(mode)).0
    }

    fn check_watches(&mut self, path: &str, watcher_type: i32) -> i32 {
        self.call(CHECK_WATCHES, Body::default().string(path).int(watcher_type)).0
    }

    fn remove_watches(&mut self, path: &str, watcher_type: i32) -> i32 {
        self.call(REMOVE_WATCHES, Body::default().string(path).int(watcher_type)).0
    }

    /// whoAmI: (scheme, user) pairs.
    fn who_am_i(&mut self) -> Vec<(String, String)> {
        let (err, body) = self.call(WHO_AM_I, Body::default());
        assert_eq!(err, OK);
        let mut fields = Fields(&body);
        (0..fields.int()).map(|_| (fields.string(), fields.string())).collect()
    }

    /// The events received since the last call, after a round trip: an event due to this
    /// session arrives before the reply to any later read.
    fn events(&mut self) -> Vec<(i32, String)> {
        assert_eq!(self.exists("/", false), OK);
        let events = self
            .messages
            .iter()
            .filter_map(|message| match message {
                Message::Event(event_type, path) => Some((*event_type, path.clone())),
                Message::Reply { .. } => None,
            })
            .collect();
        self.messages.clear();
        events
    }
}

fn send_frame(stream: &mut TcpStream, body: &[u8]) {
    let mut bytes = (body.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).unwrap();
}

fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut prefix = [0; 4];
    stream.read_exact(&mut prefix).unwrap();
    let mut body = vec![0; i32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).unwrap();
    body
}

fn event(event_type: i32, path: &str) -> (i32, String) {
    (event_type, path.to_owned())
}

fn server() -> Server {
    Server::start()
}

#[test]
fn who_am_i_and_auth_acls_list_ids_in_zookeepers_set_order() {
    // ZooKeeper keeps a connection's ids in a set backed by a ConcurrentHashMap
    // (ServerCnxn.authInfo): whoAmI lists them, and an `auth` ACL entry expands into them
    // (PrepRequestProcessor.fixupACL), in its iteration order. After digest auth
    // carol:wrong, bob:hunter2, alice:secret ZooKeeper 3.8.0 answers bob, alice, carol,
    // then the ip id.
    let server = server();
    let mut session = Session::open(&server);
    for credential in ["carol:wrong", "bob:hunter2", "alice:secret"] {
        assert_eq!(session.auth(credential), OK);
    }
    let users: Vec<String> = session.who_am_i().into_iter().map(|(_, user)| user).collect();
    assert_eq!(users, ["bob", "alice", "carol", "127.0.0.1"]);
    assert_eq!(session.create("/k", &[(31, "auth", String::new())]), OK);
    let ids: Vec<String> = session.get_acl("/k").into_iter().map(|(_, _, id)| id).collect();
    assert_eq!(
        ids,
        ["bob:1Yu1ryCXOIF7lyFzbmQ5J+MJOZc=", ALICE, "carol:39dx+DZRpmCIbI9DeSOOJnhRwQA="].map(str::to_owned)
    );
}

#[test]
fn auth_with_the_ip_scheme_succeeds_and_adds_nothing_new() {
    // IPAuthenticationProvider.handleAuthentication adds ip:<client address> (which the
    // connection holds from the start) and answers OK, whatever the credential.
    let server = server();
    let mut session = Session::open(&server);
    assert_eq!(session.auth_with("ip", "anything"), OK);
    assert_eq!(session.who_am_i(), [("ip".to_owned(), "127.0.0.1".to_owned())]);
    assert_eq!(session.create("/after-ip-auth", &[world()]), OK, "the connection stays open");
}

#[test]
fn skip_acl_grants_everything_without_adding_an_id() {
    // zookeeper.skipACL makes checkACL return at once; it gives the connection no id, so
    // whoAmI lists the ip id alone and an `auth` ACL still needs an authenticated id.
    let server = Server::start_with("skipACL=yes");
    let mut session = Session::open(&server);
    assert_eq!(session.who_am_i(), [("ip".to_owned(), "127.0.0.1".to_owned())]);
    assert_eq!(session.create("/locked", &[(0, "world", "anyone".to_owned())]), OK);
    assert_eq!(session.create("/locked/child", &[world()]), OK, "no CREATE permission, but skipACL");
    assert_eq!(session.create("/auth-acl", &[(31, "auth", String::new())]), INVALID_ACL);
}

#[test]
fn repeated_acl_entries_are_dropped_before_auth_expands() {
    // PrepRequestProcessor.fixupACL first drops repeated entries of the ACL as sent
    // (removeDuplicates, keeping the first), on create and setACL; entries that only
    // become equal once `auth` expands are kept.
    let server = server();
    let mut session = Session::open(&server);
    assert_eq!(session.create("/f", &[world(), world()]), OK);
    assert_eq!(session.get_acl("/f"), [(31, "world".to_owned(), "anyone".to_owned())]);
    let read_world = (1, "world", "anyone".to_owned());
    assert_eq!(session.set_acl("/f", &[read_world.clone(), world(), read_world]), OK);
    assert_eq!(
        session.get_acl("/f"),
        [(1, "world".to_owned(), "anyone".to_owned()), (31, "world".to_owned(), "anyone".to_owned())]
    );
    assert_eq!(session.auth("alice:secret"), OK);
    assert_eq!(session.create("/g", &[(31, "auth", String::new()), (31, "digest", ALICE.to_owned())]), OK);
    assert_eq!(
        session.get_acl("/g"),
        [(31, "digest".to_owned(), ALICE.to_owned()), (31, "digest".to_owned(), ALICE.to_owned())]
    );
}

#[test]
fn events_go_only_to_watchers_that_may_read_the_node() {
    // CVE-2024-23944 (in Debian's 3.8.0): ServerCnxn.process sends an event only if the
    // watcher may READ the node (the parent for NodeChildrenChanged) under the ACL it had
    // when the change was made, with the ids the watcher holds when it fires; a one-shot
    // watch is used up either way.
    let server = server();
    let mut watcher = Session::open(&server);
    let mut alice = Session::open(&server);
    assert_eq!(alice.auth("alice:secret"), OK);
    // An exists watch on a node created unreadable: no event, and the watch is gone.
    assert_eq!(watcher.exists("/g", true), -101);
    assert_eq!(alice.create("/g", &alice_only()), OK);
    assert_eq!(alice.set_acl("/g", &[world()]), OK);
    assert_eq!(alice.set_data("/g", b"x"), OK);
    assert_eq!(watcher.events(), []);
    // A child watch whose parent became unreadable.
    assert_eq!(alice.create("/h", &[world()]), OK);
    assert_eq!(watcher.get_children("/h", true), OK);
    assert_eq!(alice.set_acl("/h", &alice_only()), OK);
    assert_eq!(alice.create("/h/x", &[world()]), OK);
    assert_eq!(watcher.events(), []);
    // A recursive watch on / hears of readable nodes only.
    assert_eq!(watcher.add_watch("/", RECURSIVE), OK);
    assert_eq!(alice.create("/k", &alice_only()), OK);
    assert_eq!(alice.set_data("/k", b"1"), OK);
    assert_eq!(alice.delete("/k"), OK);
    assert_eq!(alice.create("/k2", &[world()]), OK);
    assert_eq!(alice.create("/k4", &[(2, "world", "anyone".to_owned())]), OK);
    assert_eq!(watcher.events(), [event(NODE_CREATED, "/k2")]);
    // Once the watcher holds alice's id, it hears of alice's nodes.
    assert_eq!(watcher.auth("alice:secret"), OK);
    assert_eq!(alice.create("/k3", &alice_only()), OK);
    assert_eq!(watcher.events(), [event(NODE_CREATED, "/k3")]);
}

#[test]
fn a_recursive_watch_sits_in_the_child_table_too() {
    // ZooKeeper 3.8's DataTree.addWatch puts a PERSISTENT_RECURSIVE watch in the data and
    // the child table: removeWatches(Children) finds it, and what is left in the child
    // table after removeWatches(Data) fires NodeDeleted for the subtree and nothing else.
    let server = server();
    let mut watcher = Session::open(&server);
    let mut writer = Session::open(&server);
    assert_eq!(watcher.add_watch("/c", RECURSIVE), OK);
    assert_eq!(watcher.remove_watches("/c", CHILDREN), OK);
    assert_eq!(watcher.remove_watches("/c", CHILDREN), NO_WATCHER);
    assert_eq!(watcher.remove_watches("/c", DATA), OK);
    assert_eq!(watcher.events(), []);

    assert_eq!(writer.create("/o", &[world()]), OK);
    assert_eq!(writer.create("/o/y", &[world()]), OK);
    assert_eq!(watcher.add_watch("/o", RECURSIVE), OK);
    assert_eq!(watcher.remove_watches("/o", DATA), OK);
    assert_eq!(writer.set_data("/o", b"1"), OK);
    assert_eq!(writer.create("/o/x", &[world()]), OK);
    assert_eq!(writer.set_data("/o/y", b"1"), OK);
    for path in ["/o/y", "/o/x", "/o"] {
        assert_eq!(writer.delete(path), OK);
    }
    assert_eq!(watcher.events(), [event(NODE_DELETED, "/o/y"), event(NODE_DELETED, "/o/x"), event(NODE_DELETED, "/o")]);
}

#[test]
fn remove_watches_takes_a_persistent_watch_out_of_one_table() {
    // DataTree.removeWatch with Data (or Children) removes the watch from that table
    // only: a PERSISTENT watch left in the child table still fires NodeChildrenChanged.
    let server = server();
    let mut watcher = Session::open(&server);
    let mut writer = Session::open(&server);
    assert_eq!(writer.create("/j", &[world()]), OK);
    assert_eq!(watcher.add_watch("/j", PERSISTENT), OK);
    assert_eq!(watcher.remove_watches("/j", DATA), OK);
    assert_eq!(writer.create("/j/x", &[world()]), OK);
    assert_eq!(writer.set_data("/j", b"1"), OK);
    assert_eq!(watcher.events(), [event(NODE_CHILDREN_CHANGED, "/j")]);
}

#[test]
fn each_table_holds_one_watch_mode_per_connection_and_path() {
    // WatcherModeManager keeps one mode per (watcher, path) in each table, and the latest
    // watch sets it: RECURSIVE replaces PERSISTENT (no more NodeChildrenChanged), and an
    // exists watch turns a PERSISTENT watch into a one-shot one in the data table only.
    let server = server();
    let mut watcher = Session::open(&server);
    let mut writer = Session::open(&server);
    assert_eq!(writer.create("/h", &[world()]), OK);
    assert_eq!(watcher.add_watch("/h", PERSISTENT), OK);
    assert_eq!(watcher.add_watch("/h", RECURSIVE), OK);
    assert_eq!(writer.create("/h/x", &[world()]), OK);
    assert_eq!(watcher.events(), [event(NODE_CREATED, "/h/x")]);

    assert_eq!(writer.create("/m", &[world()]), OK);
    assert_eq!(watcher.add_watch("/m", PERSISTENT), OK);
    assert_eq!(watcher.exists("/m", true), OK);
    assert_eq!(writer.set_data("/m", b"1"), OK);
    assert_eq!(writer.set_data("/m", b"2"), OK);
    assert_eq!(writer.create("/m/x", &[world()]), OK);
    assert_eq!(watcher.events(), [event(NODE_DATA_CHANGED, "/m"), event(NODE_CHILDREN_CHANGED, "/m")]);
}

#[test]
fn check_watches_answers_for_any_connection() {
    // WatchManager.containsWatcher looks at the path's watcher set, whoever holds it: a
    // session gets OK for another session's watch. Its PathParentIterator fails
    // (MarshallingError) on a part with no '/' left: "a" always, "a/b" once a recursive
    // watch makes it walk the parents; "" it never looks up.
    let server = server();
    let mut holder = Session::open(&server);
    let mut other = Session::open(&server);
    assert_eq!(holder.exists("/d", true), -101);
    assert_eq!(other.check_watches("/d", DATA), OK);
    assert_eq!(other.check_watches("/d", ANY), OK);
    assert_eq!(other.check_watches("/d", CHILDREN), NO_WATCHER);
    assert_eq!(other.check_watches("a/b", ANY), NO_WATCHER);
    assert_eq!(other.check_watches("a", ANY), MARSHALLING_ERROR);
    assert_eq!(holder.add_watch("/r", RECURSIVE), OK);
    assert_eq!(other.check_watches("", ANY), NO_WATCHER);
    assert_eq!(other.check_watches("a/b", ANY), MARSHALLING_ERROR);
    assert_eq!(other.check_watches("/r/x", DATA), NO_WATCHER);
    assert_eq!(other.check_watches("/r", CHILDREN), OK);
}

#[test]
fn watch_words_count_the_data_table_with_persistent_and_recursive_watches() {
    // wchs, wchc and wchp report ZooKeeper's data-watch table, which holds persistent and
    // recursive watches too; a connection stays listed until it closes, even once its
    // watches fired (WatchManager.watch2Paths). mntr's zk_watch_count adds the child
    // table. ZooKeeper 3.8.0 answers these figures to the same requests.
    let server = server();
    let mut first = Session::open(&server);
    let mut second = Session::open(&server);
    assert_eq!(first.add_watch("/a", PERSISTENT), OK);
    assert_eq!(first.add_watch("/b", RECURSIVE), OK);
    assert_eq!(first.exists("/c", true), -101);
    assert_eq!(first.get_children("/", true), OK);
    assert_eq!(second.exists("/d", true), -101);
    assert_eq!(server.four_letter("wchs"), "2 connections watching 4 paths\nTotal watches:4\n");
    assert!(server.four_letter("mntr").contains("zk_watch_count\t7\n"));
    assert_eq!(second.create("/d", &[world()]), OK);
    assert_eq!(server.four_letter("wchs"), "2 connections watching 3 paths\nTotal watches:3\n");
    assert!(server.four_letter("mntr").contains("zk_watch_count\t5\n"));
    let wchc = server.four_letter("wchc");
    assert!(wchc.ends_with("\n\n"), "{wchc}");
    let listed: Vec<&str> = wchc.lines().filter(|line| !line.is_empty()).collect();
    assert_eq!(listed.len(), 5, "{wchc}");
    assert_eq!(listed.iter().filter(|line| line.starts_with('\t')).count(), 3, "{wchc}");
    let wchp = server.four_letter("wchp");
    let paths: Vec<&str> = wchp.lines().filter(|line| line.starts_with('/')).collect();
    assert_eq!(paths, ["/a", "/b", "/c"]);
    assert_eq!(first.remove_watches("/a", DATA), OK);
    assert_eq!(server.four_letter("wchs"), "2 connections watching 2 paths\nTotal watches:2\n");
    assert!(server.four_letter("mntr").contains("zk_watch_count\t4\n"));
}

#[test]
fn the_auth_reply_comes_after_the_events_already_due() {
    // ZooKeeper answers an auth packet at once on the connection's thread, after the
    // events of every write already committed: once another session has its write's
    // reply, the watcher's auth reply never overtakes that write's event. (A race:
    // checked over many rounds, on a server with a core per CPU.)
    let server = server();
    let mut watcher = Session::open(&server);
    let mut writer = Session::open(&server);
    assert_eq!(watcher.add_watch("/", PERSISTENT), OK);
    for round in 0..200 {
        watcher.messages.clear();
        assert_eq!(writer.create(&format!("/r{round}"), &[world()]), OK);
        assert_eq!(watcher.auth("u:p"), OK);
        assert_eq!(
            watcher.messages,
            [Message::Event(NODE_CHILDREN_CHANGED, "/".to_owned()), Message::Reply { xid: -4, err: OK }],
            "round {round}"
        );
    }
}

#[test]
fn a_read_never_shows_a_change_before_the_event_of_its_watch() {
    // "A client will see a watch event for a znode before it sees the new data for which
    // the watch was set" (Programmer's Guide). Every core reads one shared tree, applied
    // once per committed batch on core 0: a read queued behind the session's own write
    // must not see a later record of the same batch whose event is still to come. Each
    // round the watcher arms its watch, then sends a write and a read, and another
    // session changes the watched node right after; a third session keeps the log busy,
    // so the write and the change are mostly committed in one batch, in that order (one
    // core: requests are ordered as they arrive).
    const GET_DATA: i32 = 4;
    const ROUNDS: i32 = 300;
    let server = Server::start_on_cores("", Some(1));
    let mut watcher = Session::open(&server);
    let mut writer = Session::open(&server);
    assert_eq!(watcher.create("/watched", &[world()]), OK);
    assert_eq!(watcher.create("/own", &[world()]), OK);
    assert_eq!(watcher.create("/noise", &[world()]), OK);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let changer = {
        let mut changer = Session::open(&server);
        let done = done.clone();
        std::thread::spawn(move || {
            const IN_FLIGHT: i32 = 32;
            let set = |xid: i32| {
                let mut bytes = Body::default().int(xid).int(SET_DATA).0;
                bytes.extend_from_slice(&Body::default().string("/noise").bytes(b"n").int(-1).0);
                bytes
            };
            for xid in 1..=IN_FLIGHT {
                send_frame(&mut changer.stream, &set(xid));
            }
            let mut xid = IN_FLIGHT;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                read_frame(&mut changer.stream);
                xid += 1;
                send_frame(&mut changer.stream, &set(xid));
            }
        })
    };
    // A request with its length prefix, ready for the socket.
    let framed = |xid: i32, opcode: i32, body: Body| {
        let mut bytes = Body::default().int(xid).int(opcode).0;
        bytes.extend_from_slice(&body.0);
        let mut frame = (bytes.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&bytes);
        frame
    };
    for round in 1..=ROUNDS {
        let (err, body) = watcher.call(GET_DATA, Body::default().string("/watched").bool(true));
        assert_eq!(err, OK);
        let armed = Fields(&body).string();
        let stale_events = watcher.messages.iter().filter(|message| matches!(message, Message::Event(..))).count();
        assert_eq!(stale_events, 0, "round {round}: one event per armed watch");
        watcher.messages.clear();
        // The write and the read leave in one segment, so the read is queued behind the
        // write before the write commits.
        let own_write = framed(1_000 + round, SET_DATA, Body::default().string("/own").bytes(b"x").int(-1));
        let read = framed(2_000 + round, GET_DATA, Body::default().string("/watched").bool(false));
        watcher.stream.write_all(&[own_write, read].concat()).unwrap();
        let change = Body::default().string("/watched").bytes(round.to_string().as_bytes()).int(-1);
        writer.stream.write_all(&framed(3_000 + round, SET_DATA, change)).unwrap();
        let mut event_seen = false;
        loop {
            let frame = read_frame(&mut watcher.stream);
            let mut fields = Fields(&frame);
            let xid = fields.int();
            fields.0 = &fields.0[8..]; // zxid
            assert_eq!(fields.int(), OK);
            match xid {
                -1 => {
                    assert_eq!(
                        (fields.int(), fields.int(), fields.string()),
                        (NODE_DATA_CHANGED, 3, "/watched".into())
                    );
                    event_seen = true;
                }
                xid if xid == 2_000 + round => {
                    let changed = fields.string() != armed;
                    assert!(event_seen || !changed, "round {round}: the read showed a change before its event");
                    break;
                }
                xid => assert_eq!(xid, 1_000 + round),
            }
        }
        assert_eq!(Fields(&read_frame(&mut writer.stream)).int(), 3_000 + round);
        while !event_seen {
            let frame = read_frame(&mut watcher.stream);
            event_seen = Fields(&frame).int() == -1;
        }
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    changer.join().unwrap();
}
