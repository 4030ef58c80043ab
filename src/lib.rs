//! Ringkeeper: a coordination service that speaks the Apache ZooKeeper client protocol.
//!
//! Layers, lowest first: `proto` (the wire protocol), `tree` (the data tree), `txn` (the
//! transaction record), `log` (record framing and the log), `consensus` (the ordering
//! point), `session` (sessions, watches, request execution) and `server` (the runtime).
//! Everything below `server` is free of I/O.

pub mod bench;
pub mod config;
pub mod consensus;
pub mod ensemble_local;
pub mod log;
pub mod proto;
pub mod server;
pub mod session;
pub mod tree;
pub mod txn;
