//! Human-readable and JSON listings of a log segment, as ZooKeeper's TxnLogToolkit prints
//! its logs. Sans-IO: takes the segment's bytes, returns text.

use std::fmt::Write as _;

use super::record::Records;
use super::segment::{self, SEGMENT_HEADER_BYTES};
use crate::txn::{data_of, ArchivedStep, ArchivedTxn, ArchivedTxnOp};

/// One line per record; a final line tells where the log ends and why.
pub fn dump(bytes: &[u8], json: bool) -> Result<String, String> {
    let scan = segment::scan(bytes).map_err(|error| format!("not a ringkeeper log segment: {error:?}"))?;
    let mut text = String::new();
    for record in Records::verified(&bytes[SEGMENT_HEADER_BYTES..scan.valid_end]) {
        let (_, txn) = record.map_err(|error| format!("{error:?}"))?;
        if json {
            text.push_str(&json_line(txn));
        } else {
            text.push_str(&text_line(txn));
        }
        text.push('\n');
    }
    let end = match &scan.damage {
        None => format!("EOF reached after {} txns.", scan.record_count),
        Some((offset, damage)) => format!(
            "{} txns, then {damage:?} at offset {offset}{}.",
            scan.record_count,
            if scan.valid_after_damage { " with valid records after it (corruption)" } else { " (torn tail)" }
        ),
    };
    if !json {
        text.push_str(&end);
        text.push('\n');
    }
    Ok(text)
}

/// (type, paths) of a transaction, for both formats.
fn describe(txn: &ArchivedTxn) -> (String, Vec<String>) {
    match &txn.op {
        ArchivedTxnOp::CreateSession { timeout_ms, .. } => (format!("createSession timeout={timeout_ms}"), vec![]),
        ArchivedTxnOp::CloseSession { ephemerals } => {
            ("closeSession".into(), ephemerals.iter().map(|path| path.to_string()).collect())
        }
        ArchivedTxnOp::Single(step) => {
            let (kind, path) = describe_step(step);
            (kind, path.into_iter().collect())
        }
        ArchivedTxnOp::EpochMarker => ("epoch".to_owned(), vec![]),
        ArchivedTxnOp::Multi { ops } => {
            let steps: Vec<(String, Option<String>)> = ops.iter().map(describe_step).collect();
            let kinds: Vec<&str> = steps.iter().map(|(kind, _)| kind.as_str()).collect();
            (format!("multi[{}]", kinds.join(",")), steps.into_iter().filter_map(|(_, path)| path).collect())
        }
    }
}

fn describe_step(step: &ArchivedStep) -> (String, Option<String>) {
    match step {
        ArchivedStep::Create(create) => {
            let kind = if create.ephemeral_owner.to_native() != 0 { "create(ephemeral)" } else { "create" };
            (format!("{kind} {}B", data_of(&create.data).map_or(0, <[u8]>::len)), Some(create.path.to_string()))
        }
        ArchivedStep::Delete { path } => ("delete".into(), Some(path.to_string())),
        ArchivedStep::SetData { path, data, version } => (
            format!("setData v{} {}B", version.to_native(), data_of(data).map_or(0, <[u8]>::len)),
            Some(path.to_string()),
        ),
        ArchivedStep::Check { path } => ("check".into(), Some(path.to_string())),
        ArchivedStep::SetAcl { path, version, .. } => {
            (format!("setACL v{}", version.to_native()), Some(path.to_string()))
        }
        ArchivedStep::Error { code } => (format!("error({})", code.to_native()), None),
    }
}

fn text_line(txn: &ArchivedTxn) -> String {
    let (kind, paths) = describe(txn);
    format!(
        "zxid 0x{:x} session 0x{:x} cxid 0x{:x} time {} {kind} {}",
        txn.zxid.to_native(),
        txn.session_id.to_native(),
        txn.cxid.to_native(),
        txn.time_ms.to_native(),
        paths.join(" ")
    )
}

fn json_line(txn: &ArchivedTxn) -> String {
    let (kind, paths) = describe(txn);
    let mut line = format!(
        "{{\"zxid\":{},\"session\":{},\"cxid\":{},\"time_ms\":{},\"type\":{},\"paths\":[",
        txn.zxid.to_native(),
        txn.session_id.to_native(),
        txn.cxid.to_native(),
        txn.time_ms.to_native(),
        json_string(&kind)
    );
    for (index, path) in paths.iter().enumerate() {
        if index > 0 {
            line.push(',');
        }
        line.push_str(&json_string(path));
    }
    line.push_str("]}");
    line
}

