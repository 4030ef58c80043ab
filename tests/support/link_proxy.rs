//! A proxy on one member's link to another, for partitions: every byte a member sends to
//! a peer passes through the proxy of that direction, which can be cut. A cut link stops
//! carrying bytes both ways but keeps its connections open, as a network partition does
//! (no reset reaches either side); healed, it carries on where it stopped, as TCP would.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct LinkProxy {
    pub address: SocketAddr,
    cut: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
}

/// How often a pump looks at a cut link again. Only the proxy polls; the tests wait for
/// conditions.
const POLL: Duration = Duration::from_millis(5);

impl LinkProxy {
    /// A proxy on a free loopback port forwarding to `target`.
    pub fn start(target: SocketAddr) -> LinkProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let stopped = Arc::new(AtomicBool::new(false));
        let (cut_flag, stop_flag) = (cut.clone(), stopped.clone());
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                if stop_flag.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(incoming) = incoming else { continue };
                let Ok(outgoing) = TcpStream::connect(target) else { continue };
                for (from, to) in [(incoming.try_clone().unwrap(), outgoing.try_clone().unwrap()), (outgoing, incoming)]
                {
                    let (cut, stopped) = (cut_flag.clone(), stop_flag.clone());
                    std::thread::spawn(move || pump(from, to, &cut, &stopped));
                }
            }
        });
        LinkProxy { address, cut, stopped }
    }

    pub fn cut(&self) {
        self.cut.store(true, Ordering::Relaxed);
    }

    pub fn heal(&self) {
        self.cut.store(false, Ordering::Relaxed);
    }
}

impl Drop for LinkProxy {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.address);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, cut: &AtomicBool, stopped: &AtomicBool) {
    from.set_read_timeout(Some(POLL)).unwrap();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        if stopped.load(Ordering::Relaxed) {
            break;
        }
        if cut.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
            continue;
        }
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => {
                if to.write_all(&buffer[..count]).is_err() {
                    break;
                }
            }
            Err(error) if matches!(error.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}
