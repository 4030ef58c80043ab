//! The watch workload: one writer and many watchers of one node. Session 0 keeps `depth`
//! setData requests in flight on `WATCHED`; every other session keeps a data watch on it,
//! re-arming it after each event with a getData as a real client does. Fan-out latency
//! runs from the send time of the setData that fired the event to the event's arrival.
//!
//! Which setData fired an event is known from versions: a watch armed by a getData that
//! read version `v` fires on the next change, the one that makes version `v + 1`. With a
//! single writer, the k-th setData makes version `v0 + k`, so the writer publishes each
//! send time by version on a board the watchers read.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::board::{instant_of, monotonic_ns};
use super::client::{Buffers, Client, Incoming};
use super::session::SessionPlan;
use super::stats::{record, SessionStats};
use super::workload::ROOT;
use crate::proto::request::{Request, WriteOp};
use crate::proto::response::ReplyBody;
use crate::proto::watch_event::EventType;

/// The node the writer changes and the watchers watch.
pub const WATCHED: &str = "/ringkeeper-bench/watched";

/// Send times kept, by version modulo this; a watcher further behind than this many
/// versions finds its slot overwritten and counts the event as unmatched.
const SLOTS: usize = 1 << 16;

/// How long watchers wait, after the writer stops, for the events they are owed.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The writer's send times by the version each setData makes, and its last version, on
/// the run's board (`board.rs`): zeroed memory is the empty state, so versions are stored
/// plus one (0 for none), and send times as CLOCK_MONOTONIC nanoseconds.
#[repr(C)]
pub struct WatchBoard {
    /// Per slot: the version whose send time it holds, plus one.
    versions: [AtomicI64; SLOTS],
    /// Per slot: the send time, CLOCK_MONOTONIC nanoseconds.
    sent_ns: [AtomicU64; SLOTS],
    /// The version of the writer's last setData plus one, once it has stopped; 0 before.
    final_version: AtomicI64,
}

impl WatchBoard {
    fn publish(&self, version: i64, sent: Instant) {
        assert!(version >= 0);
        let slot = version as usize % SLOTS;
        self.versions[slot].store(0, Ordering::Release);
        self.sent_ns[slot].store(monotonic_ns(sent), Ordering::Release);
        self.versions[slot].store(version + 1, Ordering::Release);
    }

    fn sent(&self, version: i64) -> Option<Instant> {
        let slot = version.max(0) as usize % SLOTS;
        if self.versions[slot].load(Ordering::Acquire) != version + 1 {
            return None;
        }
        let sent_ns = self.sent_ns[slot].load(Ordering::Acquire);
        // Overwritten while reading (a watcher SLOTS versions behind): no answer.
        if self.versions[slot].load(Ordering::Acquire) != version + 1 {
            return None;
        }
        Some(instant_of(sent_ns))
    }

    fn finish(&self, version: i64) {
        assert!(version >= 0);
        self.final_version.store(version + 1, Ordering::Release);
    }

    fn final_version(&self) -> Option<i64> {
        Some(self.final_version.load(Ordering::Acquire)).filter(|stored| *stored != 0).map(|stored| stored - 1)
    }
}

pub async fn drive(plan: &SessionPlan, stats: &mut SessionStats) -> std::io::Result<()> {
    let mut client = Client::connect(plan.server, Buffers::new()).await?;
    if plan.index == 0 {
        write(plan, stats, &mut client).await?;
    } else {
        watch(plan, stats, &mut client).await?;
    }
    client.close().await
}

/// The writer: `depth` setData requests in flight until the end of the run, each one's
/// send time published under the version it makes.
async fn write(plan: &SessionPlan, stats: &mut SessionStats, client: &mut Client) -> std::io::Result<()> {
    let board = plan.board.watch();
    let mut passed = 0;
    let version_start =
        match client.call(&Request::Exists { path: WATCHED.to_owned(), watch: false }, &mut passed).await? {
            (0, Some(ReplyBody::Stat(stat))) => i64::from(stat.version),
            (error, _) => return Err(std::io::Error::other(format!("exists {WATCHED} failed with error {error}"))),
        };
    let set =
        Request::Write(WriteOp::SetData { path: WATCHED.to_owned(), data: Some(plan.value.to_vec()), version: -1 });
    let mut version_sent = version_start;
    let mut version_answered = version_start;
    let depth = plan.depth.max(1) as i64;
    loop {
        let now = Instant::now();
        if now < plan.schedule.stop_at && version_sent - version_answered < depth {
            while version_sent - version_answered < depth {
                version_sent += 1;
                board.publish(version_sent, now);
                client.request(&set);
            }
            client.send().await?;
        } else if version_sent == version_answered {
            break;
        }
        let Incoming::Reply { header, body } = client.next(far_future()).await?.expect("no deadline") else {
            continue;
        };
        version_answered += 1;
        let now = Instant::now();
        let error = header.error;
        let version = match body {
            Some(ReplyBody::Stat(stat)) => Some(i64::from(stat.version)),
            _ => None,
        };
        if error == 0 && version != Some(version_answered) {
            // Another writer changed the node: versions no longer name our setData.
            stats.violations += 1;
        }
        if now >= plan.schedule.measure_from {
            stats.writes += 1;
            if error != 0 {
                *stats.errors.entry(error).or_default() += 1;
            }
        }
    }
    board.finish(version_sent);
    Ok(())
}

