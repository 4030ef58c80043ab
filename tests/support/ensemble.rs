//! Starts an ensemble of real `ringkeeper serve` processes on loopback, each with its own
//! ports, zoo.cfg, myid and data, and stops them (and removes their directories) when
//! dropped. Members can be killed, restarted, paused and resumed.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

const SIGSTOP: i32 = 19;
const SIGCONT: i32 = 18;

pub struct Member {
    pub id: u64,
    pub client_port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

pub struct Ensemble {
    pub members: Vec<Member>,
    root: PathBuf,
    /// With `start_partitionable`: the proxy each member sends through to each other one,
    /// by (from, to) index.
    proxies: std::collections::BTreeMap<(usize, usize), super::link_proxy::LinkProxy>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// How long a test waits for an ensemble to settle: generous, for a loaded 2-core CI
/// machine; tests wait for conditions, so a fast machine does not wait this long.
pub const SETTLE: Duration = Duration::from_secs(60);

impl Ensemble {
    /// `voters` voting members and `observers` observers, tickTime 100 ms, syncLimit 10
    /// ticks, every four-letter word allowed, plus `extra` zoo.cfg lines.
    pub fn start(voters: usize, observers: usize, extra: &str) -> Ensemble {
        Ensemble::start_with(voters, observers, extra, false)
    }

    /// Like `start`, with every member's link to every other one through a proxy that
    /// `cut` and `heal` control.
    pub fn start_partitionable(voters: usize, extra: &str) -> Ensemble {
        Ensemble::start_with(voters, 0, extra, true)
    }

    fn start_with(voters: usize, observers: usize, extra: &str, partitionable: bool) -> Ensemble {
        let count = voters + observers;
        // Ports are picked free and released before the members bind them: no two may be
        // picked alike, and no proxy may be handed one of them meanwhile.
        let mut taken = std::collections::BTreeSet::new();
        let mut distinct_port = || {
            (0..1000)
                .map(|_| free_port())
                .find(|&port| !taken.contains(&port) && !taken.contains(&port.wrapping_add(1)))
                .inspect(|&port| {
                    taken.insert(port);
                    taken.insert(port.wrapping_add(1));
                })
                .expect("a free port not picked yet")
        };
        let ports: Vec<(u16, u16)> = (0..count).map(|_| (distinct_port(), distinct_port())).collect();
        let root = std::env::temp_dir().join(format!("ringkeeper-ensemble-{}-{}", std::process::id(), ports[0].0));
        let mut proxies = std::collections::BTreeMap::new();
        if partitionable {
            for from in 0..count {
                for to in (0..count).filter(|&to| to != from) {
                    let target = SocketAddr::from(([127, 0, 0, 1], ports[to].1));
                    let proxy = (0..1000)
                        .map(|_| super::link_proxy::LinkProxy::start(target))
                        .find(|proxy| !taken.contains(&proxy.address.port()))
                        .expect("a proxy port no member uses");
                    proxies.insert((from, to), proxy);
                }
            }
        }
        let mut members = Vec::new();
        for (index, (client_port, _)) in ports.iter().enumerate() {
            // Each member reaches the others at their proxies (its own line names its own
            // listening port).
            let mut servers = String::new();
            for (other, (_, quorum)) in ports.iter().enumerate() {
                let role = if other < voters { "participant" } else { "observer" };
                let port = proxies.get(&(index, other)).map_or(*quorum, |proxy| proxy.address.port());
                servers.push_str(&format!("server.{}=127.0.0.1:{port}:{}:{role}\n", other + 1, port.wrapping_add(1)));
            }
            let dir = root.join(format!("m{}", index + 1));
            std::fs::create_dir_all(dir.join("data")).unwrap();
            std::fs::write(dir.join("data/myid"), format!("{}\n", index + 1)).unwrap();
            let config = format!(
                "tickTime=100\ninitLimit=20\nsyncLimit=10\ndataDir={}\nclientPort={client_port}\nmaxClientCnxns=0\n\
                 4lw.commands.whitelist=*\n{extra}\n{servers}",
                dir.join("data").display()
            );
            std::fs::write(dir.join("zoo.cfg"), config).unwrap();
            members.push(Member { id: index as u64 + 1, client_port: *client_port, dir, child: None });
        }
        let mut ensemble = Ensemble { members, root, proxies };
        for index in 0..count {
            ensemble.start_member(index);
        }
        ensemble.wait_serving();
        ensemble
    }

    /// Cuts every link between a member of `side` and one outside it, both ways.
    pub fn cut(&self, side: &[usize]) {
        for ((from, to), proxy) in &self.proxies {
            if side.contains(from) != side.contains(to) {
                proxy.cut();
            }
        }
    }

    pub fn heal(&self) {
        for proxy in self.proxies.values() {
            proxy.heal();
        }
    }

    pub fn start_member(&mut self, index: usize) {
        let member = &mut self.members[index];
        assert!(member.child.is_none(), "member {} is running", member.id);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(member.dir.join("server.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
            .args(["serve", "--cores", "1", "--config"])
            .arg(member.dir.join("zoo.cfg"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ringkeeper starts");
        member.child = Some(child);
    }

    /// SIGKILL: nothing is flushed, the process's sockets close.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn pause(&self, index: usize) {
        let child = self.members[index].child.as_ref().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc_kill(child.id() as i32, SIGSTOP) };
    }

    pub fn resume(&self, index: usize) {
        let child = self.members[index].child.as_ref().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc_kill(child.id() as i32, SIGCONT) };
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.members[index].child.is_some()
    }

    pub fn address(&self, index: usize) -> String {
        format!("127.0.0.1:{}", self.members[index].client_port)
    }

    /// Every member's client address, comma-separated, for a client that spreads over
    /// them.
    pub fn addresses(&self) -> String {
        (0..self.members.len()).map(|index| self.address(index)).collect::<Vec<_>>().join(",")
    }

    /// A four-letter word's answer ("" when the member does not answer).
    pub fn four_letter(&self, index: usize, word: &str) -> String {
        super::four_letter_at(&self.address(index), word)
    }

    /// The member's mode as srvr reports it, or None when it does not serve.
    pub fn mode(&self, index: usize) -> Option<String> {
        let srvr = self.four_letter(index, "srvr");
        srvr.lines().find_map(|line| line.strip_prefix("Mode: ")).map(str::to_owned)
    }

    /// Waits until every running member serves and exactly one leads.
    pub fn wait_serving(&self) -> usize {
        self.wait_for("every running member serving under one leader", || {
            let modes: Vec<Option<String>> =
                (0..self.members.len()).filter(|&index| self.is_running(index)).map(|index| self.mode(index)).collect();
            let all_serve = modes.iter().all(Option::is_some);
            let leaders = modes.iter().filter(|mode| mode.as_deref() == Some("leader")).count();
            all_serve && leaders == 1
        });
        self.leader().expect("one leader")
    }

    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len())
            .filter(|&index| self.is_running(index))
            .find(|&index| self.mode(index).as_deref() == Some("leader"))
    }

    /// Polls `condition` until it holds, failing the test after SETTLE.
    pub fn wait_for(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            if condition() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("timed out waiting for {what}; logs in {}", self.root.display());
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            if self.members[index].child.is_some() {
                self.resume(index);
            }
            self.kill(index);
        }
        if std::thread::panicking() {
            eprintln!("ensemble logs kept in {}", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
