//! The transaction log: record framing (sans-IO) and, until the durable segment log
//! lands, a bounded in-memory log of committed batches.

pub mod memory_log;
pub mod record;

pub use memory_log::MemoryLog;