/// A watcher: getData with a watch, wait for the event, record its fan-out latency,
/// re-arm; after the writer stops, wait for the events still owed, then stop.
async fn watch(plan: &SessionPlan, stats: &mut SessionStats, client: &mut Client) -> std::io::Result<()> {
    let board = plan.board.watch();
    // The version the armed watch was set on; None while its getData is in flight.
    let mut armed: Option<i64> = None;
    let mut arms = 0u64;
    let mut arm_in_flight = true;
    arm(client).await?;
    loop {
        let now = Instant::now();
        if now >= plan.schedule.stop_at {
            if let (Some(version_final), Some(version)) = (board.final_version(), armed) {
                if version >= version_final {
                    break;
                }
            }
            if now >= plan.schedule.stop_at + DRAIN_TIMEOUT {
                if armed.is_some() {
                    stats.events_lost += 1;
                }
                break;
            }
        }
        let deadline =
            if now < plan.schedule.stop_at { plan.schedule.stop_at } else { now + Duration::from_millis(20) };
        let Some(incoming) = client.next(deadline).await? else { continue };
        let now = Instant::now();
        let (header, body) = match incoming {
            Incoming::Reply { header, body } => (header, body),
            Incoming::Event(event) => {
                let Some(version) = armed.take() else {
                    stats.violations += 1; // an event with no watch armed
                    continue;
                };
                if event.event_type != EventType::NodeDataChanged || event.path != WATCHED {
                    stats.violations += 1;
                }
                stats.events_delivered += 1;
                match board.sent(version + 1) {
                    Some(sent) if sent >= plan.schedule.measure_from => {
                        record(stats, plan.schedule.measure_from, now.duration_since(sent), now, 0);
                    }
                    Some(_) => {}
                    None => stats.events_unmatched += 1,
                }
                arm(client).await?;
                arm_in_flight = true;
                continue;
            }
        };
        assert!(arm_in_flight, "a reply with no getData in flight");
        arm_in_flight = false;
        let stat = match (header.error, body) {
            (0, Some(ReplyBody::DataStat(_, stat))) => stat,
            (error, _) => {
                if now >= plan.schedule.measure_from {
                    *stats.errors.entry(error).or_default() += 1;
                }
                return Err(std::io::Error::other(format!("getData {WATCHED} failed with error {error}")));
            }
        };
        armed = Some(i64::from(stat.version));
        arms += 1;
    }
    // Every watch but one armed on the writer's last version is owed exactly one event.
    let version_final = board.final_version().unwrap_or(i64::MAX);
    let last_armed_on_final = armed.is_some_and(|version| version >= version_final);
    stats.events_expected += arms - u64::from(last_armed_on_final);
    Ok(())
}

async fn arm(client: &mut Client) -> std::io::Result<()> {
    client.request(&Request::GetData { path: WATCHED.to_owned(), watch: true });
    client.send().await
}
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(24 * 3600)
}

/// The node the workload needs, made during set-up.
pub fn setup_paths() -> impl Iterator<Item = String> {
    debug_assert!(WATCHED.starts_with(ROOT));
    std::iter::once(WATCHED.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_times_are_found_by_version_until_overwritten() {
        let shared = crate::bench::board::Board::anonymous().expect("maps");
        let board = shared.watch();
        let sent = Instant::now();
        board.publish(7, sent);
        let found = board.sent(7).expect("version 7 was published");
        assert!(
            found.duration_since(sent) < Duration::from_micros(1)
                && sent.duration_since(found) < Duration::from_micros(1)
        );
        assert_eq!(board.sent(8), None);
        // A version SLOTS later takes the same slot: the older one is no longer known.
        board.publish(7 + SLOTS as i64, sent);
        assert_eq!(board.sent(7), None);
        assert!(board.sent(7 + SLOTS as i64).is_some());
        assert_eq!(board.final_version(), None);
        board.finish(9);
        assert_eq!(board.final_version(), Some(9));
    }
}
