//! One core's registry of standard (one-shot) watches: data watches (set by getData and
//! exists) and child watches (set by getChildren), by path, for the connections this
//! core owns. Firing follows `DataTree` and `WatchManager`: a create fires data watches
//! with NodeCreated and the parent's child watches; a delete fires NodeDeleted on both
//! the node's data and child watches (each watcher once) and the parent's child watches;
//! a setData fires data watches.

use std::collections::{HashMap, HashSet};

use crate::proto::watch_event::EventType;
use crate::tree::Trigger;

/// A connection's identity on its core.
pub type ConnectionId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchSummary {
    pub data_connections: usize,
    pub data_paths: usize,
    pub data_watches: usize,
    pub all_watches: usize,
}

#[derive(Debug, Default)]
pub struct WatchRegistry {
    data: HashMap<Box<str>, HashSet<ConnectionId>>,
    child: HashMap<Box<str>, HashSet<ConnectionId>>,
    /// Reverse index for dropping a connection's watches: (is_child, path).
    by_connection: HashMap<ConnectionId, HashSet<(bool, Box<str>)>>,
    /// Counts kept as watches come and go, so the four-letter words cost nothing to
    /// publish: data watches per connection, and the totals.
    data_per_connection: HashMap<ConnectionId, usize>,
    data_watches: usize,
    child_watches: usize,
}

impl WatchRegistry {
    pub fn add_data_watch(&mut self, path: &str, connection: ConnectionId) {
        if self.data.entry(path.into()).or_default().insert(connection) {
            self.data_watches += 1;
            *self.data_per_connection.entry(connection).or_default() += 1;
        }
        self.by_connection.entry(connection).or_default().insert((false, path.into()));
    }

    pub fn add_child_watch(&mut self, path: &str, connection: ConnectionId) {
        if self.child.entry(path.into()).or_default().insert(connection) {
            self.child_watches += 1;
        }
        self.by_connection.entry(connection).or_default().insert((true, path.into()));
    }

    fn forget(&mut self, is_child: bool, connection: ConnectionId) {
        if is_child {
            self.child_watches -= 1;
            return;
        }
        self.data_watches -= 1;
        let count = self.data_per_connection.get_mut(&connection).expect("counted when added");
        *count -= 1;
        if *count == 0 {
            self.data_per_connection.remove(&connection);
        }
    }

    /// Forgets every watch of a closed connection.
    pub fn remove_connection(&mut self, connection: ConnectionId) {
        let Some(entries) = self.by_connection.remove(&connection) else {
            return;
        };
        for (is_child, path) in entries {
            let table = if is_child { &mut self.child } else { &mut self.data };
            let Some(watchers) = table.get_mut(&path) else { continue };
            let removed = watchers.remove(&connection);
            if watchers.is_empty() {
                table.remove(&path);
            }
            if removed {
                self.forget(is_child, connection);
            }
        }
        debug_assert!(!self.data_per_connection.contains_key(&connection));
    }

    fn take(&mut self, is_child: bool, path: &str) -> HashSet<ConnectionId> {
        let table = if is_child { &mut self.child } else { &mut self.data };
        let watchers = table.remove(path).unwrap_or_default();
        for &connection in &watchers {
            if let Some(entries) = self.by_connection.get_mut(&connection) {
                entries.remove(&(is_child, Box::from(path)));
            }
            self.forget(is_child, connection);
        }
        watchers
    }

