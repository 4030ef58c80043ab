//! The ZooKeeper client wire protocol (jute): framing, the handshake, requests, replies,
//! error codes and watch events. Sans-IO: bytes in, records out, and back.

pub mod acl;
pub mod connect;
pub mod error_code;
pub mod four_letter;
pub mod frame;
pub mod jute;
pub mod opcode;
pub mod request;
pub mod response;
pub mod stat;
pub mod watch_event;

pub use error_code::ErrorCode;
pub use stat::Stat;
