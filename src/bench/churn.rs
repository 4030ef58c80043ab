//! The churn workload: each session, in a loop, opens a new TCP connection and a new
//! session, creates one ephemeral node, and closes the session (opcode -11), waiting for
//! each step. A cycle's latency runs from the connect to the close's reply. The node has
//! the same path every cycle, so a server that answered the close before removing its
//! session's ephemerals would show NodeExists (-110) errors.

use std::time::Instant;

use super::client::{open_acl, Buffers, Client};
use super::session::SessionPlan;
use super::stats::{record, SessionStats};
use super::workload::ROOT;
use crate::proto::opcode;
use crate::proto::request::{CreateRequest, Request, WriteOp};

/// `CreateMode.EPHEMERAL`.
const EPHEMERAL: i32 = 1;

pub async fn drive(plan: &SessionPlan, stats: &mut SessionStats) -> std::io::Result<()> {
    let create = Request::Write(WriteOp::Create(CreateRequest {
        opcode: opcode::CREATE,
        path: format!("{ROOT}/e{}", plan.index),
        data: Some(plan.value.to_vec()),
        acl: open_acl(),
        flags: EPHEMERAL,
        ttl_ms: -1,
    }));
    let mut buffers = Buffers::new();
    let mut passed = 0u64;
    while Instant::now() < plan.schedule.stop_at {
        let started = Instant::now();
        let mut client = Client::connect(plan.server, buffers).await?;
        let (error, _) = client.call(&create, &mut passed).await?;
        client.close().await?;
        buffers = client.into_buffers();
        let now = Instant::now();
        if started >= plan.schedule.measure_from {
            record(stats, plan.schedule.measure_from, now.duration_since(started), now, error);
        }
    }
    Ok(())
}