fn json_string(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('"');
    for c in value.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(quoted, "\\u{:04x}", c as u32);
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::append;
    use crate::txn::{Step, Txn, TxnOp};
    use rkyv::util::AlignedVec;

    #[test]
    fn a_dump_lists_every_record_and_the_end() {
        let mut bytes = AlignedVec::<16>::new();
        bytes.extend_from_slice(&segment::header(1));
        let op = TxnOp::Single(Step::Delete { path: "/a\"b".into() });
        append(&mut bytes, &Txn { session_id: 2, cxid: 3, zxid: 1, time_ms: 4, op });
        let text = dump(&bytes, false).unwrap();
        assert!(text.starts_with("zxid 0x1 session 0x2 cxid 0x3 time 4 delete /a\"b\n"), "{text}");
        assert!(text.ends_with("EOF reached after 1 txns.\n"));
        let json = dump(&bytes, true).unwrap();
        assert_eq!(
            json,
            "{\"zxid\":1,\"session\":2,\"cxid\":3,\"time_ms\":4,\"type\":\"delete\",\"paths\":[\"/a\\\"b\"]}\n"
        );
    }
}

/// A snapshot listing, as ZooKeeper's SnapshotFormatter prints one: every node with its
/// Stat and data length, then the sessions. JSON: one object per node and per session.
pub fn dump_snapshot(bytes: &[u8], json: bool) -> Result<String, String> {
    let image = crate::tree::snapshot::access(bytes).map_err(|error| format!("not a valid snapshot: {error:?}"))?;
    let mut text = String::new();
    if !json {
        let _ =
            writeln!(text, "ZNode Details (count={}), last zxid 0x{:x}:", image.nodes.len(), image.zxid.to_native());
    }
    // Listed by path, for a reader; the file holds them in the tree's own order.
    let mut nodes: Vec<_> = image.nodes.iter().collect();
    nodes.sort_unstable_by(|a, b| a.path.as_str().cmp(b.path.as_str()));
    for node in nodes {
        let data_length = node.data.as_ref().map_or(0, |data| data.len());
        let fields = [
            ("czxid", node.czxid.to_native()),
            ("mzxid", node.mzxid.to_native()),
            ("pzxid", node.pzxid.to_native()),
            ("ctime", node.ctime_ms.to_native()),
            ("mtime", node.mtime_ms.to_native()),
            ("version", node.version.to_native() as i64),
            ("cversion", node.cversion.to_native() as i64),
            ("aversion", node.aversion.to_native() as i64),
            ("ephemeralOwner", node.ephemeral_owner.to_native()),
            ("dataLength", data_length as i64),
        ];
        if json {
            let values: Vec<String> = fields.iter().map(|(name, value)| format!("\"{name}\":{value}")).collect();
            let _ = writeln!(text, "{{\"path\":{},{}}}", json_string(node.path.as_str()), values.join(","));
        } else {
            let _ = writeln!(text, "----\n{}", node.path.as_str());
            for (name, value) in fields {
                if name.ends_with("zxid") || name == "ephemeralOwner" {
                    let _ = writeln!(text, "  {name} = 0x{value:x}");
                } else {
                    let _ = writeln!(text, "  {name} = {value}");
                }
            }
        }
    }
    if !json {
        let _ = writeln!(text, "----\nSession Details (sid, timeout, ephemeralCount):");
    }
    for session in image.sessions.iter() {
        let id = session.session_id.to_native();
        let timeout_ms = session.timeout_ms.to_native();
        if json {
            let _ = writeln!(text, "{{\"session\":{id},\"timeout_ms\":{timeout_ms}}}");
        } else {
            let owned = image.nodes.iter().filter(|node| node.ephemeral_owner.to_native() == id).count();
            let _ = writeln!(text, "0x{id:x}, {timeout_ms}, {owned}");
        }
    }
    Ok(text)
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;

    #[test]
    fn a_snapshot_dump_lists_nodes_and_sessions() {
        let tree = crate::tree::DataTree::new();
        let bytes = crate::tree::snapshot::encode(&tree);
        let mut aligned = rkyv::util::AlignedVec::<16>::new();
        aligned.extend_from_slice(&bytes);
        let text = dump_snapshot(&aligned, false).unwrap();
        assert!(text.starts_with("ZNode Details (count=4)"), "{text}");
        assert!(text.contains("/zookeeper/config\n"));
        let json = dump_snapshot(&aligned, true).unwrap();
        assert_eq!(json.lines().count(), 4);
        assert!(dump_snapshot(&aligned[..10], false).is_err());
    }
}
