//! What the steps of a write share: the config in effect, the key turns, the journal, metrics,
//! alerts and tracing. Plain data: the steps take it as an argument, so none of them can call
//! back into the [`Coordinator`](super::coordinator::Coordinator) that runs them.

use super::locks::KeyLocks;
use crate::journal::Journal;
use crate::runtime::Current;
use crate::telemetry::trace::Tracing;
use crate::telemetry::{Alerter, Metrics};
use std::sync::Arc;

/// A coordinator's parts. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Deps {
    pub(crate) current: Arc<Current>,
    pub(crate) locks: Arc<KeyLocks>,
    /// Turns of clients' idempotency keys: a retry waits for the write it repeats.
    pub(crate) idem_locks: Arc<KeyLocks>,
    pub(crate) journal: Option<Arc<Journal>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) alerter: Option<Arc<Alerter>>,
    pub(crate) tracing: Arc<Tracing>,
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
