//! The saga: one write, replicated to every node, retried, and undone where it applied when it
//! cannot be applied everywhere.
//!
//! **The invariant: an undo never destroys what was there before.** dtc runs an undo on a node
//! only when it knows the write changed that node and what the node held before (its own answer,
//! a read of the resource, a journaled pre-image, or the state the other nodes show). "May have
//! applied" — a 5xx, a cut connection, no answer recorded — is not knowledge: where the journal
//! cannot tell, dtc reads the nodes before it acts, and where the nodes cannot tell either it
//! undoes nothing there and ends the write `failed` (fenced, listed, alerted). One decision
//! ([`crate::txn::evidence::judge`]) over one evidence type
//! ([`crate::txn::evidence::NodeEvidence`]) serves the live
//! path ([`live`], [`decide`](mod@decide)), startup recovery, the re-drive and the late-write check
//! ([`recover`]).
//!
//! [`Coordinator::execute`] runs one transaction through these steps:
//! 1. match a route, resolve the resource key, and wait for earlier writes to that key;
//! 2. fail fast (touching nothing) when a node is known down;
//! 3. read each node's pre-image when the route takes snapshots;
//! 4. send the write to every node at once; retry transient failures per node ([`attempt`]);
//! 5. read the resource back ([`readback`]) on nodes whose answer leaves their state open;
//! 6. judge ([`crate::txn::evidence`]) and decide ([`decide`](mod@decide)): every node in the target state → `succeeded`;
//!    nothing applied → `rejected` or `to_be_retried`; partial → undo where the evidence shows
//!    the write landed ([`undo`]) → `rolled_back`, or `failed` when an undo does not converge or
//!    a node cannot be judged.

pub mod attempt;
pub mod compensate;
pub mod decide;
pub mod finish;
pub mod idem;
pub mod live;
pub mod locks;
pub mod readback;
pub mod recover;
pub mod redrive;
pub mod run;
pub mod send;
pub mod takeover;
pub mod txns;
pub mod undo;

pub use crate::txn::{
    Class, CompOutcome, CompReport, NodeReport, NodeResponse, Outcome, Reason, TxnState,
};
pub use decide::{Decision, decide};
pub use run::WriteRequest;

use crate::journal::Journal;
use crate::runtime::Current;
use crate::telemetry::trace::Tracing;
use crate::telemetry::{Alerter, Metrics};
use locks::KeyLocks;
use std::sync::Arc;

/// Runs write transactions. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    pub(crate) current: Arc<Current>,
    pub(crate) locks: Arc<KeyLocks>,
    /// Turns of clients' idempotency keys: a retry waits for the write it repeats.
    pub(crate) idem_locks: Arc<KeyLocks>,
    pub(crate) journal: Option<Arc<Journal>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) alerter: Option<Arc<Alerter>>,
    pub(crate) tracing: Arc<Tracing>,
}

impl Coordinator {
    /// A coordinator over the given runtime.
    pub fn new(current: Arc<Current>) -> Coordinator {
        Coordinator {
            current,
            locks: Arc::new(KeyLocks::default()),
            idem_locks: Arc::new(KeyLocks::default()),
            journal: None,
            metrics: Metrics::new(),
            alerter: None,
            tracing: Arc::new(Tracing::disabled()),
        }
    }

    /// Traces writes with `tracing` (its sampler and exporter).
    pub fn with_tracing(mut self, tracing: Arc<Tracing>) -> Coordinator {
        self.tracing = tracing;
        self
    }

    /// The tracing writes run under.
    pub fn tracing(&self) -> &Arc<Tracing> {
        &self.tracing
    }

    /// Takes key turns in `locks`, shared with the background tasks that work on the same keys.
    pub fn with_locks(mut self, locks: Arc<KeyLocks>) -> Coordinator {
        self.locks = locks;
        self
    }

    /// How many writes (and background tasks) hold or wait for `key`'s turn.
    pub fn queued(&self, key: &str) -> usize {
        self.locks.queued(key)
    }

    /// How many requests hold or wait for the turn of a client's idempotency key.
    pub fn idempotency_queued(&self, key: &str) -> usize {
        self.idem_locks.queued(key)
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
