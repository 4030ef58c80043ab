//! One tree for every core: the memory a tree takes is the same whatever the number of
//! cores serving it. Checked on a real `ringkeeper serve` through its resident memory.

mod support;

use std::io::Write;

use support::{raw, Server};

const NODES: usize = 20_000;
const VALUE_BYTES: usize = 1024;
/// Creates in flight on the one connection that builds the tree.
const WINDOW: usize = 256;

/// Creates NODES znodes of VALUE_BYTES under one parent, pipelined, and waits for every
/// answer.
fn populate(server: &Server) {
    let (mut stream, _, _) = raw::handshake(&server.address());
    stream.write_all(&raw::create_request(1, "/tree")).unwrap();
    read_reply(&mut stream, 1);
    let value = vec![b'v'; VALUE_BYTES];
    let mut sent = 0;
    let mut answered = 0;
    while answered < NODES {
        while sent < NODES && sent - answered < WINDOW {
            let xid = 2 + sent as i32;
            stream.write_all(&raw::create_request_with_data(xid, &format!("/tree/node-{sent:06}"), &value)).unwrap();
            sent += 1;
        }
        read_reply(&mut stream, 2 + answered as i32);
        answered += 1;
    }
}

/// Reads the next reply and checks it answers `xid` with no error.
fn read_reply(stream: &mut std::net::TcpStream, xid: i32) {
    let reply = raw::read_frame(stream).expect("a reply");
    assert_eq!(i32::from_be_bytes(reply[0..4].try_into().unwrap()), xid);
    assert_eq!(i32::from_be_bytes(reply[12..16].try_into().unwrap()), 0, "create {xid} succeeds");
}

/// How much resident memory the tree added on a server with `cores` cores.
fn growth_bytes(cores: usize) -> u64 {
    let server = Server::start_on_cores("", Some(cores));
    let before = server.rss_bytes();
    populate(&server);
    server.rss_bytes().saturating_sub(before)
}

#[test]
fn the_memory_a_tree_takes_does_not_grow_with_the_number_of_cores() {
    // Every core reads one applied tree (versions shared between cores), and snapshots
    // are written from a version: a tree of 20,000 znodes of 1 KiB (about 24 MiB with
    // paths and metadata) adds about as much memory with two cores as with one. A copy
    // of the tree per core would add at least its 20 MB of data again with two. What two
    // cores may add is less than half of that: the branches copied for the version the
    // other core still reads, and the allocator's slack from freeing them (one core
    // applies in place and has neither).
    let tree_bytes = (NODES * VALUE_BYTES) as u64;
    let one_core = growth_bytes(1);
    let two_cores = growth_bytes(2);
    assert!(one_core >= tree_bytes, "the tree is resident: grew {one_core} bytes for {tree_bytes} bytes of data");
    assert!(
        two_cores <= one_core + tree_bytes / 2,
        "two cores took {two_cores} bytes for the tree against {one_core} with one core"
    );
}
