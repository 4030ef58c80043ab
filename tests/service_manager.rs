//! Running under systemd (`Type=notify`, deploy/ringkeeper.service): the server tells the
//! service manager READY=1 once it serves clients, and STOPPING=1 when it stops. The test
//! plays the service manager: it listens on the socket that `NOTIFY_SOCKET` names.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Waits (bounded) for the next notification and returns its text.
fn next_notification(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 4096];
    let length = socket.recv(&mut buffer).expect("a notification within the timeout");
    String::from_utf8_lossy(&buffer[..length]).into_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `ringkeeper serve` with `NOTIFY_SOCKET=notify_socket`, checks what it tells the
/// socket, and stops it.
fn ready_then_stopping(notify_socket: &str, socket: &UnixDatagram, dir: &std::path::Path) {
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let port = free_port();
    std::fs::write(dir.join("zoo.cfg"), "4lw.commands.whitelist=*\nadmin.enableServer=false\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringkeeper"))
        .args(["serve", "--config"])
        .arg(dir.join("zoo.cfg"))
        .args(["--client-port", &port.to_string(), "--data-dir"])
        .arg(dir.join("data"))
        .env("NOTIFY_SOCKET", notify_socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ringkeeper starts");
    let ready = next_notification(socket);
    assert!(ready.lines().any(|line| line == "READY=1"), "{ready}");
    // Ready means serving: the client port answers at once, no retry.
    assert_eq!(support::four_letter_at(&format!("127.0.0.1:{port}"), "ruok"), "imok");
    // SAFETY: kill(2) on the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    assert_eq!(next_notification(socket), "STOPPING=1");
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_server_notifies_ready_once_it_serves_and_stopping_when_it_stops() {
    let dir = std::env::temp_dir().join(format!("ringkeeper-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    ready_then_stopping(path.to_str().unwrap(), &socket, &dir);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_abstract_notify_socket_is_notified_too() {
    // systemd names abstract sockets with a leading '@'.
    use std::os::linux::net::SocketAddrExt;
    let name = format!("ringkeeper-notify-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = UnixDatagram::bind_addr(&address).unwrap();
    let dir = std::env::temp_dir().join(format!("ringkeeper-notify-abstract-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    ready_then_stopping(&format!("@{name}"), &socket, &dir);
    std::fs::remove_dir_all(&dir).unwrap();
}
