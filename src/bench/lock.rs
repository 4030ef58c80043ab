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

use super::client::{open_acl, Buffers, Client, Incoming};
use super::session::SessionPlan;
use super::stats::{record, SessionStats};
use super::workload::ROOT;
use crate::proto::opcode;
use crate::proto::request::{CreateRequest, Request, WriteOp};
use crate::proto::response::ReplyBody;

/// The parent of the lock's sequential children.
pub const LOCK_PARENT: &str = "/ringkeeper-bench/lock";

/// The prefix of every child's name, before the server's ten-digit sequence number.
const CHILD_PREFIX: &str = "n-";

/// `NoNode`: the predecessor went away before exists could watch it.
const NO_NODE: i32 = -101;

/// `CreateMode.EPHEMERAL_SEQUENTIAL`.
const EPHEMERAL_SEQUENTIAL: i32 = 3;

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

/// The sequence number ending a sequential node's name (ten digits).
fn sequence_of(name: &str) -> Option<u64> {
    let name = name.as_bytes();
    let digits = name.get(name.len().checked_sub(10)?..)?;
    digits.iter().try_fold(0u64, |value, digit| digit.is_ascii_digit().then(|| value * 10 + u64::from(digit - b'0')))
}

pub async fn drive(plan: &SessionPlan, stats: &mut SessionStats) -> std::io::Result<()> {
    debug_assert!(LOCK_PARENT.starts_with(ROOT));
    let board = plan.board.lock();
    let mut client = Client::connect(plan.server, Buffers::new()).await?;
    let mut passed = 0u64;
    let create = Request::Write(WriteOp::Create(CreateRequest {
        opcode: opcode::CREATE,
        path: format!("{LOCK_PARENT}/{CHILD_PREFIX}"),
        data: Some(Vec::new()),
        acl: open_acl(),
        flags: EPHEMERAL_SEQUENTIAL,
        ttl_ms: -1,
    }));
    let list = Request::GetChildren { path: LOCK_PARENT.to_owned(), watch: false, with_stat: false };
    while Instant::now() < plan.schedule.stop_at {
        let requested = Instant::now();
        let measured = requested >= plan.schedule.measure_from;
        let count_error = |stats: &mut SessionStats, error: i32| {
            if measured && error != 0 {
                *stats.errors.entry(error).or_default() += 1;
            }
        };
        let own = match client.call(&create, &mut passed).await? {
            (0, Some(ReplyBody::Path(path))) => path,
            (0, body) => return Err(std::io::Error::other(format!("create answered {body:?}"))),
            (error, _) => {
                count_error(stats, error);
                continue;
            }
        };
        let own_sequence = sequence_of(&own).ok_or_else(|| std::io::Error::other("create returned no sequence"))?;
        // Wait until this node is the lowest child.
        loop {
            let children = match client.call(&list, &mut passed).await? {
                (0, Some(ReplyBody::Children(children))) => children,
                (0, body) => return Err(std::io::Error::other(format!("getChildren answered {body:?}"))),
                (error, _) => {
                    count_error(stats, error);
                    return Err(std::io::Error::other(format!("getChildren {LOCK_PARENT} failed with error {error}")));
                }
            };
            // The child just below ours, if any.
            let below = children
                .iter()
                .filter_map(|name| Some((sequence_of(name)?, name)))
                .filter(|(sequence, _)| *sequence < own_sequence)
                .max_by_key(|(sequence, _)| *sequence);
            let Some((_, name)) = below else { break };
            let predecessor = format!("{LOCK_PARENT}/{name}");
            let watch_predecessor = Request::Exists { path: predecessor.clone(), watch: true };
            match client.call(&watch_predecessor, &mut passed).await?.0 {
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
                match client.next(far_future()).await?.expect("no deadline") {
                    Incoming::Event(event) if event.path == predecessor => break,
                    Incoming::Event(_) => {}
                    Incoming::Reply { .. } => return Err(std::io::Error::other("a reply with no request in flight")),
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
        let (error, _) = client.call(&Request::Exists { path: own.clone(), watch: false }, &mut passed).await?;
        count_error(stats, error);
        board.leave();
        let (error, _) = client.call(&Request::Write(WriteOp::Delete { path: own, version: -1 }), &mut passed).await?;
        count_error(stats, error);
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
        assert_eq!(sequence_of("n-0000000042"), Some(42));
        assert_eq!(sequence_of("/ringkeeper-bench/lock/n-2147483647"), Some(2147483647));
        assert_eq!(sequence_of("n-42"), None);
        assert_eq!(sequence_of("n-00000000x2"), None);
    }
}
