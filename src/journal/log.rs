//! The journal's storage engine: an append-only, checksummed, durable log of opaque records.
//!
//! One file, `dir/journal.log`, of frames `[len: u32 LE][crc32 of payload: u32 LE][payload]`.
//! A single writer thread owns the file; callers enqueue work synchronously (so the order
//! they enqueue in, e.g. under their own mutex, is the order in the file) and await a future
//! that resolves once the work is as durable as the [`Durability`] mode promises. In `none`
//! mode, which never syncs, there is no thread: the caller writes to the OS itself.
//!
//! At open, every intact record is read back; a torn or corrupt tail (a crash mid-write, a
//! flipped bit, garbage) is cut off and reported in a [`TailReport`], never a panic.
//!
//! # What each durability mode promises (when `append` resolves `Ok`)
//!
//! | mode | config name | survives a process crash | survives power loss | cost per append |
//! | --- | --- | --- | --- | --- |
//! | [`Durability::Fsync`] | `"fsync"` | yes | yes | one fdatasync of its own |
//! | [`Durability::GroupCommit`] (default) | `"group"` | yes | yes | one fdatasync shared by every append queued meanwhile |
//! | [`Durability::None`] | `"none"` | yes (written to the OS) | no | no sync, no thread hand-off |
//!
//! fdatasync also persists the file length, so a synced record is readable after power loss.
//! When benchmarking, compare `group` with `fsync` under concurrency: with one caller they
//! cost the same; with many, `group` amortises one sync over the whole batch.
//! [`Log::flush`] syncs in every mode, `none` included.

mod frame;
#[cfg(test)]
mod frame_props;
pub mod private;
mod writer;

use std::{
    fs::{self, File},
    future::Future,
    io::Read,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use tokio::sync::oneshot;
use tracing::warn;

use self::writer::{Command, Done, Writer};
use super::JournalError;

/// Name of the log file inside [`LogOptions::dir`].
pub const FILE_NAME: &str = "journal.log";

/// How durable a record is when its `append` future resolves. See the module docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Each record is fdatasynced on its own before its append resolves.
    Fsync,
    /// Records queued together share one fdatasync (group commit).
    #[default]
    #[serde(rename = "group")]
    GroupCommit,
    /// Records are handed to the OS; nothing is synced (a power loss may lose them).
    None,
}

/// Where the log lives and how durable appends are.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// Directory holding the log; created if missing.
    pub dir: PathBuf,
    /// Durability promised by `append`.
    pub durability: Durability,
}

/// What [`Log::open`] cut off the end of the file, if anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailReport {
    /// Bytes removed after the last intact record; 0 when the file was clean.
    pub cut_bytes: u64,
    /// Why the tail was cut (torn, checksum mismatch, ...) and at which offset.
    pub reason: Option<String>,
}

/// A handle on the open log. Cheap to clone; when the last clone is dropped the writer
/// finishes what was queued and stops.
#[derive(Debug, Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    path: PathBuf,
    size: Arc<AtomicU64>,
}

/// Who runs the commands.
#[derive(Debug)]
enum Engine {
    /// The writer thread, fed through its queue (`group` and `fsync`: syncs never block the
    /// caller's thread).
    Thread(mpsc::Sender<Command>),
    /// The caller's thread, under this lock (`none`: a write to the OS costs less than waking
    /// another thread and waiting to be woken back; a compaction's rewrite, every few thousand
    /// records, then also runs on the caller's thread).
    Inline(Mutex<Writer>),
}

