//! One core's watch registry, for the connections this core owns, laid out as ZooKeeper
//! 3.8 lays it out: two tables (`DataTree.dataWatches` and `childWatches`), each mapping a
//! path to the connections watching it and each watch's mode (`WatcherMode`: standard,
//! persistent or persistent-recursive).
//!
//! - getData and exists put a standard watch in the data table, getChildren one in the
//!   child table; addWatch (either mode) puts the path in both tables (3.8's
//!   `DataTree.addWatch`; 3.9 leaves recursive watches out of the child table).
//! - A table holds one mode per (connection, path): a later watch replaces the mode, so a
//!   standard watch set where the connection holds a persistent one turns it into a
//!   one-shot watch in that table (`WatcherModeManager.setWatcherMode`).
//! - Firing follows `DataTree` and `WatchManager.triggerWatch`: a create fires NodeCreated
//!   from the data table for the node and NodeChildrenChanged from the child table for
//!   its parent; a delete fires NodeDeleted from the data table and then from the child
//!   table (skipping connections the data table already notified) for the node, and
//!   NodeChildrenChanged for its parent; a setData fires NodeDataChanged from the data
//!   table. A table's watches on the path itself fire (standard ones are removed); a
//!   recursive watch on the path or any path above it fires for every event except
//!   NodeChildrenChanged. Each connection gets at most one event per table and change.
//! - removeWatches and checkWatches name a table (Children, Data, or Any for both).
//!   removeWatches takes the connection's watch out of the named tables only; checkWatches
//!   answers whether the table holds the path for any connection
//!   (`WatchManager.containsWatcher` looks at the path's watcher set, not at the caller).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::watcher_set::WatcherSet;
use crate::proto::watch_event::EventType;
use crate::tree::data_tree::PathHasher;
use crate::tree::Trigger;

/// A connection's identity on its core.
pub type ConnectionId = u64;

/// ZooKeeper's two watch tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchTable {
    Data,
    Child,
}

/// The mode of one watch in one table (`WatcherMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchMode {
    /// Fires once and is removed.
    Standard,
    /// Stays after firing; fires for its own path only.
    Persistent,
    /// Stays after firing; fires for its path and every path below it, never with
    /// NodeChildrenChanged.
    Recursive,
}

/// The `WatcherType` of removeWatches and checkWatches: which tables they look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatcherType {
    Children,
    Data,
    Any,
}

impl WatcherType {
    /// Children 1, Data 2, Any 3; None for another code, which ZooKeeper 3.8 cannot read.
    pub fn from_code(code: i32) -> Option<WatcherType> {
        match code {
            1 => Some(WatcherType::Children),
            2 => Some(WatcherType::Data),
            3 => Some(WatcherType::Any),
            _ => None,
        }
    }

    /// The tables, in the order ZooKeeper visits them (`DataTree.removeWatch`: child table
    /// first for Any).
    fn tables(self) -> &'static [WatchTable] {
        match self {
            WatcherType::Children => &[WatchTable::Child],
            WatcherType::Data => &[WatchTable::Data],
            WatcherType::Any => &[WatchTable::Child, WatchTable::Data],
        }
    }
}

/// What the watch words report (ZooKeeper's `WatchesSummary` of the data table, and
/// `DataTree.getWatchCount` for mntr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchSummary {
    /// Connections that set a data-table watch since they opened (`wchs`).
    pub data_connections: usize,
    /// Paths in the data table.
    pub data_paths: usize,
    /// Watches in the data table.
    pub data_watches: usize,
    /// Watches in both tables (`zk_watch_count`).
    pub all_watches: usize,
}

