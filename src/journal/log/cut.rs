//! Cutting a segment: when the next batch would take the active segment past its size, the
//! active one is sealed and a spare becomes the active one ([`super::segment`] has the names).
//!
//! The spare is zero-filled ([`PREALLOCATE`]) and synced on a thread of its own once the
//! active segment is half full, so the batch that crosses the boundary does not pay for it:
//! at the cut it only gets its header (one small write and sync). A spare that could not be
//! made (a full disk) is no error: the cut then starts a file holding just the header, and its
//! records are appended ([`super::prealloc`]).
//!
//! The order makes every crash point safe:
//!
//! 1. fdatasync the active segment (its records are durable before any later one's can be);
//! 2. write the spare's header (first number: the batch's first record), fdatasync it;
//! 3. rename `journal.log` to `journal-<first_seq>.log` (sealed);
//! 4. rename the spare to `journal.log`, fsync the directory.
//!
//! A crash before 3 leaves the old chain and a spare, removed at the next start; between 3 and
//! 4, sealed segments only, and the start begins a new active segment after them; after 4, an
//! empty active segment. No record is in two files at any point.

use std::{
    fs::{self, File},
    io,
    path::Path,
};

use tracing::{info, warn};

use super::prealloc::{PREALLOCATE, zero_fill};
use super::segment::{SPARE_NAME, sealed_name};
use super::writer::{Repair, SealedFile, Spare, Writer, sync_dir};
use super::{Faults, format, private};
use crate::journal::JournalError;

impl Writer {
    /// Whether the batch in the buffer goes into a new segment: it would take the active one
    /// past its size, and the active one holds records (a batch larger than a segment gets one
    /// of its own).
    pub(super) fn needs_cut(&self) -> bool {
        !self.buf.is_empty()
            && self.acked_seq > self.first_seq
            && self.len + self.buf.len() as u64 > self.segment_bytes
    }

    /// Once the active segment is half full, starts zero-filling the next one on a thread.
    pub(super) fn prepare_spare_if_due(&mut self) {
        if self.spare.is_some()
            || self.len < self.segment_bytes / 2
            || self.appending_since.is_some()
        {
            return;
        }
        let path = self.dir.join(SPARE_NAME);
        let faults = self.faults.clone();
        let room = PREALLOCATE.min(self.segment_bytes);
        let spawned = std::thread::Builder::new()
            .name("dtc-journal-spare".into())
            .spawn(move || zero_filled(&path, room, &faults));
        match spawned {
            Ok(handle) => self.spare = Some(Spare(handle)),
            Err(e) => {
                warn!(error = %e, "cannot start the journal's spare-segment thread: the next cut makes its segment itself")
            }
        }
    }

    /// Seals the active segment and makes a new one, whose first record is the next to be
    /// written, the active one (the module's steps). Fails, as a write does, making the writer
    /// refuse records until a probe repairs it.
    pub(super) fn cut(&mut self) -> Result<(), JournalError> {
        let first = self.acked_seq;
        let spare_path = self.dir.join(SPARE_NAME);
        let sealed_path = self.dir.join(sealed_name(self.first_seq));
        if let Err(e) = self.sync_data(&self.file) {
            return Err(self.fail("fdatasync before a segment cut", e, Repair::CutBack));
        }
        let (spare, allocated) = match self.take_spare(&spare_path, first) {
            Ok(spare) => spare,
            Err(e) => {
                let _ = fs::remove_file(&spare_path);
                return Err(self.fail("prepare the next segment", e, Repair::CutBack));
            }
        };
        if let Err(e) = fs::rename(&self.path, &sealed_path) {
            let _ = fs::remove_file(&spare_path);
            return Err(self.fail("seal the active segment", e, Repair::CutBack));
        }
        if let Err(e) = fs::rename(&spare_path, &self.path) {
            // Back into service as it was; if even that fails, the repair writes it anew (a
            // start then refuses the two copies' overlap rather than read them twice).
            let back = fs::rename(&sealed_path, &self.path);
            let _ = fs::remove_file(&spare_path);
            let repair = if back.is_ok() {
                Repair::CutBack
            } else {
                Repair::CopyForward
            };
            return Err(self.fail("make the next segment active", e, repair));
        }
        let sealed_len = self.len;
        // The zeros after the records were room, not records: not worth a sync either way.
        let _ = self.file.set_len(sealed_len);
        self.first_seq = first;
        let header = format::header_frame(first).len() as u64;
        let old = self.install(spare, header);
        self.sealed.push(SealedFile {
            path: sealed_path.clone(),
            len: sealed_len,
            file: old,
        });
        self.publish_size();
        self.allocated = allocated.max(header);
        if let Err(e) = sync_dir(&self.dir) {
            return Err(self.fail(
                "directory fsync after a segment cut",
                e,
                Repair::CopyForward,
            ));
        }
        info!(sealed = %sealed_path.display(), bytes = sealed_len, first_seq = first, segments = self.sealed.len() + 1, "journal segment cut");
        Ok(())
    }

    /// The spare, with its header written and synced: the one zero-filled ahead, or else a new
    /// file holding only the header. Returns it and how long it is.
    fn take_spare(&mut self, path: &Path, first: u64) -> io::Result<(File, u64)> {
        let ahead = match self.spare.take().map(|s| s.0.join()) {
            Some(Ok(Ok(file))) => Some(file),
            Some(Ok(Err(e))) => {
                warn!(path = %path.display(), error = %e, "journal cannot preallocate the next segment: its records are appended");
                None
            }
            Some(Err(_)) | None => None,
        };
        let file = match ahead {
            Some(file) => file,
            None => new_file(path)?,
        };
        let header = format::header_frame(first);
        self.write_at(&file, &header, 0)?;
        self.sync_data(&file)?;
        let len = file.metadata()?.len();
        Ok((file, len))
    }
}

/// A new, empty, private file at `path`, for reading and writing.
fn new_file(path: &Path) -> io::Result<File> {
    let file = private::open_file(path)?;
    file.set_len(0)?;
    Ok(file)
}

/// The spare thread: a file of `room` zeros at `path`, synced.
fn zero_filled(path: &Path, room: u64, faults: &Faults) -> io::Result<File> {
    let file = new_file(path)?;
    zero_fill(&file, 0, room, faults)?;
    faults.sync()?;
    file.sync_data()?;
    Ok(file)
}
