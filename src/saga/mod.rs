//! The saga: one write, replicated to every node, retried, and undone where it applied when it
//! cannot be applied everywhere.
//!
//! [`Coordinator::execute`] runs one transaction through these steps:
//! 1. match a route, resolve the resource key, and wait for earlier writes to that key;
//! 2. fail fast (touching nothing) when a node is known down;
//! 3. read each node's pre-image when the route takes snapshots;
//! 4. send the write to every node at once; retry transient failures per node ([`attempt`]);
//! 5. decide ([`decide`]): every node converged → `succeeded`; nothing applied → `rejected` or
//!    `to_be_retried`; partial → undo on every node that applied or may have ([`undo`]) →
//!    `rolled_back`, or `failed` when an undo does not converge.

pub mod attempt;
pub mod compensate;
pub mod decide;
pub mod evidence;
pub mod live;
pub mod locks;
pub mod outcome;
pub mod policy;
pub mod readback;
pub mod recover;
pub mod run;
pub mod undo;

pub use decide::{Decision, decide};
pub use outcome::{
    Class, CompOutcome, CompReport, NodeReport, NodeResponse, Outcome, Reason, TxnState,
};
pub use run::WriteRequest;

use crate::admin::{Alerter, Metrics};
use crate::journal::Journal;
use crate::runtime::Current;
use locks::KeyLocks;
use std::sync::Arc;

/// Runs write transactions. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    pub(crate) current: Arc<Current>,
    pub(crate) locks: Arc<KeyLocks>,
    pub(crate) journal: Option<Arc<Journal>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) alerter: Option<Arc<Alerter>>,
}

impl Coordinator {
    /// A coordinator over the given runtime.
    pub fn new(current: Arc<Current>) -> Coordinator {
        Coordinator {
            current,
            locks: Arc::new(KeyLocks::default()),
            journal: None,
            metrics: Metrics::new(),
            alerter: None,
        }
    }

    /// Counts transactions and node requests in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Coordinator {
        self.metrics = metrics;
        self
    }

    /// Sends an alert when a transaction ends `failed`.
    pub fn with_alerter(mut self, alerter: Arc<Alerter>) -> Coordinator {
        self.alerter = Some(alerter);
        self
    }

    /// The metrics it counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Records every transaction in `journal` and honours its fences.
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Coordinator {
        self.journal = Some(journal);
        self
    }

    /// The journal, if any.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.journal.as_ref()
    }

    /// The runtime it reads its config from.
    pub fn current(&self) -> &Arc<Current> {
        &self.current
    }
}

/// A new transaction id: milliseconds since the epoch and 32 random bits, in hex, so ids sort by
/// start time.
pub fn new_txn_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    format!("{ms:012x}{:08x}", fastrand::u32(..))
}