/// One table: path -> (connection -> mode). A path is allocated once, when it enters the
/// table, and shared (by reference count) with the reverse index and the path changes, so
/// a watch costs its entry in the path's set and one in its connection's index.
#[derive(Debug, Default)]
struct Table {
    by_path: HashMap<Arc<str>, WatcherSet, PathHasher>,
    /// Watches in the table, kept as they come and go so the four-letter words cost
    /// nothing.
    watch_count: usize,
    /// Recursive watches in the table: with none, firing looks at the path only
    /// (`WatchManager.getPathParentIterator`).
    recursive_count: usize,
    /// Paths that entered (true) or left (false) the table since the owner last took
    /// them (`WatchRegistry::take_path_changes`).
    path_changes: Vec<(Arc<str>, bool)>,
}

impl Table {
    /// Sets the mode of a watch; returns the table's copy of the path if the watch is new.
    fn set(&mut self, path: &str, connection: ConnectionId, mode: WatchMode) -> Option<Arc<str>> {
        let shared = match self.by_path.get_key_value(path) {
            Some((shared, _)) => shared.clone(),
            None => {
                let shared: Arc<str> = Arc::from(path);
                self.by_path.insert(shared.clone(), WatcherSet::default());
                self.path_changes.push((shared.clone(), true));
                shared
            }
        };
        let previous = self.by_path.get_mut(path).expect("inserted above").insert(connection, mode);
        self.recursive_count += usize::from(mode == WatchMode::Recursive);
        self.recursive_count -= usize::from(previous == Some(WatchMode::Recursive));
        self.watch_count += usize::from(previous.is_none());
        previous.is_none().then_some(shared)
    }

    /// Removes a watch; returns the table's copy of the path if it was there.
    fn remove(&mut self, path: &str, connection: ConnectionId) -> Option<Arc<str>> {
        let watchers = self.by_path.get_mut(path)?;
        let mode = watchers.remove(connection)?;
        let shared = if watchers.is_empty() {
            let (shared, _) = self.by_path.remove_entry(path).expect("just found");
            self.path_changes.push((shared.clone(), false));
            shared
        } else {
            self.by_path.get_key_value(path).expect("just found").0.clone()
        };
        self.watch_count -= 1;
        self.recursive_count -= usize::from(mode == WatchMode::Recursive);
        Some(shared)
    }
}

#[derive(Debug, Default)]
pub struct WatchRegistry {
    data: Table,
    child: Table,
    /// Reverse index, for dropping a connection's watches.
    by_connection: HashMap<ConnectionId, BTreeSet<(WatchTable, Arc<str>)>>,
    /// Connections that set a data-table watch since they opened: ZooKeeper's
    /// `WatchManager.watch2Paths` keeps a connection's (possibly empty) entry until the
    /// connection closes, and `wchs` and `wchc` count and list it.
    data_watchers: BTreeSet<ConnectionId>,
}

impl WatchRegistry {
    fn table(&self, table: WatchTable) -> &Table {
        match table {
            WatchTable::Data => &self.data,
            WatchTable::Child => &self.child,
        }
    }

    fn table_mut(&mut self, table: WatchTable) -> &mut Table {
        match table {
            WatchTable::Data => &mut self.data,
            WatchTable::Child => &mut self.child,
        }
    }

    /// getData and exists: a standard watch in the data table.
    pub fn add_data_watch(&mut self, path: &str, connection: ConnectionId) {
        self.set(WatchTable::Data, path, connection, WatchMode::Standard);
    }

    /// getChildren: a standard watch in the child table.
    pub fn add_child_watch(&mut self, path: &str, connection: ConnectionId) {
        self.set(WatchTable::Child, path, connection, WatchMode::Standard);
    }

    /// addWatch: PERSISTENT (mode 0) or PERSISTENT_RECURSIVE (mode 1), in both tables.
    pub fn add_persistent_watch(&mut self, path: &str, connection: ConnectionId, recursive: bool) {
        let mode = if recursive { WatchMode::Recursive } else { WatchMode::Persistent };
        self.set(WatchTable::Data, path, connection, mode);
        self.set(WatchTable::Child, path, connection, mode);
    }

