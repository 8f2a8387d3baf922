//! Config file watcher for hot reload: notify events (and optionally SIGHUP) in, new file content out.
//!
//! The watcher knows nothing about the config schema. It watches the file's *parent directory*
//! (non-recursive) so that in-place writes, atomic rename-over and the Kubernetes ConfigMap layout
//! (`dtc.toml -> ..data/dtc.toml`, `..data` swapped by rename) all surface as events. Any event in
//! that directory starts a debounce window; once events have been quiet for `debounce`, the file is
//! read once (following symlinks) and delivered only if its content differs from the last content
//! delivered (or the `initial` content). A missing, unreadable or empty file is treated as a write
//! in progress: the read is retried briefly, then skipped with a warning until the next event.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::signal::unix::{Signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout_at};
use tracing::{debug, info, trace, warn};

/// How many times a read that fails mid-update is attempted before giving up until the next event.
const READ_ATTEMPTS: u32 = 5;
/// Pause between read attempts; with `READ_ATTEMPTS` this bounds a failed read to ~200ms.
const READ_RETRY: Duration = Duration::from_millis(50);
/// A directory that never goes quiet still gets a read every `debounce * MAX_DEBOUNCE_FACTOR`.
const MAX_DEBOUNCE_FACTOR: u32 = 10;

/// What to watch and how.
#[derive(Debug, Clone)]
pub(crate) struct WatchOptions {
    /// The config file; may be a symlink (it is re-resolved on every read).
    pub path: PathBuf,
    /// How long events must be quiet before the file is read (e.g. 100ms).
    pub debounce: Duration,
    /// Also re-read on `SIGHUP`. Installs a process-wide signal handler, so off by default.
    pub sighup: bool,
}

impl WatchOptions {
    /// Options for `path` with a 100ms debounce and no SIGHUP handler.
    #[cfg(test)]
    pub(crate) fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            debounce: Duration::from_millis(100),
            sighup: false,
        }
    }
}

/// What caused a re-read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// A filesystem event in the config file's directory.
    FileEvent,
    /// The process received `SIGHUP`.
    Signal,
}

/// New content of the config file, different from the content previously in effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The whole file, as read after the change.
    pub content: String,
    /// What caused the read that found it.
    pub trigger: Trigger,
}

/// Why watching could not start. `path` is always the config file as given.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The file's parent directory `dir` is missing, so there is nothing to watch.
    #[error("cannot watch {}: its directory {} does not exist", path.display(), dir.display())]
    DirMissing { path: PathBuf, dir: PathBuf },
    /// The OS file watcher refused (e.g. the inotify watch limit is reached).
    #[error("cannot watch {}: {source}", path.display())]
    Notify {
        path: PathBuf,
        source: notify::Error,
    },
    /// The SIGHUP handler could not be installed.
    #[error("cannot reload {} on SIGHUP: {source}", path.display())]
    Signal { path: PathBuf, source: io::Error },
    /// `start` was called outside a Tokio runtime.
    #[error("cannot watch {}: ConfigWatcher::start must be called inside a Tokio runtime", path.display())]
    NoRuntime { path: PathBuf },
}

/// A running watcher. Dropping it stops the debounce task and the OS watch; the receiver then ends.
pub(crate) struct ConfigWatcher {
    _notify: RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConfigWatcher {
    /// Starts watching. `initial` is the content currently in effect (so an event that leaves the
    /// content unchanged delivers nothing). Returns the watcher and a receiver of changes.
    /// Must be called inside a Tokio runtime.
    pub(crate) fn start(
        opts: WatchOptions,
        initial: String,
    ) -> Result<(ConfigWatcher, mpsc::Receiver<Change>), WatchError> {
        let path = opts.path.clone();
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| WatchError::NoRuntime { path: path.clone() })?;
        let dir = parent_dir(&path);
        if !dir.is_dir() {
            return Err(WatchError::DirMissing { path, dir });
        }
        let hup = opts.sighup.then(|| hangup(&path)).transpose()?;
        let (_notify, pokes) = watch_dir(&path, &dir)?;
        let (tx, rx) = mpsc::channel(16);
        let debounce = DebounceLoop {
            path,
            debounce: opts.debounce,
            last: initial,
            tx,
        };
        let task = runtime.spawn(debounce.run(pokes, hup));
        debug!(path = %opts.path.display(), dir = %dir.display(), "watching config file");
        Ok((ConfigWatcher { _notify, task }, rx))
    }
}

