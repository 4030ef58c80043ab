//! The board: what all sessions of one run share, across generator threads and, with
//! `--procs`, across generator processes. It lives in one shared memory mapping of plain
//! atomics: the progress counter, the lock workload's count of holders and the watch
//! workload's send times. Anonymous for a single process; a file under /dev/shm that the
//! parent creates (and removes) and its children map, for several.
//!
//! Times on the board are nanoseconds of CLOCK_MONOTONIC, which every process of the
//! machine reads alike (`std::time::Instant` is the same clock, but opaque).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use memmap2::MmapMut;

use super::lock::LockBoard;
use super::watch::WatchBoard;

/// The mapping's contents. Zeroed memory is its initial state.
#[repr(C)]
struct Layout {
    /// Measured operations so far, for the progress bar.
    progress: AtomicU64,
    lock: LockBoard,
    watch: WatchBoard,
}

pub struct Board {
    map: MmapMut,
    /// The file behind the mapping, removed on drop by the process that created it.
    created: Option<PathBuf>,
}

impl Board {
    /// A board for the threads of this process only.
    pub fn anonymous() -> std::io::Result<Board> {
        let map = MmapMut::map_anon(std::mem::size_of::<Layout>())?;
        Ok(Board::checked(map, None))
    }

    /// A board in a new file, for this process and the generator processes it starts.
    pub fn create_shared() -> std::io::Result<Board> {
        let directory = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        static CREATED: AtomicU64 = AtomicU64::new(0);
        let sequence = CREATED.fetch_add(1, Ordering::Relaxed);
        let path = directory.join(format!("ringkeeper-bench-{}-{sequence}.board", std::process::id()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
        file.set_len(std::mem::size_of::<Layout>() as u64)?;
        // SAFETY: the file is ours (named by our pid) and only ever accessed through
        // atomics by the processes of this run.
        let map = unsafe { MmapMut::map_mut(&file)? };
        Ok(Board::checked(map, Some(path)))
    }

    /// The board a parent process created.
    pub fn open_shared(path: &Path) -> std::io::Result<Board> {
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        if file.metadata()?.len() < std::mem::size_of::<Layout>() as u64 {
            return Err(std::io::Error::other(format!("{} is not a bench board", path.display())));
        }
        // SAFETY: as in `create_shared`: accessed only through atomics.
        let map = unsafe { MmapMut::map_mut(&file)? };
        Ok(Board::checked(map, None))
    }

    fn checked(map: MmapMut, created: Option<PathBuf>) -> Board {
        assert!(map.len() >= std::mem::size_of::<Layout>());
        assert_eq!(map.as_ptr() as usize % std::mem::align_of::<Layout>(), 0, "mappings are page aligned");
        Board { map, created }
    }

    /// The file behind a shared board, for the generator processes to open.
    pub fn path(&self) -> Option<&Path> {
        self.created.as_deref()
    }

    fn layout(&self) -> &Layout {
        // SAFETY: the mapping is aligned and large enough (`checked`), lives as long as
        // `self`, zeroed memory is a valid `Layout` (atomics only), and it is never
        // accessed through a mutable reference.
        unsafe { &*(self.map.as_ptr() as *const Layout) }
    }

    pub fn lock(&self) -> &LockBoard {
        &self.layout().lock
    }

    pub fn watch(&self) -> &WatchBoard {
        &self.layout().watch
    }

    pub fn add_progress(&self, operations: u64) {
        self.layout().progress.fetch_add(operations, Ordering::Relaxed);
    }

    pub fn progress(&self) -> u64 {
        self.layout().progress.load(Ordering::Relaxed)
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        if let Some(path) = &self.created {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Now, on CLOCK_MONOTONIC, in nanoseconds.
fn clock_monotonic_ns() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid timespec to write into.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    assert_eq!(result, 0, "CLOCK_MONOTONIC is always available on Linux");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// An `Instant` and the CLOCK_MONOTONIC reading taken with it, once per process.
fn anchor() -> (Instant, u64) {
    static ANCHOR: OnceLock<(Instant, u64)> = OnceLock::new();
    *ANCHOR.get_or_init(|| (Instant::now(), clock_monotonic_ns()))
}

/// An instant as CLOCK_MONOTONIC nanoseconds, comparable across processes.
pub fn monotonic_ns(instant: Instant) -> u64 {
    let (anchor_instant, anchor_ns) = anchor();
    if instant >= anchor_instant {
        anchor_ns + instant.duration_since(anchor_instant).as_nanos() as u64
    } else {
        anchor_ns - anchor_instant.duration_since(instant).as_nanos() as u64
    }
}

/// The instant of a CLOCK_MONOTONIC reading (from this or another process).
pub fn instant_of(monotonic_ns: u64) -> Instant {
    let (anchor_instant, anchor_ns) = anchor();
    if monotonic_ns >= anchor_ns {
        anchor_instant + Duration::from_nanos(monotonic_ns - anchor_ns)
    } else {
        anchor_instant - Duration::from_nanos(anchor_ns - monotonic_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_through_the_monotonic_clock() {
        let now = Instant::now();
        for instant in [now, now + Duration::from_secs(3), now - Duration::from_millis(5)] {
            let back = instant_of(monotonic_ns(instant));
            let difference = if back > instant { back - instant } else { instant - back };
            assert!(difference < Duration::from_micros(1));
        }
        // The reading agrees with the kernel's clock within a millisecond.
        let skew = monotonic_ns(Instant::now()).abs_diff(clock_monotonic_ns());
        assert!(skew < 1_000_000, "skew {skew} ns");
    }

    #[test]
    fn a_shared_board_is_seen_by_every_mapping_and_removed_by_its_creator() {
        let created = Board::create_shared().expect("creates");
        let path = created.path().expect("file-backed").to_path_buf();
        let opened = Board::open_shared(&path).expect("opens");
        opened.add_progress(5);
        created.add_progress(2);
        assert_eq!(created.progress(), 7);
        drop(opened);
        drop(created);
        assert!(!path.exists());
    }
}
