//! Which core serves a new client connection. Core 0 alone listens on each client port
//! and hands every connection it accepts to the core with the fewest, the lowest of those
//! on a tie. A lone session is then served on core 0, beside the ordering point and the
//! log, and its writes cross no core: with every core accepting on one SO_REUSEPORT port,
//! the kernel's hash of the addresses put it on any core, and on another one a write took
//! two more hops and their wake-ups (`perf/README.md`, "A lone session on core 0"). Many
//! sessions spread evenly, where the hash spread them only on average.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use glommio::net::AcceptedTcpStream;

use super::shared::Shared;

/// The client port a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientPort {
    /// `clientPort`: plain, or either with `client.portUnification`.
    Plain,
    /// `secureClientPort`: TLS.
    Secure,
}

/// A connection core 0 accepted for another core, which binds it to its executor.
pub struct HandedConnection {
    pub stream: AcceptedTcpStream,
    pub port: ClientPort,
    pub placed: Placed,
}

/// A connection counted against the core that serves it, from its placement until its
/// task ends (when this is dropped).
pub struct Placed {
    shared: Arc<Shared>,
    pub core: usize,
}

impl Drop for Placed {
    fn drop(&mut self) {
        let before = self.shared.placed_connections[self.core].fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "a placed connection was counted");
    }
}

/// Places a new connection on the core with the fewest, the lowest of those.
pub fn place(shared: &Arc<Shared>) -> Placed {
    let placed = &shared.placed_connections;
    let core = (0..placed.len()).min_by_key(|&core| placed[core].load(Ordering::Acquire)).expect("at least one core");
    place_on(shared, core)
}

/// Places a new connection on `core`.
pub fn place_on(shared: &Arc<Shared>, core: usize) -> Placed {
    shared.placed_connections[core].fetch_add(1, Ordering::AcqRel);
    Placed { shared: shared.clone(), core }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn a_lone_connection_goes_to_core_0_and_more_spread_evenly_over_the_cores() {
        let shared = Arc::new(Shared::new(Config::default(), 3));
        let first = place(&shared);
        assert_eq!(first.core, 0, "a lone session beside the ordering point");
        let placed: Vec<Placed> = (0..5).map(|_| place(&shared)).collect();
        let cores: Vec<usize> = placed.iter().map(|placed| placed.core).collect();
        assert_eq!(cores, [1, 2, 0, 1, 2]);
        // A connection that ends frees its place: the next goes where one is missing.
        drop(first);
        let again = place(&shared);
        assert_eq!(again.core, 0);
        drop(placed);
        assert!(shared.placed_connections.iter().map(|count| count.load(Ordering::Acquire)).eq([1, 0, 0]));
    }
}
