//! What each bench request is: the workloads and the request frames they send. Sans-IO:
//! frames are encoded into a caller's buffer by `proto`'s codec, the server's own.

use crate::proto::acl::Acl;
use crate::proto::request::{encode_request as encode_request_frame, CreateRequest, Request, WriteOp};
use crate::proto::{frame, opcode};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    Get,
    Set,
    Create,
    Delete,
    Exists,
    Children,
    /// `read_pct` percent getData, the rest setData (the ZooKeeper paper's mix).
    Mixed {
        read_pct: u32,
    },
    /// One writer (session 0) and watchers (the others) of one node: notification
    /// throughput and fan-out latency (`watch.rs`).
    Watch,
    /// Every session contends for one lock with the standard recipe (`lock.rs`).
    Lock,
    /// Connect, one create of an ephemeral, close, over and over (`churn.rs`).
    Churn,
}

impl Workload {
    pub fn parse(name: &str, read_pct: u32) -> Result<Workload, String> {
        Ok(match name {
            "get" => Workload::Get,
            "set" => Workload::Set,
            "create" => Workload::Create,
            "delete" => Workload::Delete,
            "exists" => Workload::Exists,
            "children" => Workload::Children,
            "mixed" => Workload::Mixed { read_pct: read_pct.min(100) },
            "watch" => Workload::Watch,
            "lock" => Workload::Lock,
            "churn" => Workload::Churn,
            other => {
                return Err(format!(
                    "unknown workload '{other}' (get, set, create, delete, exists, children, mixed, watch, \
                     lock, churn)"
                ))
            }
        })
    }

    pub fn name(&self) -> String {
        match self {
            Workload::Get => "get".into(),
            Workload::Set => "set".into(),
            Workload::Create => "create".into(),
            Workload::Delete => "delete".into(),
            Workload::Exists => "exists".into(),
            Workload::Children => "children".into(),
            Workload::Mixed { read_pct } => format!("mixed-{read_pct}"),
            Workload::Watch => "watch".into(),
            Workload::Lock => "lock".into(),
            Workload::Churn => "churn".into(),
        }
    }

    /// Whether the workload is a recipe with its own driver (one request at a time per
    /// session, so neither `--depth` pipelining nor `--rate` applies, except the watch
    /// writer's depth).
    pub fn is_recipe(&self) -> bool {
        matches!(self, Workload::Watch | Workload::Lock | Workload::Churn)
    }

    /// What one operation of the report is.
    pub fn unit(&self) -> &'static str {
        match self {
            Workload::Watch => "events",
            Workload::Lock => "acquisitions",
            Workload::Churn => "sessions",
            _ => "ops",
        }
    }
}

/// The root all bench nodes live under.
pub const ROOT: &str = "/ringkeeper-bench";

/// The parent of the create workload's sequential nodes (not ROOT: the children workload
/// must list a parent whose size does not depend on what ran before).
pub const CREATED: &str = "/ringkeeper-bench/created";

/// The parent the children workload lists, with `--keys` children.
pub const LISTED: &str = "/ringkeeper-bench/listed";

/// Encodes the `sequence`-th request of a session. Returns false when the workload has
/// nothing left to send (delete ran out of nodes).
#[allow(clippy::too_many_arguments)]
pub fn encode_request(
    buffer: &mut Vec<u8>,
    workload: Workload,
    xid: i32,
    session: usize,
    sequence: u64,
    keys: u64,
    value: &[u8],
    random: &mut u64,
) -> bool {
    let key = next_random(random) % keys.max(1);
    let get = || Request::GetData { path: key_path(key), watch: false };
    let set = || Request::Write(WriteOp::SetData { path: key_path(key), data: Some(value.to_vec()), version: -1 });
    let request = match workload {
        Workload::Get => get(),
        Workload::Exists => Request::Exists { path: key_path(key), watch: false },
        Workload::Children => Request::GetChildren { path: LISTED.to_owned(), watch: false, with_stat: false },
        Workload::Set => set(),
        Workload::Mixed { read_pct } => {
            if (next_random(random) % 100) < read_pct as u64 {
                get()
            } else {
                set()
            }
        }
        Workload::Create => Request::Write(WriteOp::Create(CreateRequest {
            opcode: opcode::CREATE,
            path: format!("{CREATED}/s{session}-c-"),
            data: Some(value.to_vec()),
            acl: vec![Acl::open_unsafe()],
            flags: PERSISTENT_SEQUENTIAL,
            ttl_ms: -1,
        })),
        Workload::Delete => {
            if sequence >= keys {
                return false;
            }
            Request::Write(WriteOp::Delete { path: owned_key_path(session, sequence), version: -1 })
        }
        Workload::Watch | Workload::Lock | Workload::Churn => {
            unreachable!("{} has its own driver and sends no pipelined requests", workload.name())
        }
    };
    encode_request_frame(buffer, xid, &request);
    true
}

/// `CreateMode.PERSISTENT_SEQUENTIAL`.
const PERSISTENT_SEQUENTIAL: i32 = 2;

/// `ROOT/k<key>`: the keys reads and writes use.
pub fn key_path(key: u64) -> String {
    format!("{ROOT}/k{key}")
}

/// The children the children workload lists: `LISTED/k<n>`.
pub fn listed_path(n: u64) -> String {
    format!("{LISTED}/k{n}")
}

/// The nodes a delete run removes: `ROOT/d<session>-<n>`, made during set-up.
pub fn owned_key_path(session: usize, n: u64) -> String {
    format!("{ROOT}/d{session}-{n}")
}

/// Appends the frame that opens a new session (30 s timeout, readOnly byte false).
pub fn encode_connect(buffer: &mut Vec<u8>) {
    let start = frame::begin(buffer);
    crate::proto::connect::ConnectRequest {
        protocol_version: 0,
        last_zxid_seen: 0,
        timeout_ms: 30_000,
        session_id: 0,
        password: vec![0; 16],
        read_only: Some(false),
    }
    .encode(buffer);
    frame::end(buffer, start);
}

/// xorshift64*: cheap, deterministic per session.
pub fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545F4914F6CDD1D)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::request::{decode_request, Request, WriteOp};

    #[test]
    fn requests_decode_as_the_workload_says() {
        let mut buffer = Vec::new();
        let mut random = 7;
        assert!(encode_request(&mut buffer, Workload::Set, 5, 0, 0, 10, b"vv", &mut random));
        let (header, request) = decode_request(&buffer[4..]).unwrap();
        assert_eq!(header.xid, 5);
        let Request::Write(WriteOp::SetData { path, data, version }) = request else { panic!("{request:?}") };
        assert!(path.starts_with("/ringkeeper-bench/k"));
        assert_eq!((data.as_deref(), version), (Some(&b"vv"[..]), -1));
        buffer.clear();
        assert!(!encode_request(&mut buffer, Workload::Delete, 1, 0, 10, 10, b"", &mut random));
        assert!(buffer.is_empty());
    }
}