    /// Fires the watches a change triggers, removing them, and calls `deliver` for each
    /// (connection, event type, path), in a deterministic order.
    pub fn fire(&mut self, trigger: &Trigger, mut deliver: impl FnMut(ConnectionId, EventType, &str)) {
        let mut send = |watchers: HashSet<ConnectionId>, event: EventType, path: &str| {
            let mut watchers: Vec<_> = watchers.into_iter().collect();
            watchers.sort_unstable();
            for connection in watchers {
                deliver(connection, event, path);
            }
        };
        match trigger {
            Trigger::Created(path) => send(self.take(false, path), EventType::NodeCreated, path),
            Trigger::DataChanged(path) => send(self.take(false, path), EventType::NodeDataChanged, path),
            Trigger::ChildrenChanged(path) => send(self.take(true, path), EventType::NodeChildrenChanged, path),
            Trigger::Deleted(path) => {
                let mut watchers = self.take(false, path);
                watchers.extend(self.take(true, path));
                send(watchers, EventType::NodeDeleted, path);
            }
        }
    }

    /// What the watch words report. ZooKeeper's `wchs`, `wchc` and `wchp` count data
    /// watches (getData and exists) only; `mntr`'s zk_watch_count counts child watches too.
    pub fn summary(&self) -> WatchSummary {
        let data_watches = self.data.values().map(HashSet::len).sum::<usize>();
        let child_watches = self.child.values().map(HashSet::len).sum::<usize>();
        let data_connections = self.by_connection.values().filter(|e| e.iter().any(|(is_child, _)| !is_child)).count();
        WatchSummary {
            data_connections,
            data_paths: self.data.len(),
            data_watches,
            all_watches: data_watches + child_watches,
        }
    }

    /// Data-watched paths of each connection, sorted, for `wchc`.
    pub fn data_paths_by_connection(&self) -> Vec<(ConnectionId, Vec<&str>)> {
        let mut listing: Vec<(ConnectionId, Vec<&str>)> = self
            .by_connection
            .iter()
            .map(|(connection, entries)| {
                let mut paths: Vec<&str> =
                    entries.iter().filter(|(is_child, _)| !is_child).map(|(_, path)| &**path).collect();
                paths.sort_unstable();
                (*connection, paths)
            })
            .filter(|(_, paths)| !paths.is_empty())
            .collect();
        listing.sort_unstable();
        listing
    }

    /// Connections data-watching each path, sorted, for `wchp`.
    pub fn data_watchers_by_path(&self) -> Vec<(&str, Vec<ConnectionId>)> {
        let mut listing: Vec<(&str, Vec<ConnectionId>)> = self
            .data
            .iter()
            .map(|(path, watchers)| {
                let mut watchers: Vec<ConnectionId> = watchers.iter().copied().collect();
                watchers.sort_unstable();
                (&**path, watchers)
            })
            .collect();
        listing.sort_unstable();
        listing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fired(registry: &mut WatchRegistry, trigger: Trigger) -> Vec<(ConnectionId, EventType)> {
        let mut events = Vec::new();
        registry.fire(&trigger, |connection, event, _| events.push((connection, event)));
        events
    }

    #[test]
    fn a_watch_fires_once() {
        let mut registry = WatchRegistry::default();
        registry.add_data_watch("/a", 1);
        assert_eq!(fired(&mut registry, Trigger::DataChanged("/a".into())), vec![(1, EventType::NodeDataChanged)]);
        assert!(fired(&mut registry, Trigger::DataChanged("/a".into())).is_empty());
        assert_eq!(registry.summary(), WatchSummary::default());
    }

    #[test]
    fn delete_fires_data_and_child_watches_once_per_connection() {
        let mut registry = WatchRegistry::default();
        registry.add_data_watch("/a", 1);
        registry.add_child_watch("/a", 1);
        registry.add_child_watch("/a", 2);
        assert_eq!(
            fired(&mut registry, Trigger::Deleted("/a".into())),
            vec![(1, EventType::NodeDeleted), (2, EventType::NodeDeleted)]
        );
    }

    #[test]
    fn a_closed_connection_loses_its_watches() {
        let mut registry = WatchRegistry::default();
        registry.add_data_watch("/a", 1);
        registry.add_child_watch("/b", 1);
        registry.remove_connection(1);
        assert_eq!(registry.summary(), WatchSummary::default());
        assert!(fired(&mut registry, Trigger::Created("/a".into())).is_empty());
    }
}
