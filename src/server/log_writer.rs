//! The log writer on core 0: appends each published batch to the current segment (on the
//! executor's thread or through io_uring, `WritePath`), and rolls to a new preallocated
//! segment when one is full. The next segment
//! is written with zeros ahead of need (see `NextSegment`). With forceSync the
//! segment is opened O_DSYNC, so one write operation both writes and makes the batch
//! durable (what a write followed by fdatasync does, in one submission). A batch is acknowledged only after the
//! fdatasync that covers it returned; batches are as large as what arrived while the
//! previous fdatasync was in flight, so one fdatasync covers many transactions.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::io::{BufferedFile, OpenOptions};

use crate::log::segment::{self, SEGMENT_HEADER_BYTES};

pub struct LogWriter {
    dir: PathBuf,
    file: Option<BufferedFile>,
    /// Where the next batch goes in the current segment.
    offset: u64,
    /// The current segment's preallocated size.
    capacity: u64,
    /// The current segment was only fallocated by this writer (no prepared one was
    /// ready), so it is left for a prepared one as soon as one is ready. False for a
    /// prepared segment and for a reopened tail, which are left when full.
    leave_when_prepared: bool,
    segment_size_bytes: u64,
    force_sync: bool,
    write_path: WritePath,
    next: NextSegment,
    pub fsync_count: u64,
}

/// How a batch's write is issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePath {
    /// `pwrite` on the executor's own thread, which waits for the disk: a standalone
    /// server, where the write is what every request of the batch waits for anyway.
    /// io_uring hands an O_DSYNC write to a kernel worker thread (the write must wait for
    /// the disk) and wakes the executor when it is done: two thread switches per batch.
    /// A lone set on two cores: p50 0.286 / 0.255 -> 0.247 / 0.238 ms, 157 / 144 -> 116 /
    /// 110 us of server CPU; 64 x 16 sets 310k / 285k -> 361k / 362k per second (A/B,
    /// `ringkeeper bench`). Its cost: while the disk stalls, the sessions of core 0 wait
    /// for it (the ordering point tells session expiry, `Leader::held_in_write`); in
    /// ZooKeeper's standalone server every read waits behind a pending sync as well.
    Executor,
    /// io_uring: an ensemble member's core 0 must go on answering its peers while a slow
    /// disk holds a write (a stalled leader keeps its followers until syncLimit).
    Ring,
}

/// The files the next segment is prepared in (`log.prepared.<n>`), until a roll renames
/// one; the suffix keeps a cancelled fill's file apart from the next one's.
const NEXT_SEGMENT_PREFIX: &str = "log.prepared.";
const ZERO_FILL_CHUNK_BYTES: usize = 1 << 20;
/// How much a segment that was only fallocated takes before the next one is prepared:
/// enough that a server that writes little (a test's) never writes a segment of zeros.
const EARLY_PREPARE_BYTES: u64 = 1 << 20;
/// O_DIRECT writes go in whole pages from page-aligned memory.
const PAGE_BYTES: usize = 4096;

/// The next segment, written once with zeros by a thread of its own while the current one
/// fills. On ext4 a write into space that was only fallocated also commits the extent's
/// conversion to written, one more journal commit per O_DSYNC write into a fresh block;
/// into zeros already written there is none (`cargo bench --bench log -- append_pwrite`:
/// a 16-record batch 69 against 101 us, 256 records 99 against 151 us). ZooKeeper pads
/// its logs too. Preparing starts once the current segment is half full, so a server
/// that writes little never writes the extra segment; in a segment this writer only
/// fallocated (a fresh log's first, or one made when no prepared segment was ready), once
/// `EARLY_PREPARE_BYTES` are written, and the log moves to the prepared segment as soon as
/// it is ready rather than when the current one is full (a fresh server otherwise wrote
/// into fallocated space for its first 64 MiB). If that preparing fails, the segment is
/// kept until full.
struct NextSegment {
    dir: PathBuf,
    filling: Option<Filling>,
    size_bytes: u64,
}

