//! The writer: the only code that writes the journal file once it is open. It takes commands
//! off its queue in batches, so group commit costs one fdatasync per batch however many
//! appends arrived while the previous sync ran.
//!
//! The file is grown ahead of the records in zero-filled chunks ([`super::prealloc`]): a record
//! then overwrites bytes the file already has, and its fdatasync need not also commit a new
//! file size. A batch's frames go out in one positioned write at the logical end of the log, at most
//! [`MAX_BATCH_BYTES`] per write and sync.
//!
//! A write or sync that fails makes the writer *broken*, not dead: every waiting and later
//! record is refused (none of them was acknowledged) until a probe, on a backoff, re-establishes
//! what is durable ([`super::heal`]).

use std::{
    fs::{self, File},
    io::{self, BufWriter, Write},
    os::unix::fs::{FileExt, MetadataExt},
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering, mpsc},
    time::Duration,
};

use tokio::sync::oneshot;
// On the writer thread, outside any runtime, this is the real clock.
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::format::{self, MAX_BATCH_BYTES};
use super::{Durability, Faults, Shared, frame};
use crate::journal::JournalError;

/// Where the writer reports that a command is done (or failed).
pub(super) type Done = oneshot::Sender<Result<(), JournalError>>;

/// Most commands taken in one batch, so waiters early in a flood are not held back forever.
const MAX_BATCH: usize = 4096;

/// How often a healthy writer checks that its file is still the one at its path.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One unit of work, in the order callers enqueued it.
pub(super) enum Command {
    /// Write this already-encoded frame.
    Append { frame: Vec<u8>, done: Done },
    /// Replace the whole file with these payloads.
    Rewrite { records: Vec<Vec<u8>>, done: Done },
    /// Make everything before this durable, whatever the mode.
    Flush { done: Done },
}

/// How a broken writer gets back to a file it can trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Repair {
    /// The file is where it was: cut it back to the acknowledged records and check them.
    CutBack,
    /// The file (or its directory) is gone, or the directory entry may not be durable: write
    /// the acknowledged records, read from the open file, as a new file at the path.
    CopyForward,
    /// Another file took its path: a person decides which is the journal; restart dtc.
    Replaced,
}

/// The next active segment, being zero-filled on a thread of its own ([`super::cut`]).
pub(super) struct Spare(pub std::thread::JoinHandle<io::Result<File>>);

impl std::fmt::Debug for Spare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spare")
    }
}

/// A sealed segment, kept open so that a repair can write it anew if its file is gone.
#[derive(Debug)]
pub(super) struct SealedFile {
    pub path: PathBuf,
    /// Bytes of its records.
    pub len: u64,
    pub file: File,
}

/// Why the writer refuses records, and when it next tries to stop refusing.
#[derive(Debug)]
pub(super) struct Broken {
    pub cause: String,
    pub repair: Repair,
    pub since: Instant,
    pub probes: u32,
    pub next: Instant,
}

/// What writes the file: owned by the writer thread, or (in `none` mode) locked by the caller.
#[derive(Debug)]
pub(super) struct Writer {
    /// The active segment.
    pub file: File,
    /// (device, inode) of `file`, to notice that the path no longer leads to it.
    pub id: (u64, u64),
    /// Frames of the current batch, not yet written.
    pub buf: Vec<u8>,
    /// Bytes the file has on disk: records, then zeros up to here.
    pub allocated: u64,
    /// Since when the disk could not spare a chunk of preallocation, and records are appended
    /// ([`super::prealloc`]).
    pub appending_since: Option<Instant>,
    pub path: PathBuf,
    pub dir: PathBuf,
    pub durability: Durability,
    pub shared: Arc<Shared>,
    pub faults: Arc<Faults>,
    /// Where the next frame goes: the end of the records written (not of the file).
    pub len: u64,
    /// End of the records acknowledged to their callers: synced (or, in `none`, written).
    pub acked: u64,
    /// Number of the next record, and of the first one not acknowledged.
    pub seq: u64,
    pub acked_seq: u64,
    pub broken: Option<Broken>,
    /// Number of the active segment's first record.
    pub first_seq: u64,
    /// The sealed segments, oldest first.
    pub sealed: Vec<SealedFile>,
    /// Size past which a batch goes into a new segment.
    pub segment_bytes: u64,
    /// The next active segment, being zero-filled in the background.
    pub spare: Option<Spare>,
    /// After a repair, refuse records until the owner has rebuilt its state from the records
    /// read back ([`super::Log::resume`]).
    pub hold_after_repair: bool,
    pub checked: Instant,
}

