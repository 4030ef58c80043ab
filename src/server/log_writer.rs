//! The log writer on core 0: appends each published batch to the current segment through
//! io_uring, and rolls to a new preallocated segment when one is full. With forceSync the
//! segment is opened O_DSYNC, so one write operation both writes and makes the batch
//! durable (what a write followed by fdatasync does, in one submission). A batch is acknowledged only after the
//! fdatasync that covers it returned; batches are as large as what arrived while the
//! previous fdatasync was in flight, so one fdatasync covers many transactions.

use std::io;
use std::path::{Path, PathBuf};

use glommio::io::{BufferedFile, OpenOptions};

use crate::log::segment::{self, SEGMENT_HEADER_BYTES};

pub struct LogWriter {
    dir: PathBuf,
    file: Option<BufferedFile>,
    /// Where the next batch goes in the current segment.
    offset: u64,
    /// The current segment's preallocated size.
    capacity: u64,
    segment_size_bytes: u64,
    force_sync: bool,
    pub fsync_count: u64,
    pub bytes_written: u64,
}

impl LogWriter {
    /// Opens the log for appending after `tail` (the last segment and its valid end), or
    /// starts a fresh log when there is none.
    pub async fn open(
        dir: &Path,
        tail: Option<(&Path, u64)>,
        segment_size_bytes: u64,
        force_sync: bool,
    ) -> io::Result<LogWriter> {
        let mut writer = LogWriter {
            dir: dir.to_owned(),
            file: None,
            offset: 0,
            capacity: 0,
            segment_size_bytes,
            force_sync,
            fsync_count: 0,
            bytes_written: 0,
        };
        if let Some((path, valid_end)) = tail {
            let file = open_options(force_sync).read(true).write(true).buffered_open(path).await?;
            writer.capacity = file.file_size().await?;
            writer.offset = valid_end;
            assert!(writer.offset >= SEGMENT_HEADER_BYTES as u64 && writer.offset <= writer.capacity);
            writer.file = Some(file);
        }
        Ok(writer)
    }

    /// Appends one batch of framed records whose first zxid is `first_zxid`, and makes it
    /// durable (unless forceSync is off).
    pub async fn append(&mut self, batch: &[u8], first_zxid: i64) -> io::Result<()> {
        assert!(!batch.is_empty());
        assert_eq!(batch.len() % 16, 0, "batches are whole frames");
        if self.file.is_none() || self.offset + batch.len() as u64 > self.capacity {
            self.roll(first_zxid, batch.len() as u64).await?;
        }
        let file = self.file.as_ref().expect("a segment is open");
        write_all_at(file, batch, self.offset).await?;
        self.offset += batch.len() as u64;
        self.bytes_written += batch.len() as u64;
        if self.force_sync {
            // The O_DSYNC write above returned only once the batch was durable.
            self.fsync_count += 1;
        }
        Ok(())
    }

    /// Closes the current segment (synced), before the log is cut or replaced.
    pub async fn close(mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            file.fdatasync().await?;
            file.close().await?;
        }
        Ok(())
    }

    /// Closes the current segment (synced) and starts a new one named after `first_zxid`.
    async fn roll(&mut self, first_zxid: i64, batch_bytes: u64) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            file.fdatasync().await?;
            file.close().await?;
        }
        let path = self.dir.join(segment::file_name(first_zxid));
        let capacity = self.segment_size_bytes.max(SEGMENT_HEADER_BYTES as u64 + batch_bytes);
        let file = open_options(self.force_sync).read(true).write(true).create_new(true).buffered_open(&path).await?;
        file.pre_allocate(capacity, false).await?;
        write_all_at(&file, &segment::header(first_zxid), 0).await?;
        file.fdatasync().await?;
        // The new file's directory entry must be durable too.
        std::fs::File::open(&self.dir)?.sync_all()?;
        tracing::info!(path = %path.display(), capacity, "new log segment");
        self.file = Some(file);
        self.offset = SEGMENT_HEADER_BYTES as u64;
        self.capacity = capacity;
        Ok(())
    }
}

fn open_options(force_sync: bool) -> OpenOptions {
    let mut options = OpenOptions::new();
    if force_sync {
        options.custom_flags(libc::O_DSYNC);
    }
    options
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
