//! The file the O_DSYNC floors write into (benches `log` and `round_trip`).

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// A new O_DSYNC file at `path` with `capacity_bytes` fallocated, and written once with
/// zeros if `zero_filled` (as a log padded ahead of its writes is): a write into space
/// only fallocated also commits the extent's conversion, into zeros it commits none.
pub fn prepared(path: &Path, capacity_bytes: usize, zero_filled: bool) -> std::fs::File {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DSYNC)
        .open(path)
        .expect("create floor file");
    // SAFETY: fallocate on a file descriptor we own, within i64 range.
    let allocated =
        unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&file), 0, 0, capacity_bytes as libc::off_t) };
    assert_eq!(allocated, 0, "fallocate");
    if zero_filled {
        let zeros = vec![0u8; 1 << 20];
        for offset in (0..capacity_bytes).step_by(zeros.len()) {
            file.write_all_at(&zeros[..zeros.len().min(capacity_bytes - offset)], offset as u64).expect("zero fill");
        }
    }
    file
}
