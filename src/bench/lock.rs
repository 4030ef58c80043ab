//! The lock workload: every session contends for one lock with ZooKeeper's recipe (the
//! programmer's guide, "Locks"): create an EPHEMERAL_SEQUENTIAL child of `LOCK_PARENT`,
//! list the children; the lowest sequence number holds the lock; any other waits for the
//! deletion of its predecessor (exists with a watch) and lists again; release is delete.
//! Wait latency runs from the create's send to the acquisition.
//!
//! Mutual exclusion is checked, not assumed: every holder increments a count shared by
//! all sessions of the run (across generator threads and processes) on acquiring and decrements it
//! before releasing (holding it over one round trip in between); finding it non-zero on
//! acquiring is a violation.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use super::client::{notification, read_bytes, reply_body, reply_error, write_open_acl, Buffers, Client};
use super::session::SessionPlan;
use super::stats::{record, SessionStats};
use super::workload::ROOT;
use crate::proto::opcode;

/// The parent of the lock's sequential children.
pub const LOCK_PARENT: &str = "/ringkeeper-bench/lock";

/// The prefix of every child's name, before the server's ten-digit sequence number.
const CHILD_PREFIX: &str = "n-";

/// `NoNode`: the predecessor went away before exists could watch it.
const NO_NODE: i32 = -101;

/// Names and paths are kept in stack buffers of this size.
const PATH_BYTES_MAX: usize = 128;

/// The holders of the lock right now, counted by the holders themselves, on the run's
/// board (`board.rs`), so holders in different generator processes count too.
#[repr(C)]
pub struct LockBoard {
    holders: AtomicU32,
}

impl LockBoard {
    /// Called on acquiring; returns false if someone else holds the lock too.
    fn enter(&self) -> bool {
        self.holders.fetch_add(1, Ordering::AcqRel) == 0
    }

    /// Called before releasing.
    fn leave(&self) {
        let before = self.holders.fetch_sub(1, Ordering::AcqRel);
        assert!(before >= 1, "leaving a lock nobody holds");
    }
}

/// A path or name in a stack buffer.
struct Name {
    bytes: [u8; PATH_BYTES_MAX],
    length: usize,
}

impl Name {
    fn new() -> Name {
        Name { bytes: [0; PATH_BYTES_MAX], length: 0 }
    }

    fn set(&mut self, parts: &[&[u8]]) -> std::io::Result<()> {
        let length: usize = parts.iter().map(|part| part.len()).sum();
        if length > PATH_BYTES_MAX {
            return Err(std::io::Error::other("lock node path too long"));
        }
        self.length = 0;
        for part in parts {
            self.bytes[self.length..self.length + part.len()].copy_from_slice(part);
            self.length += part.len();
        }
        Ok(())
    }

    fn get(&self) -> &[u8] {
        &self.bytes[..self.length]
    }
}

/// The sequence number ending a sequential node's name (ten digits).
fn sequence_of(name: &[u8]) -> Option<u64> {
    let digits = name.get(name.len().checked_sub(10)?..)?;
    digits.iter().try_fold(0u64, |value, digit| digit.is_ascii_digit().then(|| value * 10 + u64::from(digit - b'0')))
}

