//! `ringkeeper bench`: a load generator with its own native-protocol client, for
//! Ringkeeper and any server that speaks the ZooKeeper protocol. Closed loop: N sessions
//! x D requests in flight, spread over the servers given and over generator threads;
//! open loop (`--rate`): requests on a fixed schedule; recipes (watch, lock, churn):
//! sessions that follow a client recipe one request at a time (`client.rs`).

pub(crate) mod board;
pub(crate) mod churn;
pub(crate) mod client;
pub mod html;
pub(crate) mod lock;
pub(crate) mod plot;
pub(crate) mod progress;
pub mod report;
pub(crate) mod session;
pub(crate) mod setup;
pub(crate) mod stats;
mod stream;
pub(crate) mod watch;
pub mod workload;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::{LocalExecutorBuilder, Placement};

use board::{instant_of, monotonic_ns, Board};
use progress::ProgressBar;
use report::{machine_cpu_ticks, process_cpu_seconds, CpuUse, Report};
use session::{run_session, Schedule, SessionPlan};
use stats::SessionStats;
use workload::Workload;

/// How long a run waits before its schedule starts, for its threads (or generator
/// processes) to start and connect.
const LEAD_THREADS: Duration = Duration::from_millis(200);
const LEAD_PROCESSES: Duration = Duration::from_millis(1500);

/// How often the progress bar is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

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
    /// Generator threads (glommio executors) per generator process.
    pub threads: usize,
    /// Generator processes the sessions are split over.
    pub procs: usize,
    /// The server processes (one, or each of an ensemble), for their CPU time per
    /// operation.
    pub server_pids: Vec<u32>,
    /// Open loop: requests per second in all, spread evenly over the sessions.
    pub rate_per_s: Option<f64>,
    /// What the run is called in reports.
    pub label: Option<String>,
    /// Draw a progress bar on standard error.
    pub progress: bool,
    /// Connect over TLS with this client certificate and trust store (the servers are
    /// then secure client ports).
    pub tls: Option<crate::tls::TlsSettings>,
}

/// A generator process's place in a `--procs` run, given by its parent.
#[derive(Debug, Clone)]
pub struct ProcessRole {
    pub index: usize,
    pub board: PathBuf,
    /// When the schedule starts (warm-up), CLOCK_MONOTONIC nanoseconds.
    pub start_ns: u64,
}

/// Runs the benchmark: set-up, the load from this process's threads or from `procs`
/// generator processes, and the report.
pub fn run(options: &Options) -> Result<Report, String> {
    validate(options)?;
    let board = if options.procs > 1 { Board::create_shared() } else { Board::anonymous() }
        .map_err(|error| format!("cannot map the bench board: {error}"))?;
    let board = Arc::new(board);
    let value = vec![b'v'; options.value_size];
    let tls = stream::client_config(options.tls.as_ref())?;
    for server in &options.servers {
        setup::prepare(*server, tls.as_ref(), options.workload, options.keys, options.sessions, &value)
            .map_err(|error| format!("set-up on {server}: {error}"))?;
    }
    let lead = if options.procs > 1 { LEAD_PROCESSES } else { LEAD_THREADS };
    let schedule = schedule_from(Instant::now() + lead, options);
    let generators = if options.procs > 1 {
        let role = |index| ProcessRole {
            index,
            board: board.path().expect("a shared board has a file").to_path_buf(),
            start_ns: monotonic_ns(schedule.start),
        };
        Generators::Processes(spawn_processes(options, role)?)
    } else {
        Generators::Threads(spawn_threads(options, 0, &board, schedule)?)
    };
    let window = measure_window(options, &board, schedule);
    let (stats, mut generator_cpu_s) = generators.collect(options)?;
    if let Some(failure) = &stats.failure {
        return Err(failure.clone());
    }
    if options.procs == 1 {
        generator_cpu_s = vec![window.own_cpu_s];
    }
    let cpu = CpuUse {
        generator_s: generator_cpu_s,
        server_s: window.server_cpu_s,
        machine_busy_pct: window.machine_busy_pct,
    };
    Ok(Report::new(options, &stats, &cpu))
}