struct Filling {
    path: PathBuf,
    thread: std::thread::JoinHandle<io::Result<()>>,
    cancelled: Arc<AtomicBool>,
}

impl NextSegment {
    /// Leftovers of an earlier writer may be partly written: they are removed.
    fn new(dir: &Path, size_bytes: u64) -> io::Result<NextSegment> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_str().is_some_and(|name| name.starts_with(NEXT_SEGMENT_PREFIX)) {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(NextSegment { dir: dir.to_owned(), filling: None, size_bytes })
    }

    fn start(&mut self) {
        if self.filling.is_some() {
            return;
        }
        static FILLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let fill = FILLS.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{NEXT_SEGMENT_PREFIX}{fill}"));
        let size_bytes = self.size_bytes;
        let cancelled = Arc::new(AtomicBool::new(false));
        let (cancel, fill_path) = (cancelled.clone(), path.clone());
        let thread = std::thread::Builder::new()
            .name("log-zero-fill".into())
            .spawn(move || fill_with_zeros(&fill_path, size_bytes, &cancel));
        match thread {
            Ok(thread) => self.filling = Some(Filling { path, thread, cancelled }),
            Err(error) => tracing::warn!(%error, "cannot start preparing the next log segment"),
        }
    }

    /// Whether a prepared file is complete (or its preparing failed).
    fn is_ready(&self) -> bool {
        self.filling.as_ref().is_some_and(|filling| filling.thread.is_finished())
    }

    /// The prepared file, if it is complete: the caller renames it into place.
    fn take(&mut self) -> Option<PathBuf> {
        if !self.is_ready() {
            return None;
        }
        let Filling { path, thread, .. } = self.filling.take().expect("checked above");
        match thread.join() {
            Ok(Ok(())) => return Some(path),
            Ok(Err(error)) => tracing::warn!(%error, "preparing the next log segment failed"),
            Err(_) => tracing::warn!("the thread preparing the next log segment panicked"),
        }
        // A partly written file would otherwise stay until the log is next opened.
        if let Err(error) = std::fs::remove_file(&path) {
            if error.kind() != io::ErrorKind::NotFound {
                tracing::warn!(%error, path = %path.display(), "cannot remove a failed prepared log segment");
            }
        }
        None
    }
}

impl Drop for NextSegment {
    /// A fill in progress is told to stop and remove its file, without waiting for it on
    /// the executor: it writes a file of its own that no later writer takes.
    fn drop(&mut self) {
        if let Some(filling) = self.filling.take() {
            filling.cancelled.store(true, Ordering::Relaxed);
        }
    }
}

/// Writes `size_bytes` of zeros (rounded up to whole pages) into a new file at `path` and
/// makes them durable, a chunk at a time, stopping early (with an error) once `cancelled`
/// is set. O_DIRECT, so the fill leaves no dirty pages whose writeback would queue in
/// front of the log's O_DSYNC writes; from a background thread (idle I/O class).
fn fill_with_zeros(path: &Path, size_bytes: u64, cancelled: &AtomicBool) -> io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    super::placement::run_in_background();
    let open =
        |flags| std::fs::OpenOptions::new().write(true).create(true).truncate(true).custom_flags(flags).open(path);
    // A file system without O_DIRECT refuses it with EINVAL: fill through the page cache.
    let file = match open(libc::O_DIRECT) {
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => open(0)?,
        opened => opened?,
    };
    let mut zeros = rkyv::util::AlignedVec::<PAGE_BYTES>::with_capacity(ZERO_FILL_CHUNK_BYTES);
    zeros.resize(ZERO_FILL_CHUNK_BYTES, 0);
    let size_bytes = size_bytes.next_multiple_of(PAGE_BYTES as u64);
    let mut offset = 0u64;
    while offset < size_bytes {
        if cancelled.load(Ordering::Relaxed) {
            drop(file);
            std::fs::remove_file(path)?;
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        let length = (size_bytes - offset).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..length], offset)?;
        offset += length as u64;
    }
    file.sync_all()?;
    if cancelled.load(Ordering::Relaxed) {
        std::fs::remove_file(path)?;
        return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
    }
    Ok(())
}

