//! Watch notifications (`WatcherEvent` in zookeeper.jute, event types from
//! `Watcher.Event.EventType`).

use super::jute::{DecodeError, Reader, Writer};

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

impl EventType {
    pub fn from_code(code: i32) -> Option<EventType> {
        use EventType::*;
        [
            None,
            NodeCreated,
            NodeDeleted,
            NodeDataChanged,
            NodeChildrenChanged,
            DataWatchRemoved,
            ChildWatchRemoved,
            PersistentWatchRemoved,
        ]
        .into_iter()
        .find(|event_type| *event_type as i32 == code)
    }
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

    pub fn decode(reader: &mut Reader<'_>) -> Result<WatcherEvent, DecodeError> {
        let code = reader.read_i32()?;
        let event_type = EventType::from_code(code).ok_or(DecodeError::UnexpectedOpcode(code))?;
        Ok(WatcherEvent { event_type, state: reader.read_i32()?, path: reader.read_string()? })
    }
}
