//! What the admin API asks of the transaction journal: list, inspect, retry and resolve
//! transactions. The journal implements [`TxnStore`]; [`NoJournal`] stands in when there is none
//! (tests, or a dtc started without a journal), so the admin API never depends on the journal
//! being built.

use super::outcome::{NodeReport, TxnState};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

/// One transaction as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TxnView {
    /// The transaction id (also sent to the client as `x-dtc-transaction-id`).
    pub txn: String,
    pub state: TxnState,
    /// The client's method, e.g. `POST`.
    pub method: String,
    /// The client's path and query.
    pub path: String,
    /// The matched route, e.g. `POST /v1/group/`; `None` when no route matched.
    pub route: Option<String>,
    /// The resource key the write was serialized (and is fenced) on.
    pub key: String,
    /// The config generation the transaction ran on.
    pub generation: u64,
    /// Start, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// End, in milliseconds since the Unix epoch; `None` while it is not final.
    pub finished_ms: Option<u64>,
    /// Why it ended as it did, for people.
    pub reason: Option<String>,
    /// What each node did.
    pub nodes: Vec<NodeReport>,
    /// Background re-drives run so far.
    pub redrives: u32,
    /// When the next re-drive is due, in milliseconds since the Unix epoch.
    pub next_redrive_ms: Option<u64>,
    /// The reason a person gave when resolving it by hand.
    pub resolution: Option<String>,
    /// Who resolved it (as their client said), when it was resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// When it was resolved, in milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_ms: Option<u64>,
}

/// The local journal's size, age and health (`/metrics`, `/status`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalStats {
    /// Bytes of records in the log file (header included).
    pub size_bytes: u64,
    /// Transactions kept: the open ones and the `journal.keep_finished` window.
    pub live_entries: usize,
    /// Start of the oldest kept transaction, in milliseconds since the Unix epoch.
    pub oldest_live_ms: Option<u64>,
    /// Records appended since the last successful compaction.
    pub records_since_compaction: u64,
    /// Why compaction cannot keep up, when it cannot.
    pub compaction_behind: Option<String>,
    /// Why the journal refuses records now (disk full, I/O error, read-only, file gone).
    pub problem: Option<String>,
    /// Since when it refuses them, in milliseconds since the Unix epoch.
    pub problem_since_ms: Option<u64>,
    /// How many times the journal stopped taking records since dtc started.
    pub failures: u64,
}

/// Why a retry or resolve could not be done.
#[derive(Debug, thiserror::Error)]
pub enum TxnActionError {
    /// No transaction with this id (or id prefix) is in the journal.
    #[error(
        "no transaction {0} in the journal (an id or the start of one; the journal keeps the latest finished transactions and compacts older ones away)"
    )]
    NotFound(String),
    /// An id prefix that more than one transaction starts with.
    #[error("`{prefix}` starts {count} transaction ids ({examples}): give more of the id")]
    Ambiguous {
        prefix: String,
        count: usize,
        examples: String,
    },
    /// A person resolved it already.
    #[error("transaction {txn} is already resolved by {by} at {at} ({reason})")]
    AlreadyResolved {
        txn: String,
        by: String,
        at: String,
        reason: String,
    },
    /// The transaction is in a state the action does not apply to (e.g. retrying a success).
    #[error("transaction {txn} is {state}: only failed transactions can be retried or resolved")]
    NotActionable { txn: String, state: TxnState },
    /// The journal could not record the action.
    #[error("the journal could not record the action: {0}")]
    Journal(String),
}

/// The journal as the admin API sees it. Implemented by the journal; every method is cheap
/// except `retry` and `resolve`, which return futures that do the work.
pub trait TxnStore: Send + Sync + 'static {
    /// Whether the journal is open and accepting records (a readiness condition).
    fn journal_open(&self) -> bool;
    /// Why the journal (the local log, or with `[cluster]` the shared store) cannot take
    /// writes now, if it cannot.
    fn journal_problem(&self) -> Option<String> {
        None
    }
    /// The local journal's size, age and health, when there is a local journal.
    fn journal_stats(&self) -> Option<JournalStats> {
        None
    }
    /// Transactions, newest first, optionally only those in `state`, at most `limit`.
    fn list(&self, state: Option<TxnState>, limit: usize) -> Vec<TxnView>;
    /// One transaction with its per-node detail.
    fn get(&self, txn: &str) -> Option<TxnView>;
    /// The transactions on resource `key`, newest first, at most `limit`.
    fn by_key(&self, key: &str, limit: usize) -> Vec<TxnView> {
        let mut found: Vec<TxnView> = self
            .list(None, usize::MAX)
            .into_iter()
            .filter(|t| t.key == key)
            .collect();
        found.truncate(limit);
        found
    }
    /// How many transactions are `(in_doubt, failed)` now.
    fn counts(&self) -> (usize, usize);
    /// Re-drives a failed transaction now; resolves to its view afterwards.
    fn retry(&self, txn: &str) -> BoxFuture<'static, Result<TxnView, TxnActionError>>;
    /// Marks a failed transaction as handled by a person, with their reason and who they are
    /// (both recorded).
    fn resolve(
        &self,
        txn: &str,
        reason: String,
        by: String,
    ) -> BoxFuture<'static, Result<TxnView, TxnActionError>>;
    /// The transaction whose id is `id`, or the only one whose id starts with it.
    fn find(&self, id: &str) -> Result<TxnView, TxnActionError> {
        if let Some(t) = self.get(id) {
            return Ok(t);
        }
        let mut found: Vec<TxnView> = if id.is_empty() {
            Vec::new()
        } else {
            self.list(None, usize::MAX)
                .into_iter()
                .filter(|t| t.txn.starts_with(id))
                .collect()
        };
        match found.len() {
            0 => Err(TxnActionError::NotFound(id.to_string())),
            1 => Ok(found.remove(0)),
            count => Err(TxnActionError::Ambiguous {
                prefix: id.to_string(),
                count,
                examples: found
                    .iter()
                    .take(3)
                    .map(|t| t.txn.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

/// The store of a dtc without a journal: closed, empty, every action `NotFound`.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoJournal;

impl TxnStore for NoJournal {
    fn journal_open(&self) -> bool {
        false
    }

    fn list(&self, _state: Option<TxnState>, _limit: usize) -> Vec<TxnView> {
        Vec::new()
    }

    fn get(&self, _txn: &str) -> Option<TxnView> {
        None
    }

    fn counts(&self) -> (usize, usize) {
        (0, 0)
    }

    fn retry(&self, txn: &str) -> BoxFuture<'static, Result<TxnView, TxnActionError>> {
        let err = TxnActionError::NotFound(txn.to_string());
        Box::pin(std::future::ready(Err(err)))
    }

    fn resolve(
        &self,
        txn: &str,
        _reason: String,
        _by: String,
    ) -> BoxFuture<'static, Result<TxnView, TxnActionError>> {
        let err = TxnActionError::NotFound(txn.to_string());
        Box::pin(std::future::ready(Err(err)))
    }
}
