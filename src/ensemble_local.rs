//! `ringkeeper ensemble --local N`: a whole ensemble on this machine for trying one out.
//! Writes a zoo.cfg and a myid per member under one folder (kept between runs, so the
//! data survives a restart of the command), starts every member as a child process and
//! stops them all on Ctrl-C or SIGTERM.

use std::path::PathBuf;
use std::process::{Child, Command};

/// Member N's AdminServer listens on this port plus N - 1 (ZooKeeper's default 8080 for
/// member 1).
const ADMIN_PORT_FIRST: u16 = 8080;

pub struct Layout {
    pub members: usize,
    pub dir: PathBuf,
    pub client_port: u16,
    pub quorum_port: u16,
    pub tick_time_ms: u32,
    pub cores: usize,
}

impl Layout {
    /// Member `id`'s zoo.cfg (ids from 1), as an operator would write it for ZooKeeper.
    pub fn zoo_cfg(&self, id: usize) -> String {
        let data_dir = self.dir.join(id.to_string()).join("data");
        let mut text = format!(
            "tickTime={}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nmaxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.serverPort={}\n",
            self.tick_time_ms,
            data_dir.display(),
            self.client_port as usize + id - 1,
            ADMIN_PORT_FIRST as usize + id - 1
        );
        for member in 1..=self.members {
            let quorum = self.quorum_port as usize + member - 1;
            text.push_str(&format!("server.{member}=127.0.0.1:{quorum}:{}\n", quorum + 1000));
        }
        text
    }

    fn port_fits(&self) -> bool {
        (self.client_port as usize + self.members) <= u16::MAX as usize
            && (ADMIN_PORT_FIRST as usize + self.members) <= u16::MAX as usize
            && (self.quorum_port as usize + self.members + 1000) <= u16::MAX as usize
    }
}

pub fn run(layout: &Layout) -> Result<(), String> {
    if layout.members < 2 || layout.members > 255 || !layout.port_fits() {
        return Err(format!("--local {}: an ensemble has 2 to 255 members on free ports", layout.members));
    }
    let exe = std::env::current_exe().map_err(|error| format!("cannot find this program: {error}"))?;
    // The children inherit the blocked signals; they wait for them with sigwait too.
    let signals = crate::server::block_shutdown_signals();
    let mut children: Vec<Child> = Vec::new();
    for id in 1..=layout.members {
        let member_dir = layout.dir.join(id.to_string());
        let data_dir = member_dir.join("data");
        std::fs::create_dir_all(&data_dir).map_err(|error| format!("cannot create {}: {error}", data_dir.display()))?;
        std::fs::write(data_dir.join("myid"), format!("{id}\n")).map_err(|error| error.to_string())?;
        let config = member_dir.join("zoo.cfg");
        std::fs::write(&config, layout.zoo_cfg(id)).map_err(|error| error.to_string())?;
        let child = Command::new(&exe)
            .args(["serve", "--config"])
            .arg(&config)
            .args(["--cores", &layout.cores.to_string()])
            .spawn()
            .map_err(|error| format!("cannot start member {id}: {error}"))?;
        children.push(child);
    }
    let servers: Vec<String> =
        (1..=layout.members).map(|id| format!("127.0.0.1:{}", layout.client_port as usize + id - 1)).collect();
    eprintln!(
        "ringkeeper: {} members running; clients connect to {}; Ctrl-C stops them",
        layout.members,
        servers.join(",")
    );
    crate::server::wait_for_shutdown_signal(&signals);
    for child in &mut children {
        // SAFETY: kill(2) on a child we started.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    }
    for child in &mut children {
        let _ = child.wait();
    }
    Ok(())
}
