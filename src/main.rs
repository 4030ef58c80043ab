//! The `ringkeeper` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ringkeeper::config::Config;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's own setter (`mimalloc.h`), linked in with the allocator; the mimalloc
    /// crate does not wrap it without its `extended` feature.
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_arena_eager_commit` in mimalloc 2's `mi_option_e`.
const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;

/// Commits mimalloc's arenas as they are used rather than eagerly: an idle server then
/// holds 8 MiB resident instead of 24 (two cores), and a busy one touches the same pages
/// either way. It must run before the first allocation creates the first arena, so it
/// runs as a constructor, before Rust's runtime starts (`main` is too late).
extern "C" fn commit_memory_on_demand() {
    // SAFETY: sets a mimalloc option to a value it documents (0: commit on demand).
    unsafe { mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
}

#[used]
#[link_section = ".init_array"]
static COMMIT_MEMORY_ON_DEMAND: extern "C" fn() = commit_memory_on_demand;

#[derive(Parser)]
#[command(name = "ringkeeper", version, about = "A ZooKeeper-protocol coordination service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a server. With no arguments: standalone on 127.0.0.1:2181, data in
    /// ./ringkeeper-data.
    Serve {
        /// A ZooKeeper zoo.cfg.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Overrides clientPort.
        #[arg(long, value_name = "N")]
        client_port: Option<u16>,
        /// Overrides dataDir.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Executors (one per core); default: every core.
        #[arg(long, value_name = "N")]
        cores: Option<usize>,
    },
    /// Run an ensemble of N members on this machine (loopback), in the foreground: writes
    /// each member's zoo.cfg and myid under DIR and starts them; Ctrl-C stops them all.
    Ensemble {
        /// Members: 3, 5 or 7 (any number from 2 works).
        #[arg(long, value_name = "N")]
        local: usize,
        /// Where the members' configurations and data go.
        #[arg(long, value_name = "DIR", default_value = "ringkeeper-ensemble")]
        dir: PathBuf,
        /// Member i (from 1) serves clients on this port + i - 1.
        #[arg(long, value_name = "PORT", default_value_t = 2181)]
        client_port: u16,
        /// Member i talks to the others on this port + i - 1.
        #[arg(long, value_name = "PORT", default_value_t = 2888)]
        quorum_port: u16,
        #[arg(long, value_name = "MS", default_value_t = 2000)]
        tick_time: u32,
        /// Executors per member.
        #[arg(long, value_name = "N", default_value_t = 1)]
        cores: usize,
    },
    /// Drive a ZooKeeper-protocol server (Ringkeeper or Apache ZooKeeper) with load.
    Bench(Box<BenchArgs>),
    /// Draw JSON reports of `ringkeeper bench` runs on one HTML page (runs of the same
    /// workload overlaid, e.g. ZooKeeper against Ringkeeper).
    Report(ReportArgs),
    /// Run the consensus simulator: seeded ensembles under message loss, partitions,
    /// crashes, clock skew and stalled disks, checked at every step. A failing seed
    /// replays exactly.
    Simulate {
        /// Run this one seed (with --trace, print every output of every member).
        #[arg(long, value_name = "N", conflicts_with_all = ["first", "seeds"])]
        seed: Option<u64>,
        /// The first seed of a range.
        #[arg(long, value_name = "N", default_value_t = 0)]
        first: u64,
        /// How many seeds, from --first.
        #[arg(long, value_name = "N", default_value_t = 1000)]
        seeds: u64,
        #[arg(long)]
        trace: bool,
    },
    /// Make a Ringkeeper data directory from a ZooKeeper 3.5-3.9 one: its newest valid
    /// snapshot and the transaction logs after it, with every node, Stat, ACL and session.
    Import {
        /// ZooKeeper's dataDir (holding version-2).
        #[arg(long, value_name = "DIR")]
        from_zookeeper: PathBuf,
        /// ZooKeeper's dataLogDir, if it is not its dataDir.
        #[arg(long, value_name = "DIR")]
        zookeeper_log_dir: Option<PathBuf>,
        /// The Ringkeeper dataDir to write (it must hold no data yet).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Close every session (and delete its ephemeral nodes) instead of keeping them to
        /// expire normally.
        #[arg(long)]
        drop_sessions: bool,
    },
    /// Inspect transaction log segments.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Inspect snapshots.
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Servers, comma-separated host:port; sessions are spread over them.
    #[arg(long, default_value = "127.0.0.1:2181", value_delimiter = ',')]
    servers: Vec<std::net::SocketAddr>,
    /// get, set, create, delete, exists, children, mixed, or the recipes watch (session 0
    /// writes, the others watch), lock (all contend for one lock) and churn (connect, one
    /// create of an ephemeral, close).
    #[arg(long, default_value = "get")]
    workload: String,
    /// Percentage of reads in the mixed workload.
    #[arg(long, default_value_t = 90)]
    read_pct: u32,
    #[arg(long, default_value_t = 64)]
    sessions: usize,
    /// Requests in flight per session.
    #[arg(long, default_value_t = 16)]
    depth: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Keys read and written (for delete: nodes per session).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Open loop: requests per second in all, on a fixed schedule, latency measured from
    /// each request's scheduled time (no coordinated omission); `--depth` is then unused.
    #[arg(long, value_name = "R")]
    rate: Option<f64>,
    /// Generator processes to split the sessions over (each with --threads executors),
    /// so the generator is not the bottleneck.
    #[arg(long, default_value_t = 1)]
    procs: usize,
    /// The server's process id (an ensemble's, comma-separated), to report the servers'
    /// CPU time per operation.
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// What to call this run in reports (default: the servers).
    #[arg(long)]
    label: Option<String>,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also write an HTML page with plots (throughput and latency over time, latency by
    /// percentile) and the JSON report into this directory.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Connect over TLS presenting this client key and certificate (PEM, or PKCS12 with
    /// --tls-password); --servers are then secure client ports.
    #[arg(long, value_name = "FILE", requires = "tls_trust_store")]
    tls_key_store: Option<PathBuf>,
    /// The CA certificates (PEM or PKCS12) the servers' certificates must chain to.
    #[arg(long, value_name = "FILE", requires = "tls_key_store")]
    tls_trust_store: Option<PathBuf>,
    /// The PKCS12 stores' password.
    #[arg(long, value_name = "PASSWORD")]
    tls_password: Option<String>,
    /// Set by `--procs` for the generator processes it starts.
    #[arg(long, hide = true, requires_all = ["process_board", "process_start_ns"])]
    process_index: Option<usize>,
    #[arg(long, hide = true)]
    process_board: Option<PathBuf>,
    #[arg(long, hide = true)]
    process_start_ns: Option<u64>,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// JSON reports written by `ringkeeper bench --json`; runs of the same workload are
    /// drawn in the same charts.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// The HTML page to write.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[arg(long, default_value = "ringkeeper bench")]
    title: String,
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// List the nodes and sessions of a snapshot (like ZooKeeper's SnapshotFormatter).
    Dump {
        /// A snapshot file, e.g. ringkeeper-data/version-2/snapshot.186a0
        path: PathBuf,
        /// One JSON object per node and per session.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// List the transactions of a log segment (like ZooKeeper's TxnLogToolkit).
    Dump {
        /// A segment file, e.g. ringkeeper-data/version-2/log.1
        path: PathBuf,
        /// One JSON object per transaction.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The simulator's members log their elections: thousands per run, so only what
    // RUST_LOG asks for.
    let default_level = if matches!(cli.command, Command::Simulate { .. }) { "off" } else { "info" };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default_level.into()))
        .init();
    if !matches!(cli.command, Command::Simulate { .. }) {
        // A panic on one core would leave the others serving a half-dead server: take the
        // whole process down instead, so a supervisor restarts it from durable state. (The
        // simulator catches a core's panic as a violation instead, and recovery's replay
        // turns one into an error that names the log.)
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            if !ringkeeper::server::is_replaying_log() {
                std::process::abort();
            }
        }));
    }
    match cli.command {
        Command::Simulate { seed, first, seeds, trace } => simulate(seed, first, seeds, trace),
        Command::Ensemble { local, dir, client_port, quorum_port, tick_time, cores } => {
            let layout = ringkeeper::ensemble_local::Layout {
                members: local,
                dir,
                client_port,
                quorum_port,
                tick_time_ms: tick_time,
                cores,
            };
            match ringkeeper::ensemble_local::run(&layout) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("ringkeeper: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Serve { config, client_port, data_dir, cores } => serve(config, client_port, data_dir, cores),
        Command::Log { command: LogCommand::Dump { path, json } } => {
            dump_file(&path, json, ringkeeper::log::dump::dump)
        }
        Command::Snapshot { command: SnapshotCommand::Dump { path, json } } => {
            dump_file(&path, json, ringkeeper::log::dump::dump_snapshot)
        }
        Command::Bench(args) => bench(*args),
        Command::Import { from_zookeeper, zookeeper_log_dir, data_dir, drop_sessions } => {
            let options = ringkeeper::import::Options {
                zookeeper_dir: from_zookeeper,
                zookeeper_log_dir,
                data_dir,
                drop_sessions,
            };
            match ringkeeper::import::run(&options) {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("ringkeeper: import refused: {error}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Report(args) => report(args),
    }
}

fn simulate(seed: Option<u64>, first: u64, seeds: u64, trace: bool) -> ExitCode {
    use ringkeeper::consensus::simulator::{run_scenario, RunStats, Scenario};
    let (first, seeds) = seed.map_or((first, seeds), |seed| (seed, 1));
    let started = std::time::Instant::now();
    let mut total = RunStats::default();
    for seed in first..first.saturating_add(seeds) {
        match run_scenario(seed, Scenario::from_seed(seed), trace) {
            Ok(stats) => total.add(&stats),
            Err(violation) => {
                eprintln!("seed {seed} FAILED at {} ms: {}", violation.at_ms, violation.what);
                eprintln!("replay: ringkeeper simulate --seed {seed} --trace");
                return ExitCode::FAILURE;
            }
        }
        let done = seed - first + 1;
        if done % 10_000 == 0 {
            eprintln!("{done} seeds in {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    println!("{seeds} seeds from {first} passed in {:.1} s: {total:?}", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

fn bench(args: BenchArgs) -> ExitCode {
    let workload = match ringkeeper::bench::workload::Workload::parse(&args.workload, args.read_pct) {
        Ok(workload) => workload,
        Err(error) => {
            eprintln!("ringkeeper bench: {error}");
            return ExitCode::from(2);
        }
    };
    if args.sessions == 0 || args.depth == 0 || args.threads == 0 || args.procs == 0 || args.duration == 0 {
        eprintln!("ringkeeper bench: --sessions, --depth, --threads, --procs and --duration must be at least 1");
        return ExitCode::from(2);
    }
    if args.rate.is_some_and(|rate| !(rate > 0.0 && rate.is_finite())) {
        eprintln!("ringkeeper bench: --rate must be a positive number of requests per second");
        return ExitCode::from(2);
    }
    let options = ringkeeper::bench::Options {
        servers: args.servers,
        workload,
        sessions: args.sessions,
        depth: args.depth,
        duration: std::time::Duration::from_secs(args.duration),
        warmup: std::time::Duration::from_secs(args.warmup),
        value_size: args.value_size,
        keys: args.keys,
        threads: args.threads,
        procs: args.procs,
        server_pids: args.server_pid,
        rate_per_s: args.rate,
        label: args.label,
        progress: true,
        tls: args.tls_key_store.map(|key_store| {
            let mut settings = ringkeeper::tls::TlsSettings::default();
            settings.key_store.path = Some(key_store);
            settings.key_store.password = args.tls_password.clone();
            settings.trust_store.path = args.tls_trust_store;
            settings.trust_store.password = args.tls_password;
            settings
        }),
    };
    if let (Some(index), Some(board), Some(start_ns)) = (args.process_index, args.process_board, args.process_start_ns)
    {
        let role = ringkeeper::bench::ProcessRole { index, board, start_ns };
        return match ringkeeper::bench::run_process(&options, &role) {
            Ok(output) => {
                print!("{output}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("ringkeeper bench (generator process {index}): {error}");
                ExitCode::FAILURE
            }
        };
    }
    let report = match ringkeeper::bench::run(&options) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("ringkeeper bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.text());
    let mut outputs = Vec::new();
    if let Some(path) = args.json {
        outputs.push((path, report.json()));
    }
    if let Some(directory) = args.report {
        if let Err(error) = std::fs::create_dir_all(&directory) {
            eprintln!("ringkeeper bench: cannot create {}: {error}", directory.display());
            return ExitCode::FAILURE;
        }
        let title = format!("ringkeeper bench: {} against {}", report.workload, report.label);
        outputs
            .push((directory.join("index.html"), ringkeeper::bench::html::page(&title, std::slice::from_ref(&report))));
        outputs.push((directory.join("report.json"), report.json()));
    }
    for (path, contents) in outputs {
        if let Err(error) = std::fs::write(&path, contents) {
            eprintln!("ringkeeper bench: cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn report(args: ReportArgs) -> ExitCode {
    let mut runs = Vec::new();
    for path in &args.runs {
        let parsed = std::fs::read_to_string(path)
            .map_err(|error| error.to_string())
            .and_then(|text| ringkeeper::bench::report::Report::from_json(&text));
        match parsed {
            Ok(run) => runs.push(run),
            Err(error) => {
                eprintln!("ringkeeper report: {}: {error}", path.display());
                return ExitCode::from(2);
            }
        }
    }
    if let Err(error) = std::fs::write(&args.out, ringkeeper::bench::html::page(&args.title, &runs)) {
        eprintln!("ringkeeper report: cannot write {}: {error}", args.out.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Reads a file into aligned memory (records and archives are read in place) and prints
/// what `dump` makes of it.
fn dump_file(path: &std::path::Path, json: bool, dump: fn(&[u8], bool) -> Result<String, String>) -> ExitCode {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("ringkeeper: cannot read {}: {error}", path.display());
            return ExitCode::from(2);
        }
    };
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(&bytes);
    match dump(&aligned, json) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ringkeeper: {}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}

fn serve(
    config_path: Option<PathBuf>,
    client_port: Option<u16>,
    data_dir: Option<PathBuf>,
    cores: Option<usize>,
) -> ExitCode {
    let mut config = match &config_path {
        None => Config::default(),
        Some(path) => {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(error) => {
                    eprintln!("ringkeeper: cannot read {}: {error}", path.display());
                    return ExitCode::from(2);
                }
            };
            match Config::parse(&text) {
                Ok((config, warnings)) => {
                    for warning in warnings {
                        tracing::warn!("{}: {warning}", path.display());
                    }
                    config
                }
                Err(error) => {
                    eprintln!("ringkeeper: {}: {error}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
    };
    if let Some(port) = client_port {
        config.client_port = port;
    }
    if let Some(dir) = data_dir {
        config.data_dir = dir;
    }
    let cores = cores.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    if cores == 0 {
        eprintln!("ringkeeper: --cores must be at least 1");
        return ExitCode::from(2);
    }
    match ringkeeper::server::run(config, cores) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringkeeper: {error}");
            ExitCode::FAILURE
        }
    }
}
