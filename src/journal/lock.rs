//! Who owns a journal directory: one process at a time.
//!
//! A running `dtc run` holds an advisory lock (`flock`) on `dir/journal.lock` for as long as it
//! lives, and so does a standalone `dtc verify`; the lock file also names the holder's pid. A
//! second process that would append to (or compact) the same log is refused with a message that
//! says who holds it. The operating system releases the lock when the holder exits, SIGKILL
//! included, so a crash never leaves a stale lock behind — but not at once: a killed process
//! keeps its files open until the kernel has finished tearing it down, which under load can take
//! a while. A restart right after a crash therefore waits for the lock
//! ([`DirLock::acquire_within`], `journal.lock_wait`) instead of giving up at the first try.

use super::JournalError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Name of the lock file inside the journal directory.
pub(crate) const LOCK_FILE: &str = "journal.lock";

/// The held lock; released when dropped (or when the process exits).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock of `dir` (created if missing), or says who holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, JournalError> {
        std::fs::create_dir_all(dir).map_err(|e| JournalError::CreateDir {
            path: dir.to_path_buf(),
            source: Arc::new(e),
        })?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| JournalError::open(path.clone(), "open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(JournalError::Locked {
                    dir: dir.to_path_buf(),
                    holder: holder(dir),
                });
            }
            Err(TryLockError::Error(e)) => return Err(JournalError::open(path, "lock", e)),
        }
        // The pid is only for people reading the refusal; failing to write it is harmless.
        let _ = file.set_len(0);
        let _ = write!(file, "{}", std::process::id());
        Ok(DirLock { _file: file, path })
    }

    /// Takes the lock of `dir`, waiting up to `wait` while another process holds it (a
    /// predecessor killed a moment ago may still be exiting); says who holds it after that.
    pub async fn acquire_within(
        dir: &Path,
        wait: std::time::Duration,
    ) -> Result<DirLock, JournalError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut said = false;
        loop {
            match DirLock::acquire(dir) {
                Err(JournalError::Locked { holder, .. })
                    if tokio::time::Instant::now() < deadline =>
                {
                    if !said {
                        tracing::warn!(dir = %dir.display(), holder = ?holder, wait = ?wait, "another dtc holds the journal directory; waiting for it to exit");
                        said = true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                }
                done => return done,
            }
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The pid written by the holder of `dir`'s lock, if it can be read.
pub(crate) fn holder(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(LOCK_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let refused = DirLock::acquire(dir.path()).unwrap_err();
        assert!(
            matches!(&refused, JournalError::Locked { holder: Some(pid), .. } if *pid == std::process::id()),
            "{refused}"
        );
        assert!(refused.to_string().contains("another dtc"), "{refused}");
        drop(first);
        DirLock::acquire(dir.path()).expect("free again");
    }

    #[tokio::test]
    async fn a_restart_waits_for_a_holder_that_is_still_exiting() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let quick = DirLock::acquire_within(dir.path(), std::time::Duration::from_millis(30)).await;
        assert!(
            matches!(quick, Err(JournalError::Locked { .. })),
            "refused after the wait"
        );
        let path = dir.path().to_path_buf();
        let waiter = tokio::spawn(async move {
            DirLock::acquire_within(&path, std::time::Duration::from_secs(30)).await
        });
        tokio::task::yield_now().await;
        drop(first);
        waiter.await.unwrap().expect("taken once the holder let go");
    }
}