    fn set(&mut self, table: WatchTable, path: &str, connection: ConnectionId, mode: WatchMode) {
        if let Some(shared) = self.table_mut(table).set(path, connection, mode) {
            self.by_connection.entry(connection).or_default().insert((table, shared));
        }
        if table == WatchTable::Data {
            self.data_watchers.insert(connection);
        }
    }

    /// Removes one watch; true if it was there.
    fn remove(&mut self, table: WatchTable, path: &str, connection: ConnectionId) -> bool {
        let Some(shared) = self.table_mut(table).remove(path, connection) else {
            return false;
        };
        let entries = self.by_connection.get_mut(&connection).expect("indexed when added");
        let indexed = entries.remove(&(table, shared));
        assert!(indexed, "watch on {path} missing from the reverse index");
        if entries.is_empty() {
            self.by_connection.remove(&connection);
        }
        true
    }

    /// Forgets every watch of a closed connection.
    pub fn remove_connection(&mut self, connection: ConnectionId) {
        let entries = self.by_connection.remove(&connection).unwrap_or_default();
        for (table, path) in entries {
            let removed = self.table_mut(table).remove(&path, connection);
            assert!(removed.is_some(), "indexed watch on {path} missing from its table");
        }
        self.data_watchers.remove(&connection);
        assert!(!self.by_connection.contains_key(&connection));
    }

    /// removeWatches: takes the connection's watch on `path` out of the tables the type
    /// names; false (NoWatcher) if none of them held one.
    pub fn remove_watches(&mut self, path: &str, connection: ConnectionId, watcher_type: WatcherType) -> bool {
        let mut removed = false;
        for &table in watcher_type.tables() {
            removed |= self.remove(table, path, connection);
        }
        removed
    }

    /// checkWatches: whether a table the type names holds `path`, for any connection of
    /// this registry.
    #[cfg(test)]
    pub fn has_watch(&self, path: &str, watcher_type: WatcherType) -> bool {
        watcher_type.tables().iter().any(|&table| self.table(table).by_path.contains_key(path))
    }

    /// The number of recursive watches in a table.
    pub fn recursive_count(&self, table: WatchTable) -> usize {
        self.table(table).recursive_count
    }

    /// Whether paths entered or left a table since the last `take_path_changes`.
    pub fn has_path_changes(&self) -> bool {
        !self.data.path_changes.is_empty() || !self.child.path_changes.is_empty()
    }

    /// Hands over the paths that entered (true) or left (false) each table since the last
    /// call, in order, so the server can answer checkWatches for connections of every
    /// core. The owner must call it regularly: the changes pile up until then.
    pub fn take_path_changes(&mut self, mut change: impl FnMut(WatchTable, Arc<str>, bool)) {
        for table in [WatchTable::Data, WatchTable::Child] {
            for (path, present) in std::mem::take(&mut self.table_mut(table).path_changes) {
                change(table, path, present);
            }
        }
    }

    /// `WatchManager.triggerWatch` on one table: the connections to notify of `event` on
    /// `path`, sorted and once each. Standard watches on the path are removed.
    fn trigger(&mut self, table: WatchTable, path: &str, event: EventType) -> Vec<ConnectionId> {
        let mut watchers = Vec::new();
        let mut fired_once = Vec::new();
        let fires_recursive = event != EventType::NodeChildrenChanged;
        if let Some(entries) = self.table(table).by_path.get(path) {
            for (connection, mode) in entries.iter() {
                match mode {
                    WatchMode::Recursive if !fires_recursive => {}
                    WatchMode::Recursive | WatchMode::Persistent => watchers.push(connection),
                    WatchMode::Standard => {
                        watchers.push(connection);
                        fired_once.push(connection);
                    }
                }
            }
        }
        for connection in fired_once {
            self.remove(table, path, connection);
        }
        let table = self.table(table);
        if fires_recursive && table.recursive_count > 0 {
            for ancestor in ancestors(path) {
                let Some(entries) = table.by_path.get(ancestor) else { continue };
                watchers.extend(
                    entries.iter().filter(|&(_, mode)| mode == WatchMode::Recursive).map(|(connection, _)| connection),
                );
            }
        }
        watchers.sort_unstable();
        watchers.dedup();
        watchers
    }

