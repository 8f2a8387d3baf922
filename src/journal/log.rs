//! The journal's storage engine: an append-only, checksummed, durable log of opaque records.
//!
//! A chain of segment files ([`segment`]): the active one, `dir/journal.log`, and the sealed
//! ones before it, `dir/journal-<first_seq>.log`. Each starts with a header frame (magic, format
//! version, first sequence number; see [`format`]) then frames `[len: u32 LE][crc32 of
//! payload: u32 LE][payload]`. When the next batch would take the active segment past
//! [`LogOptions::segment_bytes`], it is sealed and a spare, prepared ahead, becomes the active
//! one ([`cut`]); compaction writes the live records into a new active segment and drops the
//! sealed ones whole ([`Log::rewrite`]). A single
//! writer thread owns the file; callers enqueue work synchronously (so the order they enqueue
//! in, e.g. under their own mutex, is the order in the file) and await a future that resolves
//! once the work is as durable as the [`Durability`] mode promises. In `none` mode, which never
//! syncs, appends run on the caller's thread (a small thread only probes a broken disk).
//!
//! Opening is two steps, so the owner can judge damage before anything changes: [`Log::read`]
//! reads every intact record — resynchronising on the next intact frame after a damaged one —
//! and classifies each damaged stretch ([`DamageKind`]); [`Log::start`] quarantines the damaged
//! bytes to side files, makes the file clean and starts the writer ([`open`]).
//!
//! A failed write or sync does not stop the log for good: it refuses records until a probe,
//! on a backoff, has re-established what is durable ([`repair`], the fsyncgate rule); then it
//! takes records again, and hands the records it read back to the owner ([`Log::take_reread`]).
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

mod cut;
mod faults;
pub mod format;
mod frame;
#[cfg(test)]
mod frame_props;
mod open;
mod prealloc;
pub(crate) mod private;
mod repair;
pub(crate) mod segment;
mod writer;

use std::{
    future::Future,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use tokio::sync::oneshot;
// On the writer thread, outside any runtime, this is the real clock.
use tokio::time::Instant;

pub use self::faults::{Fault, Faults};
pub use self::format::{Damage, DamageKind, Format};
pub use self::open::{Found, OpenReport};
use self::writer::{Command, Done, Writer};
use super::JournalError;

/// Name of the active segment inside [`LogOptions::dir`] (the whole log in format 1).
pub const FILE_NAME: &str = "journal.log";

/// Default size at which the active segment is sealed and a new one started
/// (`journal.segment_bytes`).
pub const SEGMENT_BYTES: u64 = crate::config::model::SEGMENT_BYTES;

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
    /// The fault-injection seam (tests); [`Faults::default`] injects nothing.
    pub faults: Arc<Faults>,
    /// After a repair, refuse records until [`Log::resume`]: for an owner whose state must be
    /// rebuilt from the records read back before it writes again.
    pub hold_after_repair: bool,
    /// A batch that would take the active segment past this size goes into a new segment
    /// (a batch larger than this gets a segment of its own). Default [`SEGMENT_BYTES`].
    pub segment_bytes: u64,
}

impl LogOptions {
    /// The log in `dir`, with `durability`, no faults, no hold after a repair, segments of
    /// [`SEGMENT_BYTES`].
    pub fn new(dir: impl Into<PathBuf>, durability: Durability) -> LogOptions {
        LogOptions {
            dir: dir.into(),
            durability,
            faults: Arc::default(),
            hold_after_repair: false,
            segment_bytes: SEGMENT_BYTES,
        }
    }
}

/// What the writer shares with every handle: size, health, and the records a repair read back.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    size: AtomicU64,
    /// Why records are refused now (and since when, in ms since the epoch).
    problem: Mutex<Option<(String, u64)>>,
    /// How many times the log stopped taking records.
    failures: AtomicU64,
    /// The records the last repair read back, with its generation.
    reread: Mutex<Option<(u64, Vec<Vec<u8>>)>>,
    generation: AtomicU64,
    /// The generation the owner has rebuilt its state from.
    resumed: AtomicU64,
}

impl Shared {
    fn set_problem(&self, cause: Option<String>) {
        let mut p = self.problem.lock().unwrap_or_else(|p| p.into_inner());
        *p = match (cause, p.take()) {
            (Some(cause), Some((_, since))) => Some((cause, since)),
            (Some(cause), None) => Some((cause, super::record::now_ms())),
            (None, _) => None,
        };
    }

    /// Publishes the records a repair read back; returns their generation.
    fn publish(&self, records: Vec<Vec<u8>>) -> u64 {
        let mut slot = self.reread.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.generation.load(Ordering::Acquire) + 1;
        *slot = Some((generation, records));
        self.generation.store(generation, Ordering::Release);
        generation
    }
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
    shared: Arc<Shared>,
    faults: Arc<Faults>,
}

/// Who runs the commands.
#[derive(Debug)]
enum Engine {
    /// The writer thread, fed through its queue (`group` and `fsync`: syncs never block the
    /// caller's thread).
    Thread(mpsc::Sender<Command>),
    /// The caller's thread, under this lock (`none`: a write to the OS costs less than waking
    /// another thread and waiting to be woken back; a compaction's rewrite, every few thousand
    /// records, then also runs on the caller's thread). A small thread ticks it (probes)
    /// until the sender is dropped with the last `Log`.
    Inline {
        writer: Arc<Mutex<Writer>>,
        _stop_ticks: mpsc::Sender<()>,
    },
}

