//! Hot reload: the running config follows its file, and a bad edit never replaces it.
//!
//! One task per running app. For each new file content the [`ConfigWatcher`] delivers
//! (debounced; in-place writes, rename-over, the ConfigMap `..data` swap, and `SIGHUP`):
//! 1. [`crate::config::parse`] it: the very pipeline `dtc check` runs, so both agree on every file;
//! 2. invalid → log an error naming the file, line and field, count the failure, keep serving
//!    the running config;
//! 3. valid → keep the [restart-only](crate::config::diff::RESTART_ONLY) settings at their running
//!    values (with a warning naming them), then [`Current::swap`] in the rest;
//! 4. log one line: the new generation, the nodes added/removed/changed, the sections changed.
//!
//! A valid file whose effective settings equal the running ones (a comment edit, or only a
//! restart-only field changed) swaps nothing and keeps the generation.
//!
//! Consistency comes from [`Current`]: a transaction runs to its end on the snapshot it loaded,
//! new transactions load the new one, and unchanged nodes carry their pool and health across.

use super::Current;
use crate::config::diff::{ConfigDiff, keep_restart_only};
use crate::config::watch::{ConfigWatcher, WatchError, WatchOptions};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

/// How long file events must be quiet before the file is read.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// The reload history the admin API shows. Not on the request path, so a mutex is fine.
#[derive(Default)]
pub struct ReloadStatus {
    state: Mutex<ReloadState>,
    metrics: Option<Arc<crate::telemetry::Metrics>>,
}

/// One reading of [`ReloadStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadState {
    /// The config generation in effect (1 until the first reload that changes something).
    pub generation: u64,
    /// Valid files that changed the running config.
    pub reloads_ok: u64,
    /// Valid files whose effective config equals the running one: nothing applied.
    pub reloads_unchanged: u64,
    /// Restart-only settings the latest valid file changes (kept at their running values).
    pub restart_pending: Vec<String>,
    /// Invalid files refused.
    pub reloads_failed: u64,
    /// Why the latest file was refused, with file, line and field; `None` once a valid file
    /// is applied after it.
    pub last_error: Option<String>,
    /// When the latest file, valid or not, was processed.
    pub last_reload_at: Option<SystemTime>,
}

impl ReloadStatus {
    /// A status for an app starting on `generation`.
    pub fn new(generation: u64) -> ReloadStatus {
        ReloadStatus {
            state: Mutex::new(ReloadState {
                generation,
                ..ReloadState::default()
            }),
            metrics: None,
        }
    }

    /// Also counts reloads in `metrics` (`dtc_config_reloads_total`).
    pub fn with_metrics(mut self, metrics: Arc<crate::telemetry::Metrics>) -> ReloadStatus {
        self.metrics = Some(metrics);
        self
    }

    /// The current reading.
    pub fn get(&self) -> ReloadState {
        self.lock().clone()
    }

    fn applied(&self, generation: u64, pending: &[&str]) {
        let mut s = self.lock();
        if s.generation == generation {
            s.reloads_unchanged += 1;
        } else {
            s.reloads_ok += 1;
        }
        s.generation = generation;
        s.restart_pending = pending.iter().map(|p| p.to_string()).collect();
        s.last_error = None;
        if let Some(m) = &self.metrics {
            m.reload(true);
        }
        s.last_reload_at = Some(SystemTime::now());
    }

    fn refused(&self, error: String) {
        let mut s = self.lock();
        s.reloads_failed += 1;
        s.last_error = Some(error);
        if let Some(m) = &self.metrics {
            m.reload(false);
        }
        s.last_reload_at = Some(SystemTime::now());
    }

    fn lock(&self) -> MutexGuard<'_, ReloadState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What one new file content came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Swapped in as this generation.
    Swapped(u64),
    /// Valid, but its effective settings equal the running ones: nothing swapped.
    Unchanged,
    /// Invalid: the running config stays.
    Refused,
}

/// Applies new contents of one config file to a running [`Current`].
pub struct Reloader {
    path: PathBuf,
    current: Arc<Current>,
    status: Arc<ReloadStatus>,
}

