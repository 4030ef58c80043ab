//! `ringkeeper bench`: a load generator with its own native-protocol client, for
//! Ringkeeper and any server that speaks the ZooKeeper protocol. Closed loop: N sessions
//! x D requests in flight, spread over the servers given and over generator threads;
//! open loop (`--rate`): requests on a fixed schedule; recipes (watch, lock, churn):
//! sessions that follow a client recipe one request at a time (`client.rs`).

pub mod churn;
pub mod client;
pub mod lock;
pub mod report;
pub mod session;
pub mod setup;
pub mod watch;
pub mod workload;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

use report::{process_cpu_seconds, Report};
use session::{run_session, Schedule, SessionPlan, SessionStats, Shared};
use workload::Workload;

#[derive(Debug, Clone)]
pub struct Options {
    pub servers: Vec<SocketAddr>,
    pub workload: Workload,
    pub sessions: usize,
    pub depth: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub value_size: usize,
    /// Keys read and written; for delete, nodes per session.
    pub keys: u64,
    /// Generator threads (glommio executors).
    pub threads: usize,
    /// The server process, for its CPU time per operation.
    pub server_pid: Option<u32>,
    /// Open loop: requests per second in all, spread evenly over the sessions.
    pub rate_per_s: Option<f64>,
}

pub fn run(options: &Options) -> Result<Report, String> {
    assert!(!options.servers.is_empty() && options.sessions > 0 && options.depth > 0 && options.threads > 0);
    if options.workload == Workload::Watch && options.sessions < 2 {
        return Err("the watch workload needs at least 2 sessions (one writer, the rest watchers)".into());
    }
    if options.workload.is_recipe() && options.rate_per_s.is_some() {
        return Err(format!("--rate does not apply to the {} workload", options.workload.name()));
    }
    let shared = Arc::new(Shared { watch: watch::WatchBoard::new(), lock: lock::LockBoard::new() });
    let value = vec![b'v'; options.value_size];
    for server in &options.servers {
        setup::prepare(*server, options.workload, options.keys, options.sessions, &value)
            .map_err(|error| format!("set-up on {server}: {error}"))?;
    }
    let started = Instant::now() + Duration::from_millis(200);
    let schedule =
        Schedule { measure_from: started + options.warmup, stop_at: started + options.warmup + options.duration };
    let mut handles = Vec::new();
    for thread in 0..options.threads {
        let options = options.clone();
        let value = value.clone();
        let shared = shared.clone();
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("bench-{thread}"))
            .spawn(move || async move {
                let value = Rc::new(value);
                let mut tasks = Vec::new();
                for index in (thread..options.sessions).step_by(options.threads) {
                    let plan = SessionPlan {
                        server: options.servers[index % options.servers.len()],
                        index,
                        workload: options.workload,
                        depth: options.depth,
                        keys: options.keys,
                        value: value.clone(),
                        schedule,
                        rate_per_s: options.rate_per_s.map(|rate| rate / options.sessions as f64),
                        shared: shared.clone(),
                    };
                    tasks.push(glommio::spawn_local(run_session(plan)));
                }
                let mut merged = SessionStats::new();
                for task in tasks {
                    merged.merge(&task.await);
                }
                merged.timeline.truncate(options.duration.as_secs().max(1) as usize);
                merged
            })
            .map_err(|error| format!("cannot start a generator thread: {error}"))?;
        handles.push(handle);
    }
    // CPU is sampled over the measured window only.
    sleep_until(schedule.measure_from);
    let generator_before = process_cpu_seconds(None);
    let server_before = options.server_pid.map(|pid| process_cpu_seconds(Some(pid)));
    sleep_until(schedule.stop_at);
    let generator_after = process_cpu_seconds(None);
    let server_after = options.server_pid.map(|pid| process_cpu_seconds(Some(pid)));
    let mut stats = SessionStats::new();
    for handle in handles {
        stats.merge(&handle.join().map_err(|error| format!("generator thread failed: {error}"))?);
    }
    if let Some(failure) = &stats.failure {
        return Err(failure.clone());
    }
    let server_cpu = server_before.zip(server_after).map(|(before, after)| after - before);
    Ok(Report::new(options, &stats, generator_after - generator_before, server_cpu))
}

fn sleep_until(instant: Instant) {
    let now = Instant::now();
    if instant > now {
        std::thread::sleep(instant - now);
    }
}
