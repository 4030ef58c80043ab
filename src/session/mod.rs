//! Sessions: the global session table kept by the ordering point, each core's watch
//! registry, and the request execution that runs on the session's core.

pub mod auth;
pub mod reads;
pub mod replies;
pub mod table;
pub mod watcher_set;
pub mod watches;

pub use table::SessionTable;
pub use watches::{ConnectionId, WatchRegistry, WatchTable, WatcherType};
