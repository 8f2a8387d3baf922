//! The fault-injection seam of the writer: every write and sync of the log file goes through
//! [`Faults`] first, so tests make the disk fail the way real disks do (EIO on fdatasync,
//! ENOSPC, EROFS) without needing one. Nothing sets it outside tests; unset, it costs an atomic
//! load per write and per sync.

use std::io;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// A failure a disk reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `EIO`: the device failed the operation.
    Io,
    /// `ENOSPC`: the filesystem is full.
    NoSpace,
    /// `EROFS`: the filesystem was remounted read-only.
    ReadOnly,
}

impl Fault {
    fn errno(self) -> i32 {
        match self {
            Fault::Io => 5,
            Fault::NoSpace => 28,
            Fault::ReadOnly => 30,
        }
    }
}

/// Faults the writer meets on purpose, until cleared. Shared: see [`super::Log::faults`].
#[derive(Debug, Default)]
pub struct Faults {
    writes: AtomicI32,
    syncs: AtomicI32,
    /// Writes longer than this fail with `ENOSPC` (0: no limit).
    room: AtomicU64,
    /// Every sync takes at least this many microseconds (0: as long as the disk takes).
    slow_sync_us: AtomicU64,
}

impl Faults {
    /// Every write of the log file fails with `fault` until [`Faults::clear`].
    pub fn fail_writes(&self, fault: Fault) {
        self.writes.store(fault.errno(), Ordering::Release);
    }

    /// Every fdatasync/fsync of the log file fails with `fault` until [`Faults::clear`]. The
    /// data written before it stays in the file, as it would in the page cache of a real disk
    /// whose writeback failed.
    pub fn fail_syncs(&self, fault: Fault) {
        self.syncs.store(fault.errno(), Ordering::Release);
    }

    /// Every write of more than `bytes` fails with `ENOSPC` until [`Faults::clear`], as on a
    /// disk with about that much room left: records fit, a chunk of preallocation does not.
    pub fn fail_writes_over(&self, bytes: u64) {
        self.room.store(bytes, Ordering::Release);
    }

    /// Every sync takes `d` longer, as on a slow or busy disk (records wait in the writer's
    /// queue meanwhile, unwritten), until [`Faults::clear`].
    pub fn slow_syncs(&self, d: std::time::Duration) {
        self.slow_sync_us
            .store(d.as_micros() as u64, Ordering::Release);
    }

    /// The disk works again.
    pub fn clear(&self) {
        self.writes.store(0, Ordering::Release);
        self.syncs.store(0, Ordering::Release);
        self.room.store(0, Ordering::Release);
        self.slow_sync_us.store(0, Ordering::Release);
    }

    /// Before a write of `len` bytes.
    pub(super) fn write(&self, len: usize) -> io::Result<()> {
        check(&self.writes)?;
        match self.room.load(Ordering::Acquire) {
            0 => Ok(()),
            room if len as u64 > room => Err(io::Error::from_raw_os_error(Fault::NoSpace.errno())),
            _ => Ok(()),
        }
    }

    // The writer's own thread stands for a disk that takes this long: blocking it is the point.
    #[allow(clippy::disallowed_methods)]
    pub(super) fn sync(&self) -> io::Result<()> {
        match self.slow_sync_us.load(Ordering::Acquire) {
            0 => {}
            us => std::thread::sleep(std::time::Duration::from_micros(us)),
        }
        check(&self.syncs)
    }
}

fn check(errno: &AtomicI32) -> io::Result<()> {
    match errno.load(Ordering::Acquire) {
        0 => Ok(()),
        e => Err(io::Error::from_raw_os_error(e)),
    }
}
