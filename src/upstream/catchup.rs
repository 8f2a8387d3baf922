//! Whether a node may serve reads. A node added by a config reload, or found behind by
//! `dtc verify`, takes writes at once (every write goes to every node) but no reads until a
//! backfill ([`crate::verify`]) has copied onto it what the other nodes hold; this is where the
//! node's side of that is kept: why it is joining, and how far the backfill got.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

/// Why a node is joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinReason {
    /// A config reload added it: the backfill starts at once.
    Added,
    /// `dtc verify` found it holding something other than the rest on this key: the backfill
    /// runs with `dtc verify --repair` (or `verify.repair = true`).
    Behind { key: String },
}

impl JoinReason {
    /// A sentence for people.
    pub fn describe(&self) -> String {
        match self {
            JoinReason::Added => "added by a config reload".into(),
            JoinReason::Behind { key } => format!("dtc verify found it behind on {key}"),
        }
    }
}

/// How far a node's backfill got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Keys to bring in line in this pass (every key the journal knows, and listed ones).
    pub total: usize,
    /// Keys done in this pass: found in line, copied, or left pending.
    pub done: usize,
    /// Keys copied onto the node (a write) in this pass.
    pub copied: usize,
    /// Keys that could not be brought in line in this pass (read again in the next one).
    pub pending: usize,
    /// Passes finished so far.
    pub passes: u32,
    /// What the backfill cannot see (keys the journal does not know), and why keys are pending.
    pub note: Option<String>,
}

/// A node that is joining.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joining {
    pub since: SystemTime,
    pub reason: JoinReason,
    pub progress: Progress,
}

/// A node's catch-up state: readable, or joining.
#[derive(Debug)]
pub struct CatchUp {
    readable: AtomicBool,
    joining: Mutex<Option<Joining>>,
}

impl Default for CatchUp {
    fn default() -> Self {
        CatchUp {
            readable: AtomicBool::new(true),
            joining: Mutex::new(None),
        }
    }
}

impl CatchUp {
    /// Whether reads may go to the node.
    pub fn readable(&self) -> bool {
        self.readable.load(Ordering::Relaxed)
    }

    /// Takes the node out of reads until a backfill finishes. A node already joining keeps its
    /// progress; a reload's reason wins over a verify's (its backfill runs unasked).
    pub fn join(&self, reason: JoinReason) {
        let mut j = self.lock();
        match &mut *j {
            Some(existing) => {
                if reason == JoinReason::Added {
                    existing.reason = reason;
                }
            }
            None => {
                *j = Some(Joining {
                    since: SystemTime::now(),
                    reason,
                    progress: Progress::default(),
                })
            }
        }
        self.readable.store(false, Ordering::Relaxed);
    }

    /// The backfill's progress.
    pub fn progress(&self, p: Progress) {
        if let Some(j) = &mut *self.lock() {
            j.progress = p;
        }
    }

    /// The backfill brought every key in line: reads may go to the node again.
    pub fn caught_up(&self) {
        *self.lock() = None;
        self.readable.store(true, Ordering::Relaxed);
    }

    /// The joining state, `None` when the node is readable.
    pub fn view(&self) -> Option<Joining> {
        self.lock().clone()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Joining>> {
        self.joining.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joining_node_is_not_readable_until_caught_up_and_a_reload_reason_wins() {
        let c = CatchUp::default();
        assert!(c.readable() && c.view().is_none());
        c.join(JoinReason::Behind { key: "k".into() });
        assert!(!c.readable());
        c.progress(Progress {
            total: 4,
            done: 1,
            ..Progress::default()
        });
        c.join(JoinReason::Added);
        let j = c.view().unwrap();
        assert_eq!((j.reason, j.progress.done), (JoinReason::Added, 1));
        c.caught_up();
        assert!(c.readable() && c.view().is_none());
    }
}
