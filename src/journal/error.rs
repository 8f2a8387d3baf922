//! Errors of the journal. Each one names the file or directory involved and, where an
//! operator can act, says what to do.

use std::{io, path::PathBuf, sync::Arc};

/// Everything that can go wrong in the journal.
///
/// Cloneable (I/O sources sit behind an `Arc`) because one writer failure is reported to
/// every append waiting on it and to every append after it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// The journal directory could not be created or is not a directory.
    #[error(
        "cannot create journal directory `{}`: {source}; point the journal at a writable directory (not a file)",
        path.display()
    )]
    CreateDir {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// The journal directory is open to other users and belongs to someone else.
    #[error(
        "journal directory `{}` is open to other users (mode {mode:o}) and owned by uid {owner}, not by dtc's user: they could read the journal (it holds client requests and their Authorization headers) or replace it; point journal.dir at a directory of dtc's own, e.g. a new subdirectory, which dtc creates 0700",
        path.display()
    )]
    Exposed {
        path: PathBuf,
        mode: u32,
        owner: u32,
    },
    /// The journal file could not be opened, read, or (after a cut) made durable at open.
    #[error(
        "cannot {op} journal file `{}`: {source}; check its permissions and that the volume is mounted read-write",
        path.display()
    )]
    Open {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: Arc<io::Error>,
    },
    /// The writer thread could not be started.
    #[error("cannot start the journal writer thread: {source}")]
    Spawn {
        #[source]
        source: Arc<io::Error>,
    },
    /// A write or sync failed. The records since the last acknowledged one were refused (after
    /// a failed fdatasync none of them can be trusted to be on disk); records acknowledged
    /// before are safe. The log refuses records until a probe has re-established what is durable.
    #[error(
        "journal {op} on `{}` failed: {source}; records not yet acknowledged were refused, and dtc takes records again once the disk does (free disk space, or repair or remount the volume read-write)",
        path.display()
    )]
    Write {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: Arc<io::Error>,
    },
    /// The log refuses records until the disk works again (see `Write`).
    #[error("the journal cannot take records now: {cause}")]
    Unavailable { cause: String },
    /// Another file took the log's path while dtc ran.
    #[error(
        "another file replaced the journal `{}` while dtc ran: dtc will not guess which one is the journal; move one of them aside and restart dtc",
        path.display()
    )]
    Replaced { path: PathBuf },
    /// The file at the journal's path is not a dtc journal.
    #[error(
        "`{}` is not a dtc journal (no dtc header and not one readable record): dtc will not overwrite it; move it away or point journal.dir at a directory of dtc's own",
        path.display()
    )]
    Foreign { path: PathBuf },
    /// The journal was written by a newer dtc.
    #[error(
        "`{}` is a dtc journal of format {version}, newer than this dtc reads ({supported}): run the dtc that wrote it, or a newer one",
        path.display()
    )]
    FutureFormat {
        path: PathBuf,
        version: u32,
        supported: u32,
    },
    /// The journal holds damage that may have held an in-doubt or failed transaction.
    #[error(
        "the journal `{}` is damaged and dtc will not start on it by itself: {summary}. A damaged record may have held an in-doubt or failed transaction, which dtc would then never recover or fence. See `dtc journal check {}`; then `dtc journal repair {}` (or `dtc run --accept-journal-damage`) sets the damaged bytes aside in side files and starts on every intact record",
        path.display(), dir.display(), dir.display()
    )]
    Damaged {
        path: PathBuf,
        dir: PathBuf,
        summary: String,
    },
    /// Compaction failed before the new file replaced the old one: the old log is kept and
    /// appends go on into it.
    #[error(
        "cannot rewrite journal file `{}` (compaction): {source}; the previous log is kept and appends continue",
        path.display()
    )]
    Rewrite {
        path: PathBuf,
        #[source]
        source: Arc<io::Error>,
    },
    /// The journal's segment files do not form one chain (overlapping numbers would read
    /// records twice).
    #[error(
        "the journal segments in `{}` do not follow each other: {why}; dtc will not guess which records are the journal's: move the stray segment aside (or restore the missing one) and restart dtc",
        dir.display()
    )]
    Segments { dir: PathBuf, why: String },
    /// The writer thread is gone, so nothing more can be written.
    #[error("the journal writer for `{}` has stopped; the record was not written: restart the process", path.display())]
    WriterGone { path: PathBuf },
    /// A record over the frame limit; the reader would take it for corruption.
    #[error(
        "journal record of {len} bytes is over the {max}-byte limit; split or shrink the record"
    )]
    RecordTooLarge { len: usize, max: usize },
    /// Another process (a running `dtc run`, or a `dtc verify`) holds the journal directory.
    #[error(
        "another dtc (pid {}) holds the journal directory `{}`: one process at a time may use a journal; stop it, or point this one at its own `journal.dir`",
        holder.map_or_else(|| "unknown".to_string(), |p| p.to_string()),
        dir.display()
    )]
    Locked { dir: PathBuf, holder: Option<u32> },
    /// The shared store (`[cluster]`) could not take the record, or the key is not free.
    #[error(transparent)]
    Store(#[from] super::shared::StoreError),
    /// An empty record; refused because an empty frame cannot be told from zeroed disk blocks.
    #[error("journal records must not be empty")]
    EmptyRecord,
}

impl JournalError {
    /// Wraps an I/O error for the `Write` variant.
    pub(crate) fn write(path: PathBuf, op: &'static str, source: io::Error) -> Self {
        JournalError::Write {
            path,
            op,
            source: Arc::new(source),
        }
    }

    /// Wraps an I/O error for the `Open` variant.
    pub(crate) fn open(path: PathBuf, op: &'static str, source: io::Error) -> Self {
        JournalError::Open {
            path,
            op,
            source: Arc::new(source),
        }
    }
}