impl Log {
    /// Opens (creating the dir and file if needed), reads every intact record, sets any
    /// damage aside (quarantined, then cut), and starts the writer. Accepts every damage it
    /// can read past: an owner that must judge damage first uses [`Log::read`] and [`Log::start`].
    pub fn open(opts: LogOptions) -> Result<(Log, Vec<Vec<u8>>, OpenReport), JournalError> {
        let found = Log::read(&opts.dir)?;
        Log::start(opts, found)
    }

    /// Reads the log in `dir` (creating the directory and an empty file if needed) without
    /// changing its records. A foreign file, a newer format, or segments whose numbers overlap
    /// are an error here.
    pub fn read(dir: &Path) -> Result<Found, JournalError> {
        Found::read_or_create(dir)
    }

    /// Quarantines the damage `found` holds, makes the file clean (see [`open`]) and starts
    /// the writer; returns the records.
    pub fn start(
        opts: LogOptions,
        found: Found,
    ) -> Result<(Log, Vec<Vec<u8>>, OpenReport), JournalError> {
        let records = found.payloads();
        let active_records = found.records.len() as u64;
        let path = found.path.clone();
        let (prepared, report) = open::prepare(&opts.dir, found)?;
        let shared = Arc::new(Shared::default());
        let sealed_bytes: u64 = prepared.sealed.iter().map(|s| s.len).sum();
        shared
            .size
            .store(sealed_bytes + prepared.len, Ordering::Release);
        let id = prepared
            .file
            .metadata()
            .map(|m| {
                use std::os::unix::fs::MetadataExt;
                (m.dev(), m.ino())
            })
            .map_err(|e| JournalError::open(path.clone(), "stat", e))?;
        let seq = prepared.first_seq + active_records;
        let writer = Writer {
            first_seq: prepared.first_seq,
            sealed: prepared.sealed,
            segment_bytes: opts.segment_bytes,
            spare: None,
            file: prepared.file,
            id,
            buf: Vec::new(),
            allocated: prepared.allocated,
            appending_since: None,
            path: path.clone(),
            dir: opts.dir,
            durability: opts.durability,
            shared: shared.clone(),
            faults: opts.faults.clone(),
            len: prepared.len,
            acked: prepared.len,
            seq,
            acked_seq: seq,
            broken: None,
            hold_after_repair: opts.hold_after_repair,
            checked: Instant::now(),
        };
        let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(f)
                .map(drop)
                .map_err(|e| JournalError::Spawn {
                    source: Arc::new(e),
                })
        };
        let engine = if opts.durability == Durability::None {
            let writer = Arc::new(Mutex::new(writer));
            let (stop, stopped) = mpsc::channel();
            let ticked = writer.clone();
            spawn(
                "dtc-journal-probe",
                Box::new(move || tick_until_stopped(&ticked, &stopped)),
            )?;
            Engine::Inline {
                writer,
                _stop_ticks: stop,
            }
        } else {
            let (tx, rx) = mpsc::channel();
            spawn("dtc-journal", Box::new(move || writer.run(rx)))?;
            Engine::Thread(tx)
        };
        let inner = Inner {
            engine,
            path,
            shared,
            faults: opts.faults,
        };
        let log = Log {
            inner: Arc::new(inner),
        };
        Ok((log, records, report))
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
    /// records (a new active segment marked *base*, fsync, rename over, fsync dir), then
    /// removes the sealed segments whole; appends go to the new segment. A crash after the
    /// rename leaves sealed segments the base supersedes: the next start removes them unread.
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

    /// Current size of the records in bytes, every segment's (headers included; as written to
    /// the OS).
    pub fn size_bytes(&self) -> u64 {
        self.inner.shared.size.load(Ordering::Acquire)
    }

    /// Path of the active segment.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Why the log refuses records now, and since when (ms since the epoch); `None` while it
    /// takes them.
    pub fn problem(&self) -> Option<(String, u64)> {
        self.inner
            .shared
            .problem
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How many times the log stopped taking records since it was opened.
    pub fn failures(&self) -> u64 {
        self.inner.shared.failures.load(Ordering::Acquire)
    }

    /// The fault-injection seam of this log's writer.
    pub fn faults(&self) -> &Arc<Faults> {
        &self.inner.faults
    }

    /// The generation of the last repair (0: none yet).
    pub fn generation(&self) -> u64 {
        self.inner.shared.generation.load(Ordering::Acquire)
    }

    /// The records the last repair read back from the disk, with its generation, once.
    pub fn take_reread(&self) -> Option<(u64, Vec<Vec<u8>>)> {
        self.inner
            .shared
            .reread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The owner has rebuilt its state from generation `generation`'s records: with
    /// [`LogOptions::hold_after_repair`], records are taken again.
    pub fn resume(&self, generation: u64) {
        self.inner
            .shared
            .resumed
            .fetch_max(generation, Ordering::AcqRel);
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
            Engine::Inline { writer, .. } => writer
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

/// The `none` engine's prober: ticks the writer (probes, file checks) every 50 ms until the
/// last `Log` drops the sender.
fn tick_until_stopped(writer: &Mutex<Writer>, stopped: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) =
        stopped.recv_timeout(std::time::Duration::from_millis(50))
    {
        writer.lock().unwrap_or_else(|p| p.into_inner()).tick();
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

#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod segment_tests;
#[cfg(test)]
mod tests;
