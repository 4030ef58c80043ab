//! Telling systemd (or any service manager speaking its notify protocol) how the server
//! is doing: `READY=1` once it has recovered and every core listens, `STOPPING=1` when it
//! shuts down (`sd_notify(3)`: one datagram to the socket named by `NOTIFY_SOCKET`).
//! Without `NOTIFY_SOCKET` nothing is sent.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (newline-separated `KEY=value` assignments) to the service manager, if
/// one asked for notifications. Failing to notify never stops the server.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = path.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            // An abstract socket (Linux): the name without the '@'.
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &address)
            }
            None => socket.send_to(state.as_bytes(), &path),
        }
    });
    if let Err(error) = sent {
        tracing::warn!(%error, socket = ?path, "cannot notify the service manager");
    }
}