impl Writer {
    /// Runs until every `Log` clone is gone (the queue disconnects), after finishing what
    /// was already queued; probes a broken disk and checks the file between batches.
    pub(super) fn run(mut self, rx: mpsc::Receiver<Command>) {
        loop {
            match rx.recv_timeout(self.idle_wait()) {
                Ok(first) => {
                    let mut batch = vec![first];
                    batch.extend(rx.try_iter().take(MAX_BATCH - 1));
                    self.run_batch(batch);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.tick();
        }
        // A spare still being zero-filled would otherwise outlive the writer (and, in one
        // process, could create its file after a successor's open removed leftovers).
        if let Some(Spare(thread)) = self.spare.take() {
            let _ = thread.join();
        }
        debug!(path = %self.path.display(), "journal writer stopped");
    }

    fn idle_wait(&self) -> Duration {
        match &self.broken {
            Some(b) => b.next.saturating_duration_since(Instant::now()),
            None => CHECK_EVERY,
        }
    }

    /// Between batches: a broken writer probes when due; a healthy one checks its file.
    pub(super) fn tick(&mut self) {
        if self.broken.is_some() {
            self.probe_if_due();
        } else if self.checked.elapsed() >= CHECK_EVERY {
            self.checked = Instant::now();
            self.check_file();
        }
    }

    pub(super) fn run_batch(&mut self, batch: impl IntoIterator<Item = Command>) {
        // An append that arrives when a probe is due runs it at once.
        self.probe_if_due();
        let mut waiters = Vec::new();
        let mut flush_asked = false;
        for command in batch {
            match command {
                Command::Append { frame, done } => {
                    if let Some(refused) = self.refusal() {
                        let _ = done.send(Err(refused));
                        continue;
                    }
                    if !self.buf.is_empty() && self.buf.len() + frame.len() > MAX_BATCH_BYTES {
                        self.commit(&mut waiters, self.syncs_batches());
                    }
                    self.buf.extend_from_slice(&frame);
                    self.seq += 1;
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

    /// Why records are refused now, if they are.
    fn refusal(&self) -> Option<JournalError> {
        if let Some(b) = &self.broken {
            return Some(JournalError::Unavailable {
                cause: b.cause.clone(),
            });
        }
        let held = self.hold_after_repair
            && self.shared.resumed.load(Ordering::Acquire)
                < self.shared.generation.load(Ordering::Acquire);
        held.then(|| JournalError::Unavailable {
            cause: "the journal is re-reading what is durable after a repair".to_owned(),
        })
    }

    /// Writes `bytes` at `at` (through the fault seam).
    pub(super) fn write_at(&self, file: &File, bytes: &[u8], at: u64) -> io::Result<()> {
        self.faults.write(bytes.len())?;
        file.write_all_at(bytes, at)
    }

    /// fdatasync (through the fault seam).
    pub(super) fn sync_data(&self, file: &File) -> io::Result<()> {
        self.faults.sync()?;
        file.sync_data()
    }

    /// Writes the batch's frames at the end of the records, growing the file first if needed.
    fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let end = self.len + self.buf.len() as u64;
        self.make_room(end);
        self.write_at(&self.file, &self.buf, self.len)?;
        self.allocated = self.allocated.max(end);
        self.len = end;
        self.buf.clear();
        Ok(())
    }

    /// Pushes buffered frames to the OS, syncs if asked, and answers every waiter.
    fn commit(&mut self, waiters: &mut Vec<Done>, sync: bool) {
        if waiters.is_empty() {
            return;
        }
        let result = match self.refusal() {
            Some(refused) => Err(refused),
            None => self.persist(sync),
        };
        for done in waiters.drain(..) {
            // A caller that stopped waiting is no error of ours.
            let _ = done.send(result.clone());
        }
    }

    fn persist(&mut self, sync: bool) -> Result<(), JournalError> {
        if self.needs_cut() {
            self.cut()?;
        }
        if let Err(e) = self.write_out() {
            return Err(self.fail("write", e, Repair::CutBack));
        }
        if sync && let Err(e) = self.sync_data(&self.file) {
            return Err(self.fail("fdatasync", e, Repair::CutBack));
        }
        self.acked = self.len;
        self.acked_seq = self.seq;
        self.publish_size();
        self.prepare_spare_if_due();
        Ok(())
    }

    /// Publishes the bytes of records in every segment.
    pub(super) fn publish_size(&self) {
        let sealed: u64 = self.sealed.iter().map(|s| s.len).sum();
        self.shared.size.store(sealed + self.len, Ordering::Release);
    }

    /// Makes the writer refuse records until a probe repairs it; forgets everything written
    /// since the last acknowledged record (none of it was acknowledged, and after a failed
    /// fdatasync none of it can be trusted to be on disk). Returns the error to report.
    pub(super) fn fail(&mut self, op: &'static str, e: io::Error, repair: Repair) -> JournalError {
        let failure = JournalError::write(self.path.clone(), op, e);
        error!(path = %self.path.display(), op, error = %failure, "journal write failed; refusing records until the disk takes them again");
        self.buf.clear();
        self.len = self.acked;
        self.seq = self.acked_seq;
        let now = Instant::now();
        self.broken = Some(Broken {
            cause: failure.to_string(),
            repair,
            since: now,
            probes: 0,
            next: now + probe_delay(1),
        });
        self.shared.set_problem(Some(failure.to_string()));
        self.shared.failures.fetch_add(1, Ordering::AcqRel);
        failure
    }

    /// Probes a broken disk when the backoff says so; on success the writer takes records
    /// again and the records read back are published for the owner.
    fn probe_if_due(&mut self) {
        let Some(b) = &mut self.broken else { return };
        if Instant::now() < b.next {
            return;
        }
        b.probes += 1;
        let (repair, probes, since) = (b.repair, b.probes, b.since);
        match self.repair(repair) {
            Ok(records) => {
                self.broken = None;
                let generation = self.shared.publish(records);
                self.shared.set_problem(None);
                info!(path = %self.path.display(), down_ms = since.elapsed().as_millis() as u64, probes, generation, "journal writable again: what is durable was read back");
            }
            Err(e) => {
                let cause = e.to_string();
                debug!(path = %self.path.display(), probes, error = %cause, "journal still not writable");
                self.shared.set_problem(Some(cause.clone()));
                if let Some(b) = &mut self.broken {
                    b.cause = cause;
                    b.next = Instant::now() + probe_delay(probes + 1);
                    if matches!(e, JournalError::Replaced { .. }) {
                        b.repair = Repair::Replaced;
                    }
                }
            }
        }
    }

    /// Notices that the file was removed (or its directory) or replaced under dtc.
    fn check_file(&mut self) {
        match fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.id => {}
            Ok(_) => {
                let e = io::Error::other("another file now has the journal's path");
                self.fail("check", e, Repair::Replaced);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.fail("check", e, Repair::CopyForward);
            }
            Err(_) => {}
        }
    }

    /// Write a new file beside the log, sync it, rename it over the log, sync the directory.
    fn rewrite(&mut self, records: &[Vec<u8>]) -> Result<(), JournalError> {
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        let tmp = tmp_path(&self.path);
        let first_seq = self.seq;
        let written = self
            .write_file(&tmp, first_seq, records)
            .and_then(|(file, len)| {
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
        let superseded: Vec<PathBuf> = self.sealed.drain(..).map(|s| s.path).collect();
        self.first_seq = first_seq;
        self.install(file, len);
        self.seq = first_seq + records.len() as u64;
        self.acked_seq = self.seq;
        if let Err(e) = sync_dir(&self.dir) {
            // The rename may not survive a crash: which file is the log is no longer known
            // until a fresh copy is renamed into place and its directory synced.
            return Err(self.fail("directory fsync after rename", e, Repair::CopyForward));
        }
        // The new segment is a base: from here on the sealed ones are superseded, and a start
        // removes any that a crash left.
        let dropped = super::segment::remove_all(&superseded).and_then(|()| sync_dir(&self.dir));
        if let Err(e) = dropped {
            warn!(dir = %self.dir.display(), error = %e, "journal segments a compaction superseded could not be removed; the next start removes them");
        }
        info!(path = %self.path.display(), records = records.len(), bytes = len, segments_dropped = superseded.len(), "journal rewritten");
        Ok(())
    }

    /// Makes `file`, holding `len` bytes of records, the log; returns the file it replaces.
    pub(super) fn install(&mut self, file: File, len: u64) -> File {
        if let Ok(m) = file.metadata() {
            self.id = (m.dev(), m.ino());
        }
        let old = std::mem::replace(&mut self.file, file);
        self.len = len;
        self.acked = len;
        self.allocated = len;
        self.publish_size();
        old
    }

    /// Writes a base header and `records` as a fresh, synced file; returns it and its length.
    fn write_file(
        &self,
        path: &Path,
        first_seq: u64,
        records: &[Vec<u8>],
    ) -> io::Result<(File, u64)> {
        let bytes: usize = records.iter().map(|r| frame::HEADER_LEN + r.len()).sum();
        self.faults.write(bytes)?;
        let file = super::private::create_file(path)?;
        let mut out = BufWriter::new(file);
        let header = format::header_with(first_seq, true);
        out.write_all(&header)?;
        let mut frame = Vec::new();
        let mut len = header.len() as u64;
        for record in records {
            frame.clear();
            frame::encode_into(record, &mut frame);
            out.write_all(&frame)?;
            len += frame.len() as u64;
        }
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        self.sync_data(&file)?;
        Ok((file, len))
    }
}

/// The wait before probe number `n` (1-based): 50 ms, doubling, at most 1 s — so writes
/// resume within about a second of the disk taking them again.
fn probe_delay(n: u32) -> Duration {
    let ms = 50u64.saturating_mul(1 << n.saturating_sub(1).min(10));
    Duration::from_millis(ms.min(1000))
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