/// A generator process of a `--procs` run: its share of the sessions on the parent's
/// board and schedule; prints its CPU time and stats for the parent on standard output.
pub fn run_process(options: &Options, role: &ProcessRole) -> Result<String, String> {
    validate(options)?;
    assert!(role.index < options.procs);
    let board = Arc::new(
        Board::open_shared(&role.board).map_err(|error| format!("cannot open {}: {error}", role.board.display()))?,
    );
    let schedule = schedule_from(instant_of(role.start_ns), options);
    let threads = spawn_threads(options, role.index, &board, schedule)?;
    sleep_until(schedule.measure_from);
    let cpu_before = process_cpu_seconds(None);
    sleep_until(schedule.stop_at);
    let cpu_s = process_cpu_seconds(None) - cpu_before;
    let stats = join_threads(threads, options)?;
    Ok(format!("generator_cpu_s {cpu_s}\n{}", stats.encode()))
}

fn validate(options: &Options) -> Result<(), String> {
    assert!(!options.servers.is_empty() && options.sessions > 0 && options.depth > 0);
    assert!(options.threads > 0 && options.procs > 0);
    if options.workload == Workload::Watch && options.sessions < 2 {
        return Err("the watch workload needs at least 2 sessions (one writer, the rest watchers)".into());
    }
    if options.workload.is_recipe() && options.rate_per_s.is_some() {
        return Err(format!("--rate does not apply to the {} workload", options.workload.name()));
    }
    if options.workload.is_recipe() && options.tls.is_some() {
        return Err(format!("TLS is measured with the request workloads, not {}", options.workload.name()));
    }
    if options.procs > options.sessions {
        return Err(format!("--procs {} is more than the {} sessions to split", options.procs, options.sessions));
    }
    Ok(())
}

fn schedule_from(start: Instant, options: &Options) -> Schedule {
    let measure_from = start + options.warmup;
    Schedule { start, measure_from, stop_at: measure_from + options.duration }
}

/// Where the load comes from: this process's executors, or generator processes.
enum Generators {
    Threads(Vec<glommio::ExecutorJoinHandle<SessionStats>>),
    Processes(Vec<Child>),
}

impl Generators {
    /// Waits for the load to end; the merged stats and, for processes, each one's CPU.
    fn collect(self, options: &Options) -> Result<(SessionStats, Vec<f64>), String> {
        match self {
            Generators::Threads(handles) => Ok((join_threads(handles, options)?, Vec::new())),
            Generators::Processes(children) => {
                let mut stats = SessionStats::new();
                let mut cpu_s = Vec::new();
                for (index, child) in children.into_iter().enumerate() {
                    let output =
                        child.wait_with_output().map_err(|error| format!("generator process {index}: {error}"))?;
                    if !output.status.success() {
                        return Err(format!("generator process {index} failed ({})", output.status));
                    }
                    let text = String::from_utf8_lossy(&output.stdout);
                    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
                    let cpu = first
                        .strip_prefix("generator_cpu_s ")
                        .and_then(|seconds| seconds.parse::<f64>().ok())
                        .ok_or_else(|| format!("generator process {index} printed no CPU time: {first}"))?;
                    cpu_s.push(cpu);
                    stats.merge(&SessionStats::decode(rest)?);
                }
                stats.truncate_seconds(options.duration.as_secs().max(1) as usize);
                Ok((stats, cpu_s))
            }
        }
    }
}

/// Starts the executors of generator process `process` (0 without `--procs`), each
/// driving its share of that process's share of the sessions.
fn spawn_threads(
    options: &Options,
    process: usize,
    board: &Arc<Board>,
    schedule: Schedule,
) -> Result<Vec<glommio::ExecutorJoinHandle<SessionStats>>, String> {
    let value = vec![b'v'; options.value_size];
    let tls = stream::client_config(options.tls.as_ref())?;
    let mut handles = Vec::new();
    for thread in 0..options.threads {
        let options = options.clone();
        let value = value.clone();
        let tls = tls.clone();
        let board = board.clone();
        let handle = LocalExecutorBuilder::new(Placement::Unbound)
            .name(&format!("bench-{process}-{thread}"))
            .spawn(move || async move {
                let value = Rc::new(value);
                let mut tasks = Vec::new();
                let sessions = (process..options.sessions).step_by(options.procs);
                for index in sessions.skip(thread).step_by(options.threads) {
                    let plan = SessionPlan {
                        server: options.servers[index % options.servers.len()],
                        index,
                        workload: options.workload,
                        depth: options.depth,
                        keys: options.keys,
                        value: value.clone(),
                        schedule,
                        rate_per_s: options.rate_per_s.map(|rate| rate / options.sessions as f64),
                        board: board.clone(),
                        tls: tls.clone(),
                    };
                    tasks.push(glommio::spawn_local(run_session(plan)));
                }
                let mut merged = SessionStats::new();
                for task in tasks {
                    merged.merge(&task.await);
                }
                merged
            })
            .map_err(|error| format!("cannot start a generator thread: {error}"))?;
        handles.push(handle);
    }
    Ok(handles)
}

