//! An independent load generator, to check `ringkeeper bench`: the same closed-loop
//! workload (sessions x requests in flight, the same keys and value sizes) driven through
//! a third-party client library, the `zookeeper-client` crate on a one-thread tokio
//! runtime, which shares no code with our bench. Against the same Apache ZooKeeper, the
//! two should report the same throughput and latencies within the machine's noise; if
//! they do not, one of them measures itself rather than the server.
//!
//! ```sh
//! cargo bench --bench third_party_client -- --server 127.0.0.1:2181 --workload set \
//!     --sessions 64 --depth 16 --duration 10 --warmup 2 [--json FILE]
//! ```
//!
//! Requests of one session are answered in order (ZooKeeper's per-session FIFO), so each
//! session awaits its oldest request while `depth - 1` more are on the wire; the library
//! sends a request when it is issued, not when it is awaited.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
// The bench's node names and /proc reading, not its client: what is checked is how the
// requests are sent and timed, which stays third-party.
use ringkeeper::bench::report::process_cpu_seconds;
use ringkeeper::bench::workload::{CREATED, ROOT};
use zookeeper_client as zk;

#[derive(Clone)]
struct Options {
    server: String,
    workload: String,
    sessions: usize,
    depth: usize,
    duration: Duration,
    warmup: Duration,
    value_size: usize,
    keys: u64,
    /// The server's pid, for its CPU time per operation over the measured window.
    server_pid: Option<u32>,
    json: Option<String>,
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        server: "127.0.0.1:2181".into(),
        workload: "get".into(),
        sessions: 64,
        depth: 16,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        value_size: 100,
        keys: 1000,
        server_pid: None,
        json: None,
    };
    let mut arguments = std::env::args().skip(1).filter(|argument| argument != "--bench");
    while let Some(flag) = arguments.next() {
        let mut value = || arguments.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |text: String| text.parse::<u64>().map_err(|_| format!("{flag}: not a number: {text}"));
        match flag.as_str() {
            "--server" => options.server = value()?,
            "--workload" => options.workload = value()?,
            "--sessions" => options.sessions = number(value()?)? as usize,
            "--depth" => options.depth = number(value()?)? as usize,
            "--duration" => options.duration = Duration::from_secs(number(value()?)?),
            "--warmup" => options.warmup = Duration::from_secs(number(value()?)?),
            "--value-size" => options.value_size = number(value()?)? as usize,
            "--keys" => options.keys = number(value()?)?,
            "--server-pid" => options.server_pid = Some(number(value()?)? as u32),
            "--json" => options.json = Some(value()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !matches!(options.workload.as_str(), "get" | "set" | "create") {
        return Err(format!("workload {} (get, set or create)", options.workload));
    }
    if options.sessions == 0 || options.depth == 0 || options.keys == 0 {
        return Err("--sessions, --depth and --keys must be at least 1".into());
    }
    Ok(options)
}

/// What one session measured.
struct Measured {
    latency_us: Histogram<u64>,
    operations: u64,
    errors: u64,
}

type Pending<'a> = Pin<Box<dyn Future<Output = Result<(), zk::Error>> + Send + 'a>>;

/// Issues (sends) the `sequence`-th request of a session; `created` is the session's
/// sequential-node prefix.
fn issue<'a>(
    client: &'a zk::Client,
    options: &Options,
    created: &'a str,
    session: usize,
    sequence: u64,
    value: &[u8],
) -> Pending<'a> {
    let key = format!("{ROOT}/k{}", (sequence * 7919 + session as u64 * 104_729) % options.keys);
    match options.workload.as_str() {
        "get" => {
            let reply = client.get_data(&key);
            Box::pin(async move { reply.await.map(drop) })
        }
        "set" => {
            let reply = client.set_data(&key, value, None);
            Box::pin(async move { reply.await.map(drop) })
        }
        _ => {
            let create = zk::CreateMode::PersistentSequential.with_acls(zk::Acls::anyone_all());
            let reply = client.create(created, value, &create);
            Box::pin(async move { reply.await.map(drop) })
        }
    }
}

