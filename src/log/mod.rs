//! The transaction log: record framing and segment files (sans-IO), recovery of the
//! segments found on disk, and a bounded in-memory view of recent batches.

pub mod dump;
pub mod epoch_file;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod snapshot_file;
pub mod truncate;
