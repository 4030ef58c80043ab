//! Cutting the log back (ZooKeeper's TRUNC): a follower drops records a new leader never
//! had. Segments that start after the cut are removed, the records after it in the
//! segment that holds it are zeroed, and everything is synced before the caller goes on.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::record::frame_end_after;
use super::recovery::segment_files;
use super::segment::{self, SEGMENT_HEADER_BYTES};

/// Cuts the log in `dir` after `after_zxid`. Returns the last segment left and where
/// appending resumes in it, or None if no segment is left.
pub fn truncate_after(dir: &Path, after_zxid: i64) -> std::io::Result<Option<(PathBuf, u64)>> {
    let mut tail = None;
    for (first_zxid, path) in
        segment_files(dir).map_err(|error| std::io::Error::other(error.to_string()))?.into_iter().rev()
    {
        if first_zxid > after_zxid {
            std::fs::remove_file(&path)?;
            continue;
        }
        let bytes = std::fs::read(&path)?;
        let scan =
            segment::scan(&bytes).map_err(|error| std::io::Error::other(format!("{}: {error:?}", path.display())))?;
        let records = &bytes[SEGMENT_HEADER_BYTES..scan.valid_end];
        let cut = SEGMENT_HEADER_BYTES + frame_end_after(records, after_zxid);
        if cut < scan.valid_end {
            let mut file = OpenOptions::new().write(true).open(&path)?;
            file.seek(SeekFrom::Start(cut as u64))?;
            file.write_all(&vec![0; scan.valid_end - cut])?;
            file.sync_data()?;
        }
        tail = Some((path, cut as u64));
        break;
    }
    std::fs::File::open(dir)?.sync_all()?;
    Ok(tail)
}
