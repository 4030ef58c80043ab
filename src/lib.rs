//! Ringkeeper: a coordination service that speaks the Apache ZooKeeper client protocol.
//!
//! Layers, lowest first: `proto` (the wire protocol), `tree` (the data tree), `txn` (the
//! transaction record), `log` (record framing and the log's files), `consensus` (how an
//! ensemble agrees on one order), `session` (sessions, watches, request execution) and
//! `server` (the runtime: executors, sockets, the log writer, peer links), and `admin`
//! (the operations endpoints: AdminServer commands, `/ready`, Prometheus). `bench` is the
//! load generator and `ensemble_local` the one-command loopback ensemble.
//!
//! `proto`, `tree`, `txn`, `consensus`, `session` and `log`'s framing and scanning do
//! no I/O: time and randomness are inputs, so tests, fuzzers and the simulator drive them.
//! `log`'s recovery, truncation and snapshot files read and write the data directory.

pub mod admin;
pub mod bench;
/// Dates from day counts, for the dates ZooKeeper prints (also built into `build.rs`).
pub mod calendar;
pub mod config;
pub mod consensus;
pub mod ensemble_local;
pub mod import;
pub mod java_hash;
pub mod log;
pub mod proto;
pub mod server;
pub(crate) mod session;
pub mod tls;
pub mod tree;
pub mod txn;
