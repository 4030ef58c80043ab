//! Consensus: how an ensemble agrees on one order of transactions. `core` is the
//! protocol as a pure state machine (messages, time and a seed in; messages, log writes and
//! commits out); `simulator` drives several of them through a faulty network and disks
//! and checks the guarantees at every step. The server only moves bytes between the core,
//! the sockets and the log.

pub mod core;
pub mod history;
pub mod message;
pub mod payload;
pub mod record_batch;
pub mod simulator;
pub mod zxid;