impl Log {
    /// Opens (creating the dir and file if needed), reads every intact record, cuts a torn or
    /// corrupt tail (truncating the file to the last good record, and reporting it), and
    /// starts the writer.
    pub fn open(opts: LogOptions) -> Result<(Log, Vec<Vec<u8>>, TailReport), JournalError> {
        private::prepare_dir(&opts.dir)?;
        let path = opts.dir.join(FILE_NAME);
        // A leftover is a rewrite that crashed before its rename: the log itself is intact.
        let _ = fs::remove_file(writer::tmp_path(&path));
        let mut file =
            private::open_file(&path).map_err(|e| JournalError::open(path.clone(), "open", e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| JournalError::open(path.clone(), "read", e))?;
        let scan = frame::scan(&bytes);
        // The file is grown ahead of its records with zeros (see `writer`): zeros after the
        // last record are room, not damage. Anything else there is cut, zeros after it too.
        let after = &bytes[usize::try_from(scan.good_len).unwrap_or(bytes.len())..];
        let damaged = after.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let (tail, allocated) = if damaged == 0 {
            (TailReport::default(), bytes.len() as u64)
        } else {
            let end = scan.good_len + damaged as u64;
            let tail = cut_tail(&file, &path, end, scan.good_len, scan.reason)?;
            (tail, scan.good_len)
        };
        // Makes the directory entry of a newly created file durable.
        writer::sync_dir(&opts.dir).map_err(|e| JournalError::open(path.clone(), "sync", e))?;
        let log = Log::start(file, path, opts, scan.good_len, allocated)?;
        Ok((log, scan.records, tail))
    }

    fn start(
        file: File,
        path: PathBuf,
        opts: LogOptions,
        len: u64,
        alloc: u64,
    ) -> Result<Log, JournalError> {
        let size = Arc::new(AtomicU64::new(len));
        let writer = Writer {
            file,
            buf: Vec::new(),
            allocated: alloc,
            path: path.clone(),
            dir: opts.dir,
            durability: opts.durability,
            size: size.clone(),
            len,
            failed: None,
        };
        let engine = if opts.durability == Durability::None {
            Engine::Inline(Mutex::new(writer))
        } else {
            let (tx, rx) = mpsc::channel();
            std::thread::Builder::new()
                .name("dtc-journal".to_owned())
                .spawn(move || writer.run(rx))
                .map_err(|e| JournalError::Spawn {
                    source: Arc::new(e),
                })?;
            Engine::Thread(tx)
        };
        let inner = Inner { engine, path, size };
        Ok(Log {
            inner: Arc::new(inner),
        })
    }

    /// Enqueues the record now (so callers that enqueue under their own mutex get that order
    /// in the file) and returns a future that resolves when the record is as durable as the
    /// mode promises. Empty or over-64-MiB payloads are refused.
    pub fn append(
        &self,
        payload: Vec<u8>,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let queued = check_record(&payload).map(|()| {
            let frame = frame::encode(&payload);
            self.submit(|done| Command::Append { frame, done })
        });
        async move { queued?.await }
    }

    /// Enqueued in order like `append`: atomically replaces the whole log with exactly these
    /// records (new file, fsync, rename over, fsync dir), then appends go to the new file.
    ///
    /// Records enqueued before this call and not in `records` are gone afterwards, so build
    /// `records` and call this under the same lock that orders your appends. If it fails
    /// before the rename, the old log stays in service and appends continue.
    pub fn rewrite(
        &self,
        records: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let queued = records
            .iter()
            .try_for_each(|r| check_record(r))
            .map(|()| self.submit(|done| Command::Rewrite { records, done }));
        async move { queued?.await }
    }

    /// Resolves when everything enqueued so far is synced to disk, in every mode (used at
    /// graceful shutdown).
    pub fn flush(&self) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        self.submit(|done| Command::Flush { done })
    }

    /// Current file size in bytes (as written to the OS).
    pub fn size_bytes(&self) -> u64 {
        self.inner.size.load(Ordering::Acquire)
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Sends a command now; the future waits for the writer's answer.
    fn submit(
        &self,
        command: impl FnOnce(Done) -> Command,
    ) -> impl Future<Output = Result<(), JournalError>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        // If the writer is gone the command, and `done` with it, is dropped: the await below
        // then reports it instead of hanging.
        match &self.inner.engine {
            Engine::Thread(tx) => {
                let _ = tx.send(command(done));
            }
            Engine::Inline(writer) => writer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .run_batch(std::iter::once(command(done))),
        }
        let path = self.inner.path.clone();
        async move {
            answer
                .await
                .unwrap_or(Err(JournalError::WriterGone { path }))
        }
    }
}

/// Refuses records the reader would reject: empty ones and ones over the frame limit.
fn check_record(payload: &[u8]) -> Result<(), JournalError> {
    match payload.len() {
        0 => Err(JournalError::EmptyRecord),
        len if len > frame::MAX_RECORD => Err(JournalError::RecordTooLarge {
            len,
            max: frame::MAX_RECORD,
        }),
        _ => Ok(()),
    }
}

/// Truncates the file to its intact prefix, durably, and says what was cut.
fn cut_tail(
    file: &File,
    path: &Path,
    file_len: u64,
    good_len: u64,
    reason: Option<String>,
) -> Result<TailReport, JournalError> {
    let cut_bytes = file_len.saturating_sub(good_len);
    if cut_bytes == 0 {
        return Ok(TailReport::default());
    }
    warn!(path = %path.display(), cut_bytes, reason = reason.as_deref().unwrap_or(""), "cutting damaged journal tail");
    file.set_len(good_len)
        .and_then(|()| file.sync_all())
        .map_err(|e| JournalError::open(path.to_owned(), "cut the damaged tail of", e))?;
    Ok(TailReport { cut_bytes, reason })
}

#[cfg(test)]
mod tests;