impl LogWriter {
    /// Opens the log for appending after `tail` (the last segment and its valid end), or
    /// starts a fresh log when there is none.
    pub async fn open(
        dir: &Path,
        tail: Option<(&Path, u64)>,
        segment_size_bytes: u64,
        force_sync: bool,
        write_path: WritePath,
    ) -> io::Result<LogWriter> {
        let mut writer = LogWriter {
            dir: dir.to_owned(),
            file: None,
            offset: 0,
            capacity: 0,
            leave_when_prepared: false,
            segment_size_bytes,
            force_sync,
            write_path,
            next: NextSegment::new(dir, segment_size_bytes)?,
            fsync_count: 0,
        };
        if let Some((path, valid_end)) = tail.filter(|&(_, valid_end)| valid_end > SEGMENT_HEADER_BYTES as u64) {
            let file = open_options(force_sync).read(true).write(true).buffered_open(path).await?;
            writer.capacity = file.file_size().await?;
            writer.offset = valid_end;
            assert!(writer.offset >= SEGMENT_HEADER_BYTES as u64 && writer.offset <= writer.capacity);
            writer.file = Some(file);
        } else if let Some((path, _)) = tail {
            // A cut left no record in it: the next record need not have the zxid it is
            // named after, so the next append starts a segment of its own.
            std::fs::remove_file(path)?;
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(writer)
    }

    /// Appends one batch of framed records whose first zxid is `first_zxid`, and makes it
    /// durable (unless forceSync is off). Returns how long the write held the executor's
    /// thread (`WritePath::Executor`; nothing through io_uring).
    pub async fn append(&mut self, batch: &[u8], first_zxid: i64) -> io::Result<Duration> {
        assert!(!batch.is_empty());
        assert_eq!(batch.len() % 16, 0, "batches are whole frames");
        let batch_bytes = batch.len() as u64;
        let fits = SEGMENT_HEADER_BYTES as u64 + batch_bytes <= self.segment_size_bytes;
        if self.file.is_none() || self.offset + batch_bytes > self.capacity {
            let prepared = if fits { self.next.take() } else { None };
            self.roll(first_zxid, batch_bytes, prepared).await?;
        } else if fits && self.leave_when_prepared && self.next.is_ready() {
            match self.next.take() {
                Some(prepared) => self.roll(first_zxid, batch_bytes, Some(prepared)).await?,
                None => self.leave_when_prepared = false,
            }
        }
        let file = self.file.as_ref().expect("a segment is open");
        let held = match self.write_path {
            WritePath::Executor => {
                let started = Instant::now();
                write_all_at_here(file, batch, self.offset)?;
                started.elapsed()
            }
            WritePath::Ring => {
                write_all_at(file, batch, self.offset).await?;
                Duration::ZERO
            }
        };
        self.offset += batch_bytes;
        if self.offset * 2 >= self.capacity || (self.leave_when_prepared && self.offset >= EARLY_PREPARE_BYTES) {
            self.next.start();
        }
        if self.force_sync {
            // The O_DSYNC write above returned only once the batch was durable.
            self.fsync_count += 1;
        }
        Ok(held)
    }

    /// Closes the current segment (synced), before the log is cut or replaced.
    pub async fn close(mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            file.fdatasync().await?;
            file.close().await?;
        }
        Ok(())
    }