fn join_threads(
    handles: Vec<glommio::ExecutorJoinHandle<SessionStats>>,
    options: &Options,
) -> Result<SessionStats, String> {
    let mut stats = SessionStats::new();
    for handle in handles {
        stats.merge(&handle.join().map_err(|error| format!("generator thread failed: {error}"))?);
    }
    stats.truncate_seconds(options.duration.as_secs().max(1) as usize);
    Ok(stats)
}

/// Starts `procs` copies of this executable as generator processes of this run. Each gets
/// this process's own command line (so every bench option reaches it as given) plus its
/// place in the run; a generator process prints its stats and writes no report.
fn spawn_processes(options: &Options, role: impl Fn(usize) -> ProcessRole) -> Result<Vec<Child>, String> {
    let executable = std::env::current_exe().map_err(|error| format!("cannot find this executable: {error}"))?;
    let mut children = Vec::new();
    for index in 0..options.procs {
        let role = role(index);
        let mut command = Command::new(&executable);
        command
            .args(std::env::args_os().skip(1))
            .args(["--process-index", &index.to_string(), "--process-start-ns", &role.start_ns.to_string()])
            .arg("--process-board")
            .arg(&role.board)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        match command.spawn() {
            Ok(child) => children.push(child),
            Err(error) => {
                for mut child in children {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return Err(format!("cannot start generator process {index}: {error}"));
            }
        }
    }
    Ok(children)
}

/// What the parent saw over the measured window.
struct Window {
    own_cpu_s: f64,
    server_cpu_s: Option<f64>,
    machine_busy_pct: f64,
}

/// Waits out the run, drawing progress, and samples CPU time over the measured window
/// only.
fn measure_window(options: &Options, board: &Board, schedule: Schedule) -> Window {
    let mut bar = ProgressBar::new(options.progress && std::io::stderr().is_terminal());
    let unit = options.workload.unit();
    let wait_until = |until: Instant, bar: &mut ProgressBar| loop {
        let now = Instant::now();
        bar.draw(&schedule, now, board.progress(), unit);
        if now >= until {
            break;
        }
        std::thread::sleep((until - now).min(PROGRESS_INTERVAL));
    };
    wait_until(schedule.measure_from, &mut bar);
    let own_before = process_cpu_seconds(None);
    let server_before = servers_cpu_seconds(&options.server_pids);
    let machine_before = machine_cpu_ticks();
    wait_until(schedule.stop_at, &mut bar);
    let own_cpu_s = process_cpu_seconds(None) - own_before;
    let server_after = servers_cpu_seconds(&options.server_pids);
    let machine_after = machine_cpu_ticks();
    bar.clear();
    let machine_total = machine_after.1 - machine_before.1;
    let machine_busy_pct =
        if machine_total > 0.0 { (machine_after.0 - machine_before.0) / machine_total * 100.0 } else { 0.0 };
    Window {
        own_cpu_s,
        server_cpu_s: server_before.zip(server_after).map(|(before, after)| after - before),
        machine_busy_pct,
    }
}

/// The CPU seconds of all the server processes together; None when none was named.
fn servers_cpu_seconds(pids: &[u32]) -> Option<f64> {
    (!pids.is_empty()).then(|| pids.iter().map(|pid| process_cpu_seconds(Some(*pid))).sum())
}

fn sleep_until(instant: Instant) {
    let now = Instant::now();
    if instant > now {
        std::thread::sleep(instant - now);
    }
}
