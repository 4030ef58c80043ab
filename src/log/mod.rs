//! The transaction log. Sans-IO: record framing (`record`), segment scanning (`segment`)
//! and the dump tool (`dump`). On disk: recovery of the segments found (`recovery`),
//! cutting a divergent tail (`truncate`), the epoch files and the snapshot files.

pub mod dump;
pub mod epoch_file;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod snapshot_file;
pub mod truncate;
