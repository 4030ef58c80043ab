//! Watch notifications (`WatcherEvent` in zookeeper.jute, event types from
//! `Watcher.Event.EventType`).

use super::jute::Writer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum EventType {
    None = -1,
    NodeCreated = 1,
    NodeDeleted = 2,
    NodeDataChanged = 3,
    NodeChildrenChanged = 4,
    DataWatchRemoved = 5,
    ChildWatchRemoved = 6,
    PersistentWatchRemoved = 7,
}

/// `KeeperState.SyncConnected`: the only state a server sends with a node event.
pub const STATE_SYNC_CONNECTED: i32 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: EventType,
    pub state: i32,
    pub path: String,
}

impl WatcherEvent {
    pub fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_i32(self.event_type as i32);
        writer.write_i32(self.state);
        writer.write_str(&self.path);
    }
}