    /// Closes the current segment (synced) and starts a new one named after `first_zxid`:
    /// the `prepared` file, or else a fallocated one.
    async fn roll(&mut self, first_zxid: i64, batch_bytes: u64, prepared: Option<PathBuf>) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            file.fdatasync().await?;
            file.close().await?;
        }
        let path = self.dir.join(segment::file_name(first_zxid));
        let (file, capacity, zero_filled) = match prepared {
            Some(prepared) => {
                glommio::io::rename(&prepared, &path).await?;
                let file = open_options(self.force_sync).read(true).write(true).buffered_open(&path).await?;
                (file, self.segment_size_bytes, true)
            }
            None => {
                let capacity = self.segment_size_bytes.max(SEGMENT_HEADER_BYTES as u64 + batch_bytes);
                let file =
                    open_options(self.force_sync).read(true).write(true).create_new(true).buffered_open(&path).await?;
                reserve(&file, capacity).await?;
                (file, capacity, false)
            }
        };
        write_all_at(&file, &segment::header(first_zxid), 0).await?;
        file.fdatasync().await?;
        // The new file's directory entry must be durable too.
        sync_directory(&self.dir).await?;
        tracing::info!(path = %path.display(), capacity, zero_filled, "new log segment");
        self.file = Some(file);
        self.offset = SEGMENT_HEADER_BYTES as u64;
        self.capacity = capacity;
        self.leave_when_prepared = !zero_filled;
        Ok(())
    }
}

/// Makes a directory's entries durable on a blocking thread: while a slow disk holds the
/// sync, core 0 goes on serving and heartbeating (an ensemble's peers would otherwise take
/// the silence for a dead member).
async fn sync_directory(dir: &Path) -> io::Result<()> {
    let dir = dir.to_owned();
    glommio::executor().spawn_blocking(move || std::fs::File::open(&dir)?.sync_all()).await
}

/// Reserves a new segment's space. A file system without fallocate (ZFS before 2.2, FUSE
/// file systems, some NFS servers) refuses with EOPNOTSUPP: the file is then only
/// extended. Its hole reads as zeros, as fallocated space does, so recovery finds the
/// log's end the same way; the difference is that a full disk shows at a later write
/// rather than at the roll. ZooKeeper itself never fallocates: it pads with writes.
async fn reserve(file: &BufferedFile, capacity: u64) -> io::Result<()> {
    match file.pre_allocate(capacity, false).await.map_err(io::Error::from) {
        Err(error) if error.kind() == io::ErrorKind::Unsupported => {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(%error, "the file system cannot preallocate; log segments are extended instead");
            }
            Ok(file.truncate(capacity).await?)
        }
        result => result,
    }
}

fn open_options(force_sync: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    if force_sync {
        options.custom_flags(libc::O_DSYNC);
    }
    options
}

/// `write_all_at` on this thread: `pwrite` straight from `bytes`, no copy.
fn write_all_at_here(file: &BufferedFile, bytes: &[u8], mut position: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut written = 0;
    while written < bytes.len() {
        let rest = &bytes[written..];
        // SAFETY: `rest` is valid for reads of its length; the descriptor is the open
        // segment's, which `file` keeps open through the call.
        let count =
            unsafe { libc::pwrite(file.as_raw_fd(), rest.as_ptr().cast(), rest.len(), position as libc::off_t) };
        match count {
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => continue,
            -1 => return Err(io::Error::last_os_error()),
            0 => return Err(io::Error::new(io::ErrorKind::WriteZero, "log write wrote nothing")),
            count => {
                written += count as usize;
                position += count as u64;
            }
        }
    }
    Ok(())
}