async fn run_session(
    client: zk::Client,
    options: Options,
    session: usize,
    measure_from: Instant,
    stop_at: Instant,
) -> Measured {
    let value = vec![b'v'; options.value_size];
    let mut measured = Measured {
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
        operations: 0,
        errors: 0,
    };
    let created = format!("{CREATED}/s{session}-c-");
    let mut in_flight: VecDeque<(Instant, Pending<'_>)> = VecDeque::with_capacity(options.depth);
    let mut sequence = 0u64;
    loop {
        while Instant::now() < stop_at && in_flight.len() < options.depth {
            in_flight.push_back((Instant::now(), issue(&client, &options, &created, session, sequence, &value)));
            sequence += 1;
        }
        let Some((sent, reply)) = in_flight.pop_front() else { break };
        let result = reply.await;
        let now = Instant::now();
        // As `ringkeeper bench` counts: every reply to a request sent in the window.
        if sent >= measure_from {
            measured.operations += 1;
            let _ = measured.latency_us.record(now.duration_since(sent).as_micros().max(1) as u64);
            measured.errors += u64::from(result.is_err());
        }
    }
    measured
}

async fn set_up(options: &Options) -> Result<(), zk::Error> {
    let client = zk::Client::connect(&options.server).await?;
    let value = vec![b'v'; options.value_size];
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    let mut parents = vec![ROOT.to_owned()];
    if options.workload == "create" {
        parents.push(CREATED.to_owned());
    }
    for parent in parents {
        match client.create(&parent, b"", &persistent).await {
            Ok(_) | Err(zk::Error::NodeExists) => {}
            Err(error) => return Err(error),
        }
    }
    if options.workload != "create" {
        let paths: Vec<String> = (0..options.keys).map(|key| format!("{ROOT}/k{key}")).collect();
        let creates: Vec<_> = paths.iter().map(|path| client.create(path, &value, &persistent)).collect();
        for create in creates {
            match create.await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(())
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs bench targets without
    // it, and there is no server to load then.
    if !std::env::args().any(|argument| argument == "--bench") {
        println!("third_party_client: a load generator; run it with cargo bench (see the top of the file)");
        return;
    }
    let options = match parse_options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("third_party_client: {error}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    runtime.block_on(async {
        if let Err(error) = set_up(&options).await {
            eprintln!("third_party_client: set-up failed: {error}");
            std::process::exit(1);
        }
        let mut clients = Vec::new();
        for _ in 0..options.sessions {
            match zk::Client::connect(&options.server).await {
                Ok(client) => clients.push(client),
                Err(error) => {
                    eprintln!("third_party_client: connect failed: {error}");
                    std::process::exit(1);
                }
            }
        }
        let measure_from = Instant::now() + options.warmup;
        let stop_at = measure_from + options.duration;
        let tasks: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(session, client)| tokio::spawn(run_session(client, options.clone(), session, measure_from, stop_at)))
            .collect();
        tokio::time::sleep_until(measure_from.into()).await;
        let cpu_before = process_cpu_seconds(None);
        let server_before = options.server_pid.map(|pid| process_cpu_seconds(Some(pid)));
        tokio::time::sleep_until(stop_at.into()).await;
        let cpu_s = process_cpu_seconds(None) - cpu_before;
        let server_cpu_s = server_before.map(|before| process_cpu_seconds(options.server_pid) - before);
        let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
        let (mut operations, mut errors) = (0u64, 0u64);
        for task in tasks {
            let measured = task.await.expect("a session task completes");
            latency_us.add(&measured.latency_us).expect("same bounds");
            operations += measured.operations;
            errors += measured.errors;
        }
        report(&options, &latency_us, operations, errors, cpu_s, server_cpu_s);
    });
}

fn report(
    options: &Options,
    latency_us: &Histogram<u64>,
    operations: u64,
    errors: u64,
    cpu_s: f64,
    server_cpu_s: Option<f64>,
) {
    let seconds = options.duration.as_secs_f64();
    let ms = |quantile: f64| latency_us.value_at_quantile(quantile) as f64 / 1000.0;
    let (p50, p90, p99, p999, max) = (ms(0.5), ms(0.9), ms(0.99), ms(0.999), latency_us.max() as f64 / 1000.0);
    let ops_per_s = operations as f64 / seconds;
    let cpu_pct = cpu_s / seconds * 100.0;
    let server_us_per_op = server_cpu_s.map(|cpu| cpu * 1e6 / operations.max(1) as f64);
    let server_text = server_us_per_op.map_or(String::new(), |us| format!(", server CPU {us:.1} us/op"));
    println!(
        "third-party zookeeper-client: workload {} sessions {} x depth {} {:.0} s: {ops_per_s:.0} ops/s \
         p50 {p50:.3} ms p90 {p90:.3} ms p99 {p99:.3} ms p99.9 {p999:.3} ms max {max:.3} ms errors {errors} \
         client CPU {cpu_pct:.0}% of one core{server_text}",
        options.workload, options.sessions, options.depth, seconds
    );
    if let Some(path) = &options.json {
        let json = format!(
            "{{\"workload\":\"{}\",\"sessions\":{},\"depth\":{},\"duration_s\":{seconds},\"operations\":{operations},\
             \"ops_per_s\":{ops_per_s:.1},\"latency_ms\":{{\"p50\":{p50},\"p90\":{p90},\"p99\":{p99},\"p99.9\":{p999},\
             \"max\":{max}}},\"errors\":{errors},\"client_cpu_pct\":{cpu_pct:.1},\"server_cpu_us_per_op\":{}}}\n",
            options.workload,
            options.sessions,
            options.depth,
            server_us_per_op.map_or("null".to_owned(), |us| format!("{us:.2}"))
        );
        if let Err(error) = std::fs::write(path, json) {
            eprintln!("third_party_client: cannot write {path}: {error}");
        }
    }
}
