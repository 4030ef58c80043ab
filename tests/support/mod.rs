//! Starts a real `ringkeeper serve` on a free loopback port with its own data directory,
//! and stops it (and removes the directory) when dropped.

#![allow(dead_code)]

pub mod ensemble;
pub mod link_proxy;
pub mod raw;

use zookeeper_client as zk;

/// Open to anyone, as most tests create their nodes.
pub fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

pub fn ephemeral() -> zk::CreateOptions<'static> {
    zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all())
}

/// Sends a four-letter word to `address` and returns the answer ("" if nothing answers).
pub fn four_letter_at(address: &str, word: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(address) else {
        return String::new();
    };
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    if stream.write_all(word.as_bytes()).is_err() {
        return String::new();
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

/// Runs an async test on a two-thread runtime, failing it after `limit`.
pub fn run_within<F: std::future::Future<Output = ()>>(limit: Duration, test: F) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async { tokio::time::timeout(limit, test).await.expect("test finishes in time") });
}

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
    /// `--cores`; None for the default (every CPU).
    cores: Option<usize>,
    child: Child,
}

fn spawn(dir: &std::path::Path, port: u16, cores: Option<usize>) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
        .args(["serve", "--config"])
        .arg(dir.join("zoo.cfg"))
        .args(["--client-port", &port.to_string(), "--data-dir"])
        .arg(dir.join("data"))
        .args(cores.map(|cores| format!("--cores={cores}")))
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join(format!(
                "server-{}.log",
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
            )))
            .unwrap(),
        )
        .spawn()
        .expect("ringkeeper starts")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Server {
    /// A server with tickTime 200 ms (sessions of 0.4 s to 4 s) and every four-letter
    /// word allowed, plus any extra zoo.cfg lines.
    pub fn start_with(extra_config: &str) -> Server {
        Server::start_on_cores(extra_config, None)
    }

    /// `start_with` on `cores` executors (the default is one per CPU).
    pub fn start_on_cores(extra_config: &str, cores: Option<usize>) -> Server {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("ringkeeper-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("zoo.cfg");
        std::fs::write(&config, format!("tickTime=200\n4lw.commands.whitelist=*\n{extra_config}\n")).unwrap();
        let child = spawn(&dir, port, cores);
        let server = Server { port, dir, cores, child };
        server.wait_ready();
        server
    }

    /// Kills the server with SIGKILL (no chance to flush anything) and starts it again
    /// on the same port and data.
    pub fn crash_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.dir, self.port, self.cores);
        self.wait_ready();
    }

    /// Stops the server with SIGKILL and leaves it stopped (see `start_again`).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the killed server again on the same port and data.
    pub fn start_again(&mut self) {
        self.child = spawn(&self.dir, self.port, self.cores);
        self.wait_ready();
    }

    /// Runs `ringkeeper serve` on this server's data until it exits (it must refuse to
    /// start) and returns its status and stderr.
    pub fn run_to_exit(&self) -> (std::process::ExitStatus, String) {
        let output = Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
            .args(["serve", "--config"])
            .arg(self.dir.join("zoo.cfg"))
            .args(["--client-port", &self.port.to_string(), "--data-dir"])
            .arg(self.dir.join("data"))
            .output()
            .expect("ringkeeper runs");
        (output.status, String::from_utf8_lossy(&output.stderr).into_owned())
    }

    /// The log segments in the data directory, oldest first.
    pub fn log_segments(&self) -> Vec<PathBuf> {
        let mut segments: Vec<PathBuf> = std::fs::read_dir(self.dir.join("data/version-2"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.file_name().unwrap().to_str().unwrap().starts_with("log."))
            .collect();
        segments.sort();
        segments
    }

    pub fn start() -> Server {
        Server::start_with("")
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        // Generous: a restart replays what earlier test steps wrote (the long crash run
        // grows a tree of a million nodes), on a machine other suites share.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.four_letter("ruok") == "imok" {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("ringkeeper did not start on port {}", self.port);
    }

    /// Sends a four-letter word and returns the answer ("" if the server is not up).
    pub fn four_letter(&self, word: &str) -> String {
        four_letter_at(&self.address(), word)
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc_kill(self.child.id() as i32, 15) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn is_alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The server process's resident memory (VmRSS), in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("VmRSS in /proc/<pid>/status");
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib * 1024
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("server logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
