//! Room ahead of the records: the file is grown in zero-filled chunks ([`PREALLOCATE`]) before
//! the records need it, so a record overwrites bytes the file already has and its fdatasync
//! need not also commit a new file size (etcd preallocates its WAL segments, PostgreSQL recycles
//! zero-filled ones, for the same reason; docs/performance.md has this disk's figures). The
//! chunk is written with zeros, not `fallocate`d, so its blocks are written ones on any
//! filesystem (on ext4 a fallocated range is *unwritten* extents, converted as records land).
//!
//! The zeros after the last record read as the end of the log, never as damage or a torn batch
//! ([`super::format`]: a scan stops at the last non-zero byte).
//!
//! A disk that cannot spare a chunk (full, over quota) does not stop writes: the records are
//! then appended, the file growing with each batch, and the writer says so once in the log; it
//! tries a chunk again at most every [`RETRY`], and says so when one fits again. Only a write of
//! the records themselves that fails makes the writer refuse records ([`super::repair`]).

use std::{fs::File, io, os::unix::fs::FileExt, time::Duration};

// On the writer thread, outside any runtime, this is the real clock.
use tokio::time::Instant;
use tracing::{info, warn};

use super::Faults;
use super::writer::Writer;

/// How far ahead of the records the file is grown, zero-filled.
pub(super) const PREALLOCATE: u64 = 1 << 20;

/// What a repair's probe grows the file by when a whole chunk does not fit: one page.
pub(super) const PROBE_PAGE: u64 = 4 << 10;

/// How long a writer that could not preallocate appends before it tries a chunk again.
pub(super) const RETRY: Duration = Duration::from_secs(1);

impl Writer {
    /// Before the records up to `end` are written: grows the file to a chunk past `end` if
    /// they would not fit in what it has. Never fails: a disk that cannot spare the chunk
    /// leaves the file as it was, and the records' own write grows it.
    pub(super) fn make_room(&mut self, end: u64) {
        if end <= self.allocated
            || self
                .appending_since
                .is_some_and(|since| since.elapsed() < RETRY)
        {
            return;
        }
        // Not past the segment's size, unless one batch is larger.
        let grown = (end + PREALLOCATE).min(self.segment_bytes.max(end));
        match self.grow(&self.file, self.allocated, grown) {
            Ok(()) => {
                if let Some(since) = self.appending_since.take() {
                    info!(path = %self.path.display(), appended_ms = since.elapsed().as_millis() as u64, "journal preallocates again");
                }
                self.allocated = grown;
            }
            Err(e) => {
                // Give back what the failed chunk took: the disk is short of room.
                let _ = self.file.set_len(self.allocated);
                if self.appending_since.is_none() {
                    warn!(path = %self.path.display(), chunk = PREALLOCATE, error = %e, "journal cannot preallocate: appending records instead (each sync also commits the file's new size) until a chunk fits");
                }
                self.appending_since = Some(Instant::now());
            }
        }
    }

    /// A repair's probe of the disk: grows the file from `from` by a chunk of zeros and syncs,
    /// or, when the chunk does not fit, by one page (the writer then appends, as
    /// [`Writer::make_room`] does). Returns how long the file now is; fails while not even a
    /// page can be written and synced (full, read-only, failing). A failed probe gives back
    /// what it took.
    pub(super) fn probe_room(&mut self, file: &File, from: u64) -> io::Result<u64> {
        let probe = |to: u64| {
            self.grow(file, from, to)
                .and_then(|()| self.sync_data(file))
                .inspect_err(|_| {
                    let _ = file.set_len(from);
                })
        };
        match probe(from + PREALLOCATE) {
            Ok(()) => {
                self.appending_since = None;
                Ok(from + PREALLOCATE)
            }
            Err(e) => {
                probe(from + PROBE_PAGE)?;
                warn!(path = %self.path.display(), chunk = PREALLOCATE, error = %e, "journal cannot preallocate: the disk took a page; appending records instead until a chunk fits");
                self.appending_since = Some(Instant::now());
                Ok(from + PROBE_PAGE)
            }
        }
    }

    /// Grows `file` with zeros from `from` to `to`. From a static block of zeros: growing the
    /// file allocates nothing.
    pub(super) fn grow(&self, file: &File, from: u64, to: u64) -> io::Result<()> {
        zero_fill(file, from, to, &self.faults)
    }
}

/// Writes zeros from `from` to `to` (through the fault seam).
pub(super) fn zero_fill(file: &File, from: u64, to: u64, faults: &Faults) -> io::Result<()> {
    static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64);
        faults.write(n as usize)?;
        file.write_all_at(&ZEROS[..n as usize], at)?;
        at += n;
    }
    Ok(())
}
