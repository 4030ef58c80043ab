//! The churn workload: each session, in a loop, opens a new TCP connection and a new
//! session, creates one ephemeral node, and closes the session (opcode -11), waiting for
//! each step. A cycle's latency runs from the connect to the close's reply. The node has
//! the same path every cycle, so a server that answered the close before removing its
//! session's ephemerals would show NodeExists (-110) errors.

use std::time::Instant;

use super::client::{reply_error, write_open_acl, Buffers, Client};
use super::session::SessionPlan;
use super::stats::{record, SessionStats};
use super::workload::ROOT;
use crate::proto::opcode;

/// `ROOT/e<session>` in a stack buffer.
fn ephemeral_path(buffer: &mut [u8; 96], session: usize) -> &[u8] {
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{ROOT}/e{session}"));
    let length = cursor.position() as usize;
    &buffer[..length]
}

pub async fn drive(plan: &SessionPlan, stats: &mut SessionStats) -> std::io::Result<()> {
    let mut path_buffer = [0u8; 96];
    let path = ephemeral_path(&mut path_buffer, plan.index);
    let mut buffers = Buffers::new();
    let mut passed = 0u64;
    while Instant::now() < plan.schedule.stop_at {
        let started = Instant::now();
        let mut client = Client::connect(plan.server, buffers).await?;
        let xid = client.request(opcode::CREATE, |writer| {
            writer.write_bytes(path);
            writer.write_bytes(&plan.value);
            write_open_acl(writer);
            writer.write_i32(1); // EPHEMERAL
        });
        let error = reply_error(client.call(xid, &mut passed).await?);
        client.close().await?;
        buffers = client.into_buffers();
        let now = Instant::now();
        if started >= plan.schedule.measure_from {
            record(stats, plan.schedule.measure_from, now.duration_since(started), now, error);
        }
    }
    Ok(())
}