/// The running reload task; dropping it stops watching.
#[derive(Debug)]
pub struct ReloadHandle {
    task: JoinHandle<()>,
}

impl Drop for ReloadHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reloader {
    /// A reloader of `path` into `current`, recording into `status`.
    pub fn new(path: PathBuf, current: Arc<Current>, status: Arc<ReloadStatus>) -> Reloader {
        Reloader {
            path,
            current,
            status,
        }
    }

    /// Starts watching the file (and `SIGHUP`); `initial` is the content the running config was
    /// parsed from. Must be called inside a Tokio runtime.
    pub fn start(self, initial: String) -> Result<ReloadHandle, WatchError> {
        let opts = WatchOptions {
            path: self.path.clone(),
            debounce: DEBOUNCE,
            sighup: true,
        };
        let (watcher, mut changes) = ConfigWatcher::start(opts, initial)?;
        info!(path = %self.path.display(), "hot reload on: edits to the config file apply live");
        let task = tokio::spawn(async move {
            let _watcher = watcher;
            while let Some(change) = changes.recv().await {
                self.apply(&change.content);
            }
        });
        Ok(ReloadHandle { task })
    }

    /// Parses `text` as `dtc check` does and swaps it in when valid.
    pub fn apply(&self, text: &str) -> Applied {
        let path = self.path.display().to_string();
        let mut next = match crate::config::parse(text, &path) {
            Ok(settings) => settings,
            Err(e) => {
                error!(%path, error = %e, "config reload refused; the running config stays");
                self.status.refused(e.to_string());
                return Applied::Refused;
            }
        };
        for w in &next.warnings {
            warn!(%path, warning = %w, "config warning");
        }
        let running = self.current.load();
        let kept = keep_restart_only(&running.settings, &mut next);
        if !kept.is_empty() {
            let settings = kept.join(", ");
            warn!(%path, %settings, "config reload: these settings need a restart; they keep their running values, the rest applies");
        }
        let diff = ConfigDiff::between(&running.settings, &next);
        if diff.is_empty() {
            info!(%path, generation = running.generation, "config file changed, effective config did not: nothing to swap");
            self.status.applied(running.generation, &kept);
            return Applied::Unchanged;
        }
        let generation = self.current.swap(next).generation;
        info!(
            %path,
            generation,
            nodes_added = %names(&diff.nodes_added),
            nodes_removed = %names(&diff.nodes_removed),
            nodes_changed = %names(&diff.nodes_changed),
            changed = %names(&diff.sections),
            "config reloaded"
        );
        self.status.applied(generation, &kept);
        Applied::Swapped(generation)
    }
}

/// `a,b` or `-` when empty, for one log field.
fn names<S: AsRef<str>>(list: &[S]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    list.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODES: &str = "[[nodes]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\n";

    #[tokio::test]
    async fn applies_valid_text_refuses_invalid_and_skips_no_ops() {
        let current = Arc::new(Current::new(crate::config::parse(NODES, "t").unwrap()));
        let status = Arc::new(ReloadStatus::new(1));
        let r = Reloader::new("dtc.toml".into(), current.clone(), status.clone());
        assert_eq!(r.apply("[retry]\nattempts = 0\n"), Applied::Refused);
        let refused = status.get();
        assert_eq!((refused.generation, refused.reloads_failed), (1, 1));
        let error = refused.last_error.expect("an error");
        assert!(
            error.contains("dtc.toml") && error.contains("`nodes`"),
            "{error}"
        );
        assert_eq!(r.apply(&format!("# note\n{NODES}")), Applied::Unchanged);
        let next = format!("{NODES}[retry]\nattempts = 2\n");
        assert_eq!(r.apply(&next), Applied::Swapped(2));
        assert_eq!(current.load().settings.config.retry.attempts, 2);
        let ok = status.get();
        assert_eq!((ok.generation, ok.reloads_ok, ok.last_error), (2, 1, None));
        assert_eq!(
            ok.reloads_unchanged, 1,
            "a no-op reload is not an applied one"
        );
        assert_eq!(*current.subscribe().borrow(), 2);
    }
}