    /// Fires the watches a change triggers and calls `deliver` once per (connection,
    /// event). The caller still checks that the connection may read the node before it
    /// sends the event; a standard watch is used up either way.
    pub fn fire(&mut self, trigger: &Trigger, mut deliver: impl FnMut(ConnectionId, EventType, &str)) {
        let (event, path) = match trigger {
            Trigger::Created { path, .. } => (EventType::NodeCreated, path),
            Trigger::DataChanged { path, .. } => (EventType::NodeDataChanged, path),
            Trigger::ChildrenChanged { path, .. } => (EventType::NodeChildrenChanged, path),
            Trigger::Deleted { path, .. } => (EventType::NodeDeleted, path),
        };
        match trigger {
            Trigger::Created { .. } | Trigger::DataChanged { .. } => {
                for connection in self.trigger(WatchTable::Data, path, event) {
                    deliver(connection, event, path);
                }
            }
            Trigger::ChildrenChanged { .. } => {
                for connection in self.trigger(WatchTable::Child, path, event) {
                    deliver(connection, event, path);
                }
            }
            Trigger::Deleted { .. } => {
                let notified = self.trigger(WatchTable::Data, path, event);
                for &connection in &notified {
                    deliver(connection, event, path);
                }
                for connection in self.trigger(WatchTable::Child, path, event) {
                    if notified.binary_search(&connection).is_err() {
                        deliver(connection, event, path);
                    }
                }
            }
        }
    }

    /// What the watch words report. ZooKeeper's `wchs`, `wchc` and `wchp` report the data
    /// table (standard data and exists watches, persistent and recursive ones);
    /// `mntr`'s zk_watch_count counts both tables.
    pub fn summary(&self) -> WatchSummary {
        WatchSummary {
            data_connections: self.data_watchers.len(),
            data_paths: self.data.by_path.len(),
            data_watches: self.data.watch_count,
            all_watches: self.data.watch_count + self.child.watch_count,
        }
    }

    /// Data-table paths of each connection that set a data-table watch, sorted, for
    /// `wchc` (a connection whose watches all fired is listed with no paths).
    pub fn data_paths_by_connection(&self) -> Vec<(ConnectionId, Vec<&str>)> {
        self.data_watchers
            .iter()
            .map(|connection| {
                let paths: Vec<&str> = self
                    .by_connection
                    .get(connection)
                    .into_iter()
                    .flatten()
                    .filter(|(table, _)| *table == WatchTable::Data)
                    .map(|(_, path)| &**path)
                    .collect();
                (*connection, paths)
            })
            .collect()
    }

    /// Connections watching each path of the data table, sorted, for `wchp`.
    pub fn data_watchers_by_path(&self) -> Vec<(&str, Vec<ConnectionId>)> {
        let mut listing: Vec<(&str, Vec<ConnectionId>)> = self
            .data
            .by_path
            .iter()
            .map(|(path, watchers)| {
                let mut watchers: Vec<ConnectionId> = watchers.iter().map(|(connection, _)| connection).collect();
                watchers.sort_unstable();
                (&**path, watchers)
            })
            .collect();
        listing.sort_unstable();
        listing
    }
}

