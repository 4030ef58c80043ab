//! One core's watch registry, for the connections this core owns: standard (one-shot)
//! data watches (set by getData and exists) and child watches (getChildren), and the
//! persistent and persistent-recursive watches of addWatch, which stay after firing.
//!
//! Firing follows ZooKeeper's `DataTree` and `WatchManager`: a create fires NodeCreated
//! on the node's data watches and NodeChildrenChanged on the parent's child watches; a
//! delete fires NodeDeleted on the node's data and child watches and NodeChildrenChanged
//! on the parent's; a setData fires NodeDataChanged on data watches. A persistent watch
//! counts as both a data and a child watch on its path; a recursive one as a data watch on
//! its path and every path below it, and never sees NodeChildrenChanged. Each connection
//! gets at most one event per change.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::proto::watch_event::EventType;
use crate::tree::Trigger;

/// A connection's identity on its core.
pub type ConnectionId = u64;

/// The kinds of watch. removeWatches and checkWatches select them by `WatcherType`:
/// Children 1, Data 2, Any 3; a persistent watch sits in ZooKeeper's data and child tables
/// and a recursive one in the data table, so they answer to those types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    Data,
    Child,
    Persistent,
    Recursive,
}

impl WatchKind {
    /// The kinds a removeWatches/checkWatches type selects; None for an unknown type.
    pub fn selected_by(watcher_type: i32) -> Option<&'static [WatchKind]> {
        Some(match watcher_type {
            1 => &[WatchKind::Child, WatchKind::Persistent],
            2 => &[WatchKind::Data, WatchKind::Persistent, WatchKind::Recursive],
            3 => &[WatchKind::Data, WatchKind::Child, WatchKind::Persistent, WatchKind::Recursive],
            // ZooKeeper 3.8 cannot read other types in these requests.
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchSummary {
    pub data_connections: usize,
    pub data_paths: usize,
    pub data_watches: usize,
    pub all_watches: usize,
}

#[derive(Debug, Default)]
pub struct WatchRegistry {
    tables: HashMap<WatchKind, HashMap<Box<str>, HashSet<ConnectionId>>>,
    /// Reverse index, for dropping a connection's watches.
    by_connection: HashMap<ConnectionId, BTreeSet<(WatchKind, Box<str>)>>,
    /// Counts kept as watches come and go, so the four-letter words cost nothing.
    counts: HashMap<WatchKind, usize>,
    data_per_connection: HashMap<ConnectionId, usize>,
}

impl WatchRegistry {
    pub fn add_data_watch(&mut self, path: &str, connection: ConnectionId) {
        self.add(WatchKind::Data, path, connection);
    }

    pub fn add_child_watch(&mut self, path: &str, connection: ConnectionId) {
        self.add(WatchKind::Child, path, connection);
    }

    /// addWatch: PERSISTENT (mode 0) or PERSISTENT_RECURSIVE (mode 1).
    pub fn add_persistent_watch(&mut self, path: &str, connection: ConnectionId, recursive: bool) {
        self.add(if recursive { WatchKind::Recursive } else { WatchKind::Persistent }, path, connection);
    }

    fn add(&mut self, kind: WatchKind, path: &str, connection: ConnectionId) {
        if self.tables.entry(kind).or_default().entry(path.into()).or_default().insert(connection) {
            *self.counts.entry(kind).or_default() += 1;
            if kind == WatchKind::Data {
                *self.data_per_connection.entry(connection).or_default() += 1;
            }
            self.by_connection.entry(connection).or_default().insert((kind, path.into()));
        }
    }

    /// Removes one watch; true if it was there.
    fn remove(&mut self, kind: WatchKind, path: &str, connection: ConnectionId) -> bool {
        let Some(table) = self.tables.get_mut(&kind) else { return false };
        let Some(watchers) = table.get_mut(path) else { return false };
        if !watchers.remove(&connection) {
            return false;
        }
        if watchers.is_empty() {
            table.remove(path);
        }
        *self.counts.get_mut(&kind).expect("counted when added") -= 1;
        if kind == WatchKind::Data {
            let count = self.data_per_connection.get_mut(&connection).expect("counted when added");
            *count -= 1;
            if *count == 0 {
                self.data_per_connection.remove(&connection);
            }
        }
        if let Some(entries) = self.by_connection.get_mut(&connection) {
            entries.remove(&(kind, Box::from(path)));
            if entries.is_empty() {
                self.by_connection.remove(&connection);
            }
        }
        true
    }

    /// Forgets every watch of a closed connection.
    pub fn remove_connection(&mut self, connection: ConnectionId) {
        let entries = self.by_connection.get(&connection).cloned().unwrap_or_default();
        for (kind, path) in entries {
            self.remove(kind, &path, connection);
        }
        debug_assert!(!self.by_connection.contains_key(&connection));
        debug_assert!(!self.data_per_connection.contains_key(&connection));
    }

    /// removeWatches: drops the connection's watches of the selected kinds on `path`;
    /// false (NoWatcher) if there were none.
    pub fn remove_watches(&mut self, path: &str, connection: ConnectionId, kinds: &[WatchKind]) -> bool {
        let mut removed = false;
        for &kind in kinds {
            removed |= self.remove(kind, path, connection);
        }
        removed
    }

    /// checkWatches: whether the connection has a watch of the selected kinds on `path`.
    pub fn has_watch(&self, path: &str, connection: ConnectionId, kinds: &[WatchKind]) -> bool {
        kinds.iter().any(|kind| {
            self.tables
                .get(kind)
                .and_then(|table| table.get(path))
                .is_some_and(|watchers| watchers.contains(&connection))
        })
    }

    fn watchers(&self, kind: WatchKind, path: &str) -> impl Iterator<Item = ConnectionId> + '_ {
        self.tables.get(&kind).and_then(|table| table.get(path)).into_iter().flatten().copied()
    }

    /// Takes the standard watches of `kind` on `path`: they fire once.
    fn take(&mut self, kind: WatchKind, path: &str) -> Vec<ConnectionId> {
        let watchers: Vec<ConnectionId> = self.watchers(kind, path).collect();
        for &connection in &watchers {
            self.remove(kind, path, connection);
        }
        watchers
    }

    /// Connections with a recursive watch on `path` or any path above it.
    fn recursive_watchers(&self, path: &str) -> Vec<ConnectionId> {
        let Some(table) = self.tables.get(&WatchKind::Recursive) else { return Vec::new() };
        if table.is_empty() {
            return Vec::new();
        }
        let mut watchers = Vec::new();
        let mut prefix = path;
        loop {
            watchers.extend(table.get(prefix).into_iter().flatten().copied());
            if prefix == "/" || prefix.is_empty() {
                break;
            }
            prefix = match prefix.rfind('/') {
                Some(0) => "/",
                Some(slash) => &prefix[..slash],
                None => break,
            };
        }
        watchers
    }

    /// Fires the watches a change triggers, removing the standard ones, and calls
    /// `deliver` once per (connection, event), connections in order.
    pub fn fire(&mut self, trigger: &Trigger, mut deliver: impl FnMut(ConnectionId, EventType, &str)) {
        let (event, path, mut watchers) = match trigger {
            Trigger::Created(path) | Trigger::DataChanged(path) => {
                let event = if matches!(trigger, Trigger::Created(_)) {
                    EventType::NodeCreated
                } else {
                    EventType::NodeDataChanged
                };
                let mut watchers = self.take(WatchKind::Data, path);
                watchers.extend(self.watchers(WatchKind::Persistent, path));
                watchers.extend(self.recursive_watchers(path));
                (event, path, watchers)
            }
            Trigger::ChildrenChanged(path) => {
                let mut watchers = self.take(WatchKind::Child, path);
                watchers.extend(self.watchers(WatchKind::Persistent, path));
                (EventType::NodeChildrenChanged, path, watchers)
            }
            Trigger::Deleted(path) => {
                let mut watchers = self.take(WatchKind::Data, path);
                watchers.extend(self.take(WatchKind::Child, path));
                watchers.extend(self.watchers(WatchKind::Persistent, path));
                watchers.extend(self.recursive_watchers(path));
                (EventType::NodeDeleted, path, watchers)
            }
        };
        watchers.sort_unstable();
        watchers.dedup();
        for connection in watchers {
            deliver(connection, event, path);
        }
    }

    fn count(&self, kind: WatchKind) -> usize {
        self.counts.get(&kind).copied().unwrap_or(0)
    }

    /// What the watch words report. ZooKeeper's `wchs`, `wchc` and `wchp` count data
    /// watches (getData and exists) only; `mntr`'s zk_watch_count counts every watch.
    pub fn summary(&self) -> WatchSummary {
        let data_watches = self.count(WatchKind::Data);
        let all_watches = data_watches
            + self.count(WatchKind::Child)
            + self.count(WatchKind::Persistent)
            + self.count(WatchKind::Recursive);
        WatchSummary {
            data_connections: self.data_per_connection.len(),
            data_paths: self.tables.get(&WatchKind::Data).map_or(0, HashMap::len),
            data_watches,
            all_watches,
        }
    }

    /// Data-watched paths of each connection, sorted, for `wchc`.
    pub fn data_paths_by_connection(&self) -> Vec<(ConnectionId, Vec<&str>)> {
        let mut listing: Vec<(ConnectionId, Vec<&str>)> = self
            .by_connection
            .iter()
            .map(|(connection, entries)| {
                let paths: Vec<&str> =
                    entries.iter().filter(|(kind, _)| *kind == WatchKind::Data).map(|(_, path)| &**path).collect();
                (*connection, paths)
            })
            .filter(|(_, paths)| !paths.is_empty())
            .collect();
        listing.sort_unstable();
        listing
    }

    /// Connections data-watching each path, sorted, for `wchp`.
    pub fn data_watchers_by_path(&self) -> Vec<(&str, Vec<ConnectionId>)> {
        let Some(table) = self.tables.get(&WatchKind::Data) else { return Vec::new() };
        let mut listing: Vec<(&str, Vec<ConnectionId>)> = table
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
    fn a_standard_watch_fires_once() {
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
        registry.add_persistent_watch("/c", 1, true);
        registry.remove_connection(1);
        assert_eq!(registry.summary(), WatchSummary::default());
        assert!(fired(&mut registry, Trigger::Created("/a".into())).is_empty());
        assert!(fired(&mut registry, Trigger::Created("/c/d".into())).is_empty());
    }

    #[test]
    fn a_persistent_watch_sees_data_and_children_of_its_node_and_stays() {
        let mut registry = WatchRegistry::default();
        registry.add_persistent_watch("/p", 1, false);
        for _ in 0..2 {
            assert_eq!(fired(&mut registry, Trigger::DataChanged("/p".into())), vec![(1, EventType::NodeDataChanged)]);
            assert_eq!(
                fired(&mut registry, Trigger::ChildrenChanged("/p".into())),
                vec![(1, EventType::NodeChildrenChanged)]
            );
        }
        assert!(fired(&mut registry, Trigger::DataChanged("/p/child".into())).is_empty());
    }

    #[test]
    fn a_recursive_watch_sees_the_subtree_but_not_child_lists() {
        let mut registry = WatchRegistry::default();
        registry.add_persistent_watch("/r", 1, true);
        registry.add_data_watch("/r/a/b", 1);
        assert_eq!(fired(&mut registry, Trigger::Created("/r/a/b".into())), vec![(1, EventType::NodeCreated)]);
        assert_eq!(fired(&mut registry, Trigger::Deleted("/r/a".into())), vec![(1, EventType::NodeDeleted)]);
        assert!(fired(&mut registry, Trigger::ChildrenChanged("/r".into())).is_empty());
        assert!(fired(&mut registry, Trigger::Created("/rx".into())).is_empty());
    }

    #[test]
    fn remove_and_check_watches_select_by_kind() {
        let mut registry = WatchRegistry::default();
        registry.add_data_watch("/a", 1);
        registry.add_child_watch("/a", 1);
        assert!(registry.has_watch("/a", 1, WatchKind::selected_by(1).unwrap()));
        assert!(registry.remove_watches("/a", 1, WatchKind::selected_by(2).unwrap()));
        assert!(!registry.remove_watches("/a", 1, WatchKind::selected_by(2).unwrap()));
        assert!(registry.remove_watches("/a", 1, WatchKind::selected_by(3).unwrap()));
        assert!(!registry.has_watch("/a", 1, WatchKind::selected_by(3).unwrap()));
    }
}