async fn write_all_at(file: &BufferedFile, bytes: &[u8], mut position: u64) -> io::Result<()> {
    let mut written = 0;
    while written < bytes.len() {
        let count = file.write_at(bytes[written..].to_vec(), position).await?;
        if count == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "log write wrote nothing"));
        }
        written += count;
        position += count as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::record::append as append_record;
    use crate::txn::{Step, Txn, TxnOp};
    use rkyv::util::AlignedVec;

    const SEGMENT_BYTES: u64 = 64 * 1024;

    fn batch(first_zxid: i64, records: i64) -> AlignedVec<16> {
        let mut bytes = AlignedVec::<16>::new();
        for zxid in first_zxid..first_zxid + records {
            let op = TxnOp::Single(Step::Delete { path: format!("/node-{zxid:08}") });
            append_record(&mut bytes, &Txn { session_id: 1, cxid: 1, zxid, time_ms: 0, op });
        }
        bytes
    }

    fn wait_until_prepared(writer: &LogWriter) {
        for _ in 0..60_000 {
            if writer.next.is_ready() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("the next segment was not prepared within a minute");
    }

    #[test]
    fn a_fresh_log_leaves_its_fallocated_first_segment_for_a_zero_filled_one_once_one_is_ready() {
        const LARGE_SEGMENT_BYTES: u64 = 8 << 20;
        let dir = std::env::temp_dir().join(format!("ringkeeper-log-writer-early-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let recovered_dir = dir.clone();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let mut writer =
                    LogWriter::open(&dir, None, LARGE_SEGMENT_BYTES, true, WritePath::Executor).await.unwrap();
                let mut zxid = 1;
                while writer.offset < EARLY_PREPARE_BYTES {
                    writer.append(&batch(zxid, 256), zxid).await.unwrap();
                    zxid += 256;
                }
                assert!(writer.leave_when_prepared, "a fresh log's first segment is only fallocated");
                assert!(writer.offset * 2 < writer.capacity, "far from half full");
                wait_until_prepared(&writer);
                writer.append(&batch(zxid, 16), zxid).await.unwrap();
                assert!(!writer.leave_when_prepared, "the next append went to the prepared segment");
                assert_eq!(writer.offset, SEGMENT_HEADER_BYTES as u64 + batch(zxid, 16).len() as u64);
                writer.close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(crate::log::recovery::segment_files(&recovered_dir).unwrap().len(), 2);
        let log = crate::log::recovery::recover(&recovered_dir).unwrap();
        let zxids: Vec<i64> = log.records().map(|(zxid, _)| zxid).collect();
        assert_eq!(zxids, (1..=*zxids.last().unwrap()).collect::<Vec<_>>(), "every record, in order");
        std::fs::remove_dir_all(&recovered_dir).unwrap();
    }

    #[test]
    fn a_full_segment_rolls_into_the_zero_filled_one_prepared_while_it_filled() {
        let dir = std::env::temp_dir().join(format!("ringkeeper-log-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let recovered_dir = dir.clone();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let mut writer = LogWriter::open(&dir, None, SEGMENT_BYTES, true, WritePath::Executor).await.unwrap();
                let mut zxid = 1;
                // Fill the first segment past half: preparing the next one starts.
                while writer.file.is_none() || writer.offset * 2 < writer.capacity {
                    writer.append(&batch(zxid, 16), zxid).await.unwrap();
                    zxid += 16;
                }
                wait_until_prepared(&writer);
                // The first segment was only fallocated: the next append leaves it for the
                // prepared one. Fill that one past half, and to the end once the segment
                // after it is prepared: the roll renames the prepared file into place.
                writer.append(&batch(zxid, 16), zxid).await.unwrap();
                zxid += 16;
                assert!(!writer.leave_when_prepared, "in the prepared segment");
                let segments = || crate::log::recovery::segment_files(&dir).unwrap().len();
                assert_eq!(segments(), 2);
                while writer.offset * 2 < writer.capacity {
                    writer.append(&batch(zxid, 16), zxid).await.unwrap();
                    zxid += 16;
                }
                wait_until_prepared(&writer);
                while segments() == 2 {
                    writer.append(&batch(zxid, 16), zxid).await.unwrap();
                    zxid += 16;
                }
                let prepared = std::fs::read_dir(&dir)
                    .unwrap()
                    .filter(|entry| {
                        entry.as_ref().unwrap().file_name().to_str().unwrap().starts_with(NEXT_SEGMENT_PREFIX)
                    })
                    .count();
                assert_eq!(prepared, 0, "the prepared segment was taken");
                assert_eq!(writer.capacity, SEGMENT_BYTES);
                assert!(!writer.leave_when_prepared, "rolled into the prepared segment");
                writer.close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
        let log = crate::log::recovery::recover(&recovered_dir).unwrap();
        assert_eq!(crate::log::recovery::segment_files(&recovered_dir).unwrap().len(), 3);
        let zxids: Vec<i64> = log.records().map(|(zxid, _)| zxid).collect();
        assert_eq!(zxids, (1..=*zxids.last().unwrap()).collect::<Vec<_>>(), "every record, in order");
        std::fs::remove_dir_all(&recovered_dir).unwrap();
    }
}
