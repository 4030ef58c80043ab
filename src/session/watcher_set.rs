//! The watchers of one path in one watch table: connection -> mode. Most watched paths
//! have a few watchers, kept in a small vector (16 bytes a watch, no table, no hashing);
//! a path that many connections watch (a lock's or a leader's node) moves to a hash map,
//! so adding and removing a watch stay constant-time however many there are.

use std::collections::HashMap;

use super::watches::{ConnectionId, WatchMode};

/// Above this many watchers a path's set is a hash map.
const FEW_WATCHERS_MAX: usize = 16;

#[derive(Debug)]
pub enum WatcherSet {
    Few(Vec<(ConnectionId, WatchMode)>),
    Many(HashMap<ConnectionId, WatchMode, ahash::RandomState>),
}

impl Default for WatcherSet {
    fn default() -> Self {
        WatcherSet::Few(Vec::new())
    }
}

impl WatcherSet {
    /// Sets the connection's mode; returns the mode it replaced.
    pub fn insert(&mut self, connection: ConnectionId, mode: WatchMode) -> Option<WatchMode> {
        match self {
            WatcherSet::Few(few) => {
                if let Some(entry) = few.iter_mut().find(|(c, _)| *c == connection) {
                    return Some(std::mem::replace(&mut entry.1, mode));
                }
                if few.len() < FEW_WATCHERS_MAX {
                    few.push((connection, mode));
                } else {
                    let mut many: HashMap<_, _, _> = few.drain(..).collect();
                    many.insert(connection, mode);
                    *self = WatcherSet::Many(many);
                }
                None
            }
            WatcherSet::Many(many) => many.insert(connection, mode),
        }
    }

    /// Removes the connection's watch; returns its mode.
    pub fn remove(&mut self, connection: ConnectionId) -> Option<WatchMode> {
        match self {
            WatcherSet::Few(few) => {
                let index = few.iter().position(|(c, _)| *c == connection)?;
                Some(few.swap_remove(index).1)
            }
            WatcherSet::Many(many) => {
                let removed = many.remove(&connection);
                // Back to a vector well below the threshold, so a set hovering around it
                // does not convert on every change.
                if many.len() <= FEW_WATCHERS_MAX / 4 {
                    *self = WatcherSet::Few(many.drain().collect());
                }
                removed
            }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            WatcherSet::Few(few) => few.len(),
            WatcherSet::Many(many) => many.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every (connection, mode), in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (ConnectionId, WatchMode)> + '_ {
        let (few, many) = match self {
            WatcherSet::Few(few) => (Some(few.iter().copied()), None),
            WatcherSet::Many(many) => (None, Some(many.iter().map(|(&c, &m)| (c, m)))),
        };
        few.into_iter().flatten().chain(many.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(set: &WatcherSet) -> Vec<(ConnectionId, WatchMode)> {
        let mut all: Vec<_> = set.iter().collect();
        all.sort_by_key(|(c, _)| *c);
        all
    }

    #[test]
    fn a_set_holds_one_mode_per_connection_through_growing_and_shrinking() {
        let mut set = WatcherSet::default();
        for connection in 0..100u64 {
            assert_eq!(set.insert(connection, WatchMode::Standard), None);
        }
        assert!(matches!(set, WatcherSet::Many(_)), "many watchers live in a map");
        assert_eq!(set.insert(7, WatchMode::Persistent), Some(WatchMode::Standard), "a later watch replaces the mode");
        assert_eq!(set.len(), 100);
        for connection in (0..100u64).filter(|c| *c != 7 && *c != 42) {
            assert_eq!(set.remove(connection), Some(WatchMode::Standard));
        }
        assert!(matches!(set, WatcherSet::Few(_)), "back to a vector when few remain");
        assert_eq!(sorted(&set), vec![(7, WatchMode::Persistent), (42, WatchMode::Standard)]);
        assert_eq!(set.remove(7), Some(WatchMode::Persistent));
        assert_eq!(set.remove(7), None);
        assert_eq!(set.insert(42, WatchMode::Recursive), Some(WatchMode::Standard));
        assert_eq!(set.remove(42), Some(WatchMode::Recursive));
        assert!(set.is_empty());
    }
}
