//! The [`Coordinator`]: what the proxy and the admin API hand a write to. Its one `impl` holds
//! the builders and the entry points; the write itself runs in [`super::run`].

use super::deps::{Deps, new_txn_id};
use super::end::{count, log_outcome};
use super::locks::KeyLocks;
use super::run::run;
use super::submit::{Submission, SubmitError, Submitted, submit};
use super::write::{Txn, WriteRequest};
use crate::journal::Journal;
use crate::runtime::Current;
use crate::telemetry::trace::Tracing;
use crate::telemetry::{Alerter, Metrics};
use crate::txn::outcome::Outcome;
use opentelemetry::context::FutureExt as _;
use std::sync::Arc;

/// Runs write transactions. Cheap to clone.
#[derive(Clone)]
pub struct Coordinator {
    deps: Deps,
}

impl Coordinator {
    /// A coordinator over the given runtime.
    pub fn new(current: Arc<Current>) -> Coordinator {
        Coordinator {
            deps: Deps {
                current,
                locks: Arc::new(KeyLocks::default()),
                idem_locks: Arc::new(KeyLocks::default()),
                journal: None,
                metrics: Metrics::new(),
                alerter: None,
                tracing: Arc::new(Tracing::disabled()),
            },
        }
    }

    /// Traces writes with `tracing` (its sampler and exporter).
    pub fn with_tracing(mut self, tracing: Arc<Tracing>) -> Coordinator {
        self.deps.tracing = tracing;
        self
    }

    /// The tracing writes run under.
    pub fn tracing(&self) -> &Arc<Tracing> {
        &self.deps.tracing
    }

    /// Takes key turns in `locks`, shared with the background tasks that work on the same keys.
    pub fn with_locks(mut self, locks: Arc<KeyLocks>) -> Coordinator {
        self.deps.locks = locks;
        self
    }

    /// The key turns it takes.
    pub fn locks(&self) -> &Arc<KeyLocks> {
        &self.deps.locks
    }

    /// How many writes (and background tasks) hold or wait for `key`'s turn.
    pub fn queued(&self, key: &str) -> usize {
        self.deps.locks.queued(key)
    }

    /// How many requests hold or wait for the turn of a client's idempotency key.
    pub fn idempotency_queued(&self, key: &str) -> usize {
        self.deps.idem_locks.queued(key)
    }

    /// Counts transactions and node requests in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Coordinator {
        self.deps.metrics = metrics;
        self
    }

    /// Sends an alert when a transaction ends `failed`.
    pub fn with_alerter(mut self, alerter: Arc<Alerter>) -> Coordinator {
        self.deps.alerter = Some(alerter);
        self
    }

    /// The alerter, if any.
    pub fn alerter(&self) -> Option<&Arc<Alerter>> {
        self.deps.alerter.as_ref()
    }

    /// The metrics it counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.deps.metrics
    }

    /// Records every transaction in `journal` and honours its fences.
    pub fn with_journal(mut self, journal: Arc<Journal>) -> Coordinator {
        self.deps.journal = Some(journal);
        self
    }

    /// The journal, if any.
    pub fn journal(&self) -> Option<&Arc<Journal>> {
        self.deps.journal.as_ref()
    }

    /// The runtime it reads its config from.
    pub fn current(&self) -> &Arc<Current> {
        &self.deps.current
    }

    /// Runs one write transaction to its end on the config in effect when it starts. The future
    /// should be driven to completion (the proxy spawns it, so a client that goes away does not
    /// cancel a half-done write).
    pub async fn execute(&self, req: WriteRequest) -> Outcome {
        let rt = self.deps.current.load();
        let t = Txn::start(new_txn_id(), &rt, &req);
        let trace = self
            .deps
            .tracing
            .write(&req.headers, t.name(), &req.method, &t.id);
        let mut outcome = run(&self.deps, &t).with_context(trace.context()).await;
        outcome.trace_id = Some(trace.trace_id());
        let status = outcome.response.as_ref().map(|r| r.status.as_u16());
        trace.end(outcome.state.as_str(), status);
        log_outcome(&outcome);
        count(&self.deps, &outcome);
        outcome
    }

    /// Runs a write dtc decided itself (a repair): explicit per-node requests, journaled and
    /// sent like any write, each node looked at afterwards. The caller holds the key's turn (and
    /// with `[cluster]` its lease, as `s.txn`) and decided from reads taken under them.
    pub async fn submit(&self, s: Submitted<'_>) -> Result<Submission, SubmitError> {
        submit(&self.deps, s).await
    }
}