/// Installs the SIGHUP handler (process-wide; it stays installed after the watcher is dropped).
fn hangup(path: &Path) -> Result<Signal, WatchError> {
    let path = path.to_path_buf();
    tokio::signal::unix::signal(SignalKind::hangup())
        .map_err(|source| WatchError::Signal { path, source })
}

/// Watches `dir` on notify's thread and forwards "something happened" into tokio.
fn watch_dir(
    path: &Path,
    dir: &Path,
) -> Result<(RecommendedWatcher, mpsc::Receiver<()>), WatchError> {
    let notify_error = |source| WatchError::Notify {
        path: path.to_path_buf(),
        source,
    };
    // Capacity 1: the debounce loop only needs to know "something happened"; a full channel
    // already says so, which also coalesces bursts before they reach the task.
    let (poke_tx, poke_rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<Event>| match res {
        Ok(event) if is_own_read(&event) => trace!(kind = ?event.kind, "config dir event ignored"),
        Ok(event) => {
            debug!(kind = ?event.kind, paths = ?event.paths, "config dir event");
            let _ = poke_tx.try_send(());
        }
        Err(error) => {
            warn!(%error, "config watch error; re-reading to be safe");
            let _ = poke_tx.try_send(());
        }
    })
    .map_err(notify_error)?;
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .map_err(notify_error)?;
    Ok((watcher, poke_rx))
}

/// The directory to watch; a bare file name lives in the current directory.
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Opens, reads and read-only closes cannot change content — and our own reads produce them, so
/// reacting would re-read forever. A close after writing does matter.
fn is_own_read(event: &Event) -> bool {
    matches!(event.kind, EventKind::Access(kind) if kind != AccessKind::Close(AccessMode::Write))
}

/// The tokio side: waits for quiet, reads, compares, delivers.
struct DebounceLoop {
    path: PathBuf,
    debounce: Duration,
    last: String,
    tx: mpsc::Sender<Change>,
}

impl DebounceLoop {
    async fn run(mut self, mut pokes: mpsc::Receiver<()>, mut hup: Option<Signal>) {
        loop {
            let trigger = tokio::select! {
                poke = pokes.recv() => match poke {
                    Some(()) => Trigger::FileEvent,
                    None => return,
                },
                Some(()) = next_hup(&mut hup) => {
                    info!(path = %self.path.display(), "reload requested by SIGHUP");
                    Trigger::Signal
                }
                () = self.tx.closed() => return,
            };
            let settled = trigger == Trigger::Signal || self.quiet(&mut pokes).await;
            if !settled || !self.reload(trigger).await {
                return;
            }
        }
    }

    /// Waits until no event arrived for `debounce` (capped so a noisy directory still gets read).
    /// Returns false when the watcher is gone.
    async fn quiet(&self, pokes: &mut mpsc::Receiver<()>) -> bool {
        let cap = Instant::now() + self.debounce * MAX_DEBOUNCE_FACTOR;
        loop {
            let deadline = cap.min(Instant::now() + self.debounce);
            match timeout_at(deadline, pokes.recv()).await {
                Ok(Some(())) if Instant::now() < cap => continue,
                Ok(Some(())) | Err(_) => return true,
                Ok(None) => return false,
            }
        }
    }

    /// Reads the file and delivers it if changed. Returns false when nobody is listening anymore.
    async fn reload(&mut self, trigger: Trigger) -> bool {
        let Some(content) = read_settled(&self.path).await else {
            return true;
        };
        if content == self.last {
            debug!(path = %self.path.display(), ?trigger, "config file unchanged");
            return true;
        }
        info!(path = %self.path.display(), bytes = content.len(), ?trigger, "config file changed");
        self.last.clone_from(&content);
        self.tx.send(Change { content, trigger }).await.is_ok()
    }
}

async fn next_hup(hup: &mut Option<Signal>) -> Option<()> {
    match hup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads the file, retrying while it is missing, unreadable, not UTF-8 or empty (mid-rename or
/// mid-truncate). `None` after a bounded number of attempts, with a warning.
async fn read_settled(path: &Path) -> Option<String> {
    let mut problem = String::new();
    for attempt in 1..=READ_ATTEMPTS {
        match tokio::fs::read_to_string(path).await {
            Ok(content) if !content.is_empty() => return Some(content),
            Ok(_) => problem = "file is empty".to_owned(),
            Err(error) => problem = error.to_string(),
        }
        debug!(path = %path.display(), attempt, %problem, "config file not readable yet");
        if attempt < READ_ATTEMPTS {
            sleep(READ_RETRY).await;
        }
    }
    warn!(path = %path.display(), %problem, "config file unreadable after change; keeping current config");
    None
}

#[cfg(test)]
mod tests;