pub async fn drive(plan: &SessionPlan, stats: &mut SessionStats) -> std::io::Result<()> {
    debug_assert!(LOCK_PARENT.starts_with(ROOT));
    let board = plan.board.lock();
    let mut client = Client::connect(plan.server, Buffers::new()).await?;
    let mut passed = 0u64;
    let mut own = Name::new();
    let mut predecessor = Name::new();
    let mut child_prefix = Name::new();
    child_prefix.set(&[LOCK_PARENT.as_bytes(), b"/", CHILD_PREFIX.as_bytes()])?;
    while Instant::now() < plan.schedule.stop_at {
        let requested = Instant::now();
        let measured = requested >= plan.schedule.measure_from;
        let count_error = |stats: &mut SessionStats, error: i32| {
            if measured && error != 0 {
                *stats.errors.entry(error).or_default() += 1;
            }
        };
        let xid = client.request(opcode::CREATE, |writer| {
            writer.write_bytes(child_prefix.get());
            writer.write_buffer(Some(b""));
            write_open_acl(writer);
            writer.write_i32(3); // EPHEMERAL_SEQUENTIAL
        });
        let reply = client.call(xid, &mut passed).await?;
        if reply_error(reply) != 0 {
            count_error(stats, reply_error(reply));
            continue;
        }
        let mut offset = 0;
        own.set(&[read_bytes(reply_body(reply), &mut offset)])?;
        let own_sequence =
            sequence_of(own.get()).ok_or_else(|| std::io::Error::other("create returned no sequence"))?;
        // Wait until this node is the lowest child.
        loop {
            let xid = client.request(opcode::GET_CHILDREN, |writer| {
                writer.write_str(LOCK_PARENT);
                writer.write_bool(false);
            });
            let reply = client.call(xid, &mut passed).await?;
            if reply_error(reply) != 0 {
                let error = reply_error(reply);
                count_error(stats, error);
                return Err(std::io::Error::other(format!("getChildren {LOCK_PARENT} failed with error {error}")));
            }
            let body = reply_body(reply);
            let count = i32::from_be_bytes(body[0..4].try_into().expect("4 bytes")).max(0);
            let mut offset = 4;
            // The child just below ours, if any.
            let mut below: Option<u64> = None;
            for _ in 0..count {
                let name = read_bytes(body, &mut offset);
                let Some(sequence) = sequence_of(name) else { continue };
                if sequence < own_sequence && below.is_none_or(|best| sequence > best) {
                    below = Some(sequence);
                    predecessor.set(&[LOCK_PARENT.as_bytes(), b"/", name])?;
                }
            }
            if below.is_none() {
                break;
            }
            let xid = client.request(opcode::EXISTS, |writer| {
                writer.write_bytes(predecessor.get());
                writer.write_bool(true);
            });
            let reply = client.call(xid, &mut passed).await?;
            match reply_error(reply) {
                NO_NODE => continue,
                0 => {}
                error => {
                    count_error(stats, error);
                    return Err(std::io::Error::other(format!("exists failed with error {error}")));
                }
            }
            // Wait for the predecessor's deletion; the reply came first, so the event
            // has not been passed over.
            loop {
                let frame = client.next_frame(far_future()).await?.expect("no deadline");
                if super::client::reply_xid(frame) != opcode::XID_NOTIFICATION {
                    return Err(std::io::Error::other("a reply with no request in flight"));
                }
                let (_event_type, path) = notification(frame);
                if path == predecessor.get() {
                    break;
                }
            }
        }
        let acquired = Instant::now();
        if !board.enter() {
            stats.violations += 1;
        }
        if measured {
            record(stats, plan.schedule.measure_from, acquired.duration_since(requested), acquired, 0);
        }
        // Hold the lock over one round trip (the holder's "work": checking its node is
        // still there), so another session on this thread that wrongly believed it held
        // the lock too would run meanwhile and be caught.
        let xid = client.request(opcode::EXISTS, |writer| {
            writer.write_bytes(own.get());
            writer.write_bool(false);
        });
        let reply = client.call(xid, &mut passed).await?;
        count_error(stats, reply_error(reply));
        board.leave();
        let xid = client.request(opcode::DELETE, |writer| {
            writer.write_bytes(own.get());
            writer.write_i32(-1);
        });
        let reply = client.call(xid, &mut passed).await?;
        count_error(stats, reply_error(reply));
    }
    client.close().await
}

fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(24 * 3600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_the_last_ten_digits() {
        assert_eq!(sequence_of(b"n-0000000042"), Some(42));
        assert_eq!(sequence_of(b"/ringkeeper-bench/lock/n-2147483647"), Some(2147483647));
        assert_eq!(sequence_of(b"n-42"), None);
        assert_eq!(sequence_of(b"n-00000000x2"), None);
    }
}
