//! The writer thread: the only code that writes the journal file once it is open. It takes
//! commands off its queue in batches, so group commit costs one fdatasync per batch however
//! many appends arrived while the previous sync ran.
//!
//! The file is grown ahead of the records in zero-filled chunks ([`PREALLOCATE`]): a record
//! then overwrites bytes the file already has, and its fdatasync need not also commit a new
//! file size — on ext4 here that is 91 µs instead of 131 µs per sync (docs/performance.md).
//! A batch's frames go out in one positioned write at the logical end of the log.

use std::{
    fs::{self, File},
    io::{self, BufWriter, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
        mpsc::Receiver,
    },
};

use tokio::sync::oneshot;
use tracing::{debug, error, info};

use super::{Durability, frame};
use crate::journal::JournalError;

/// Where the writer reports that a command is done (or failed).
pub(super) type Done = oneshot::Sender<Result<(), JournalError>>;

/// Most commands taken in one batch, so waiters early in a flood are not held back forever.
const MAX_BATCH: usize = 4096;

/// How far ahead of the records the file is grown, zero-filled.
pub(super) const PREALLOCATE: u64 = 1 << 20;

/// One unit of work, in the order callers enqueued it.
pub(super) enum Command {
    /// Write this already-encoded frame.
    Append { frame: Vec<u8>, done: Done },
    /// Replace the whole file with these payloads.
    Rewrite { records: Vec<Vec<u8>>, done: Done },
    /// Make everything before this durable, whatever the mode.
    Flush { done: Done },
}

/// What writes the file: owned by the writer thread, or (in `none` mode) locked by the caller.
#[derive(Debug)]
pub(super) struct Writer {
    pub file: File,
    /// Frames of the current batch, not yet written.
    pub buf: Vec<u8>,
    /// Bytes the file has on disk: records, then zeros up to here.
    pub allocated: u64,
    pub path: PathBuf,
    pub dir: PathBuf,
    pub durability: Durability,
    /// Length of the records as written to the OS; shared with `Log::size_bytes`.
    pub size: Arc<AtomicU64>,
    /// Where the next frame goes: the end of the records (not of the file).
    pub len: u64,
    /// Set at the first write or sync failure; every later command gets this error.
    pub failed: Option<JournalError>,
}

impl Writer {
    /// Runs until every `Log` clone is gone (the queue disconnects), after finishing what
    /// was already queued.
    pub fn run(mut self, rx: Receiver<Command>) {
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            batch.extend(rx.try_iter().take(MAX_BATCH - 1));
            self.run_batch(batch);
        }
        debug!(path = %self.path.display(), "journal writer stopped");
    }

    pub(super) fn run_batch(&mut self, batch: impl IntoIterator<Item = Command>) {
        let mut waiters = Vec::new();
        let mut flush_asked = false;
        for command in batch {
            match command {
                Command::Append { frame, done } => {
                    self.write(&frame);
                    waiters.push(done);
                    if self.durability == Durability::Fsync {
                        self.commit(&mut waiters, true);
                    }
                }
                Command::Flush { done } => {
                    waiters.push(done);
                    flush_asked = true;
                }
                Command::Rewrite { records, done } => {
                    // What came before the rewrite is settled first, so its waiters hear the
                    // truth even if the rewrite then fails.
                    self.commit(&mut waiters, flush_asked || self.syncs_batches());
                    flush_asked = false;
                    let _ = done.send(self.rewrite(&records));
                }
            }
        }
        self.commit(&mut waiters, flush_asked || self.syncs_batches());
    }

    fn syncs_batches(&self) -> bool {
        self.durability == Durability::GroupCommit
    }

    fn write(&mut self, frame: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(frame);
        }
    }

    /// Writes the batch's frames at the end of the records, growing the file first if needed.
    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let end = self.len + self.buf.len() as u64;
        if end > self.allocated {
            let grown = end + PREALLOCATE;
            // From a static block of zeros: growing the file allocates nothing.
            static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
            let mut at = self.allocated;
            while at < grown {
                let n = (grown - at).min(ZEROS.len() as u64);
                self.file.write_all_at(&ZEROS[..n as usize], at)?;
                at += n;
            }
            self.allocated = grown;
        }
        self.file.write_all_at(&self.buf, self.len)?;
        self.len = end;
        self.buf.clear();
        Ok(())
    }

    /// Pushes buffered frames to the OS, syncs if asked, and answers every waiter.
    fn commit(&mut self, waiters: &mut Vec<Done>, sync: bool) {
        if waiters.is_empty() {
            return;
        }
        if self.failed.is_none() {
            if let Err(e) = self.write_out() {
                self.buf.clear();
                self.fail("write", e);
            } else if sync && let Err(e) = self.file.sync_data() {
                self.fail("fdatasync", e);
            }
        }
        if self.failed.is_none() {
            self.size.store(self.len, Ordering::Release);
        }
        let result = self.failed.clone().map_or(Ok(()), Err);
        for done in waiters.drain(..) {
            // A caller that stopped waiting is no error of ours.
            let _ = done.send(result.clone());
        }
    }

    /// Makes the writer refuse everything from now on, and returns the error to report.
    fn fail(&mut self, op: &'static str, e: io::Error) -> JournalError {
        error!(path = %self.path.display(), op, error = %e, "journal writer failed; refusing further records");
        let failure = JournalError::write(self.path.clone(), op, e);
        self.failed = Some(failure.clone());
        failure
    }

    /// Write a new file beside the log, sync it, rename it over the log, sync the directory.
    fn rewrite(&mut self, records: &[Vec<u8>]) -> Result<(), JournalError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let tmp = tmp_path(&self.path);
        let written = write_file(&tmp, records).and_then(|(file, len)| {
            fs::rename(&tmp, &self.path)?;
            Ok((file, len))
        });
        let (file, len) = match written {
            Ok(done) => done,
            Err(e) => {
                // Before the rename the old log is untouched, so it stays in service.
                let _ = fs::remove_file(&tmp);
                return Err(JournalError::Rewrite {
                    path: self.path.clone(),
                    source: Arc::new(e),
                });
            }
        };
        self.file = file;
        self.len = len;
        self.allocated = len;
        self.size.store(len, Ordering::Release);
        if let Err(e) = sync_dir(&self.dir) {
            // The rename may not survive a crash: which file is the log is no longer known.
            return Err(self.fail("directory fsync after rename", e));
        }
        info!(path = %self.path.display(), records = records.len(), bytes = len, "journal rewritten");
        Ok(())
    }
}

/// Where a rewrite builds its new file; a leftover one is a crashed rewrite's, and is removed at open.
pub(super) fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Makes a create, truncate or rename inside `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `records` as a fresh, synced file; returns it positioned at its end.
fn write_file(path: &Path, records: &[Vec<u8>]) -> io::Result<(File, u64)> {
    let file = super::private::create_file(path)?;
    let mut out = BufWriter::new(file);
    let mut frame = Vec::new();
    let mut len = 0u64;
    for record in records {
        frame.clear();
        frame::encode_into(record, &mut frame);
        out.write_all(&frame)?;
        len += frame.len() as u64;
    }
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_data()?;
    Ok((file, len))
}