/// checkWatches on one table, as ZooKeeper 3.8's `WatchManager.containsWatcher` answers
/// it: whether the table holds `path` (for any connection). It walks the path with
/// `PathParentIterator` (the path alone, or with a recursive watch anywhere in the table
/// the path and its parents), which yields nothing for "" and computes each parent as it
/// hands out the path before it: for a part with no '/' left that is Java's
/// `substring(0, -1)`, which throws, and ZooKeeper answers MarshallingError. So "a" fails
/// at once, and "a/b" fails when the table has a recursive watch and does not hold "a/b".
pub fn contains_watcher(
    path: &str,
    table_has_recursive: bool,
    table_holds: impl Fn(&str) -> bool,
) -> Result<bool, crate::proto::ErrorCode> {
    let fails = || Err(crate::proto::ErrorCode::MarshallingError);
    if path.is_empty() {
        return Ok(false);
    }
    if path != "/" && !path.contains('/') {
        return fails();
    }
    if table_holds(path) {
        return Ok(true);
    }
    if table_has_recursive && !path.starts_with('/') {
        return fails();
    }
    Ok(false)
}

/// The paths above `path`, nearest first, ending with the root (`PathParentIterator`
/// after the path itself).
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = (path != "/" && !path.is_empty()).then_some(path);
    std::iter::from_fn(move || {
        let current = rest?;
        let parent = match current.rfind('/') {
            Some(0) => "/",
            Some(slash) => &current[..slash],
            None => return None,
        };
        rest = (parent != "/").then_some(parent);
        Some(parent)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn created(path: &str) -> Trigger {
        Trigger::Created { path: path.into(), acl_id: 0 }
    }

    fn data_changed(path: &str) -> Trigger {
        Trigger::DataChanged { path: path.into(), acl_id: 0 }
    }

    fn children_changed(path: &str) -> Trigger {
        Trigger::ChildrenChanged { path: path.into(), acl_id: 0 }
    }

    fn deleted(path: &str) -> Trigger {
        Trigger::Deleted { path: path.into(), acl_id: 0 }
    }

    fn fired(registry: &mut WatchRegistry, trigger: Trigger) -> Vec<(ConnectionId, EventType)> {
        let mut events = Vec::new();
        registry.fire(&trigger, |connection, event, _| events.push((connection, event)));
        events
    }

    #[test]
    fn ancestors_run_up_to_the_root() {
        assert_eq!(ancestors("/a/b/c").collect::<Vec<_>>(), ["/a/b", "/a", "/"]);
        assert_eq!(ancestors("/a").collect::<Vec<_>>(), ["/"]);
        assert!(ancestors("/").next().is_none());
    }

    #[test]
    fn a_standard_watch_fires_once() {
        let mut registry = WatchRegistry::default();
        registry.add_data_watch("/a", 1);
        assert_eq!(fired(&mut registry, data_changed("/a")), vec![(1, EventType::NodeDataChanged)]);
        assert!(fired(&mut registry, data_changed("/a")).is_empty());
        // ZooKeeper keeps counting the connection in wchs until it closes.
        assert_eq!(registry.summary(), WatchSummary { data_connections: 1, ..WatchSummary::default() });
    }

    #[test]
    fn delete_fires_data_and_child_watches_once_per_connection() {
        let mut registry = WatchRegistry::default();
        registry.add_data_watch("/a", 1);
        registry.add_child_watch("/a", 1);
        registry.add_child_watch("/a", 2);
        assert_eq!(fired(&mut registry, deleted("/a")), vec![(1, EventType::NodeDeleted), (2, EventType::NodeDeleted)]);
    }

    #[test]
    fn a_closed_connection_loses_its_watches() {
        let mut registry = WatchRegistry::default();
        registry.add_data_watch("/a", 1);
        registry.add_child_watch("/b", 1);
        registry.add_persistent_watch("/c", 1, true);
        registry.remove_connection(1);
        assert_eq!(registry.summary(), WatchSummary::default());
        assert!(fired(&mut registry, created("/a")).is_empty());
        assert!(fired(&mut registry, created("/c/d")).is_empty());
    }

    #[test]
    fn a_persistent_watch_sees_data_and_children_of_its_node_and_stays() {
        let mut registry = WatchRegistry::default();
        registry.add_persistent_watch("/p", 1, false);
        for _ in 0..2 {
            assert_eq!(fired(&mut registry, data_changed("/p")), vec![(1, EventType::NodeDataChanged)]);
            assert_eq!(fired(&mut registry, children_changed("/p")), vec![(1, EventType::NodeChildrenChanged)]);
        }
        assert!(fired(&mut registry, data_changed("/p/child")).is_empty());
    }

    #[test]
    fn a_recursive_watch_sees_the_subtree_but_not_child_lists() {
        let mut registry = WatchRegistry::default();
        registry.add_persistent_watch("/r", 1, true);
        registry.add_data_watch("/r/a/b", 1);
        assert_eq!(fired(&mut registry, created("/r/a/b")), vec![(1, EventType::NodeCreated)]);
        assert_eq!(fired(&mut registry, deleted("/r/a")), vec![(1, EventType::NodeDeleted)]);
        assert!(fired(&mut registry, children_changed("/r")).is_empty());
        assert!(fired(&mut registry, created("/rx")).is_empty());
    }

    #[test]
    fn a_recursive_watch_sits_in_the_child_table_too() {
        // ZooKeeper 3.8's DataTree.addWatch puts a recursive watch in both tables:
        // removeWatches(Children) finds it, and what is left in the child table still
        // fires NodeDeleted for the subtree (never NodeCreated or NodeDataChanged).
        let mut registry = WatchRegistry::default();
        registry.add_persistent_watch("/r", 1, true);
        assert!(registry.has_watch("/r", WatcherType::Children));
        assert!(registry.remove_watches("/r", 1, WatcherType::Data));
        assert!(!registry.has_watch("/r", WatcherType::Data));
        assert!(fired(&mut registry, created("/r/x")).is_empty());
        assert!(fired(&mut registry, data_changed("/r/x")).is_empty());
        assert_eq!(fired(&mut registry, deleted("/r/x")), vec![(1, EventType::NodeDeleted)]);
        assert!(registry.remove_watches("/r", 1, WatcherType::Children));
        assert!(!registry.remove_watches("/r", 1, WatcherType::Any));
    }

    #[test]
    fn removing_a_persistent_watch_from_one_table_leaves_the_other() {
        // removeWatches(Data) on a PERSISTENT watch: NodeChildrenChanged still fires.
        let mut registry = WatchRegistry::default();
        registry.add_persistent_watch("/j", 1, false);
        assert!(registry.remove_watches("/j", 1, WatcherType::Data));
        assert!(fired(&mut registry, data_changed("/j")).is_empty());
        assert_eq!(fired(&mut registry, children_changed("/j")), vec![(1, EventType::NodeChildrenChanged)]);
    }

    #[test]
    fn one_mode_per_connection_path_and_table() {
        let mut registry = WatchRegistry::default();
        // RECURSIVE replaces PERSISTENT: no NodeChildrenChanged any more.
        registry.add_persistent_watch("/h", 1, false);
        registry.add_persistent_watch("/h", 1, true);
        assert!(fired(&mut registry, children_changed("/h")).is_empty());
        assert_eq!(fired(&mut registry, created("/h/x")), vec![(1, EventType::NodeCreated)]);
        // A standard data watch replaces the persistent one in the data table only.
        registry.add_persistent_watch("/m", 1, false);
        registry.add_data_watch("/m", 1);
        assert_eq!(fired(&mut registry, data_changed("/m")), vec![(1, EventType::NodeDataChanged)]);
        assert!(fired(&mut registry, data_changed("/m")).is_empty());
        assert_eq!(fired(&mut registry, children_changed("/m")), vec![(1, EventType::NodeChildrenChanged)]);
        // A persistent watch replaces a standard one.
        registry.add_data_watch("/n", 1);
        registry.add_persistent_watch("/n", 1, false);
        assert_eq!(fired(&mut registry, data_changed("/n")), vec![(1, EventType::NodeDataChanged)]);
        assert_eq!(fired(&mut registry, data_changed("/n")), vec![(1, EventType::NodeDataChanged)]);
    }

    #[test]
    fn check_watches_sees_any_connections_watch_on_the_exact_path() {
        let mut registry = WatchRegistry::default();
        registry.add_data_watch("/d", 1);
        registry.add_persistent_watch("/r", 1, true);
        assert!(registry.has_watch("/d", WatcherType::Data));
        assert!(!registry.has_watch("/d", WatcherType::Children));
        assert!(registry.has_watch("/d", WatcherType::Any));
        // A recursive watch above the path does not count (WatchManager.containsWatcher).
        assert!(!registry.has_watch("/r/x", WatcherType::Data));
    }

    #[test]
    fn path_changes_report_paths_entering_and_leaving_a_table() {
        let mut registry = WatchRegistry::default();
        registry.add_data_watch("/a", 1);
        registry.add_data_watch("/a", 2);
        fired(&mut registry, data_changed("/a"));
        registry.add_persistent_watch("/p", 1, false);
        let mut changes = Vec::new();
        registry.take_path_changes(|table, path, present| changes.push((table, path.to_string(), present)));
        assert_eq!(
            changes,
            [
                (WatchTable::Data, "/a".to_owned(), true),
                (WatchTable::Data, "/a".to_owned(), false),
                (WatchTable::Data, "/p".to_owned(), true),
                (WatchTable::Child, "/p".to_owned(), true)
            ]
        );
        registry.take_path_changes(|_, _, _| panic!("taken already"));
    }

    #[test]
    fn contains_watcher_walks_paths_as_zookeepers_path_parent_iterator() {
        let holds = |path: &str| path == "a/b" || path.is_empty();
        let fails = Err(crate::proto::ErrorCode::MarshallingError);
        assert_eq!(contains_watcher("a", false, holds), fails);
        assert_eq!(contains_watcher("a/c", false, holds), Ok(false));
        assert_eq!(contains_watcher("a", true, holds), fails);
        assert_eq!(contains_watcher("a/b", true, holds), Ok(true));
        assert_eq!(contains_watcher("a/c", true, holds), fails);
        assert_eq!(contains_watcher("/a/c", true, holds), Ok(false));
        // The walk yields nothing for "", even with "" in the table.
        assert_eq!(contains_watcher("", false, holds), Ok(false));
        assert_eq!(contains_watcher("/", true, holds), Ok(false));
    }

    #[test]
    fn remove_watches_selects_tables() {
        let mut registry = WatchRegistry::default();
        registry.add_data_watch("/a", 1);
        registry.add_child_watch("/a", 1);
        assert!(registry.remove_watches("/a", 1, WatcherType::Data));
        assert!(!registry.remove_watches("/a", 1, WatcherType::Data));
        assert!(!registry.remove_watches("/a", 2, WatcherType::Any));
        assert!(registry.remove_watches("/a", 1, WatcherType::Any));
        assert!(!registry.has_watch("/a", WatcherType::Any));
    }

    #[test]
    fn the_summary_counts_the_data_table_and_mntr_both_tables() {
        // ZooKeeper 3.8 after addWatch /a PERSISTENT, /b RECURSIVE, exists /c watch and
        // getChildren / watch on one connection: wchs "1 connections watching 3 paths,
        // Total watches:3", zk_watch_count 6.
        let mut registry = WatchRegistry::default();
        registry.add_persistent_watch("/a", 1, false);
        registry.add_persistent_watch("/b", 1, true);
        registry.add_data_watch("/c", 1);
        registry.add_child_watch("/", 1);
        let summary = registry.summary();
        assert_eq!(summary, WatchSummary { data_connections: 1, data_paths: 3, data_watches: 3, all_watches: 6 });
        assert_eq!(registry.data_paths_by_connection(), vec![(1, vec!["/a", "/b", "/c"])]);
    }
}
