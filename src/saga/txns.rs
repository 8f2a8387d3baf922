//! The journal as the admin API sees it: [`TxnStore`] over [`Journal`], with retry and resolve.

use super::locks::KeyLocks;
use super::redrive::{OnChange, redrive_one};
use crate::journal::Journal;
use crate::journal::record::Entry;
use crate::runtime::Current;
use crate::txn::{Reason, TxnState};
use crate::txn::{TxnActionError, TxnStore, TxnView};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// The journal's transactions, for the admin API.
pub(crate) struct JournalTxns {
    pub journal: Arc<Journal>,
    pub current: Arc<Current>,
    /// The coordinator's key turns: a resolve waits for the write or re-drive running on the
    /// resource.
    pub locks: Arc<KeyLocks>,
    pub on_change: Option<OnChange>,
}

/// How long a person's resolve waits for the write or re-drive running on its resource.
const RESOLVE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// An entry as the admin API shows it.
pub(crate) fn view(e: &Entry) -> TxnView {
    TxnView {
        txn: e.begin.txn.clone(),
        state: e.state,
        method: e.begin.method.to_string(),
        path: e.begin.path.clone(),
        route: e.begin.route.clone(),
        key: e.begin.key.clone(),
        generation: e.begin.generation,
        started_ms: e.begin.at_ms,
        finished_ms: e.finished_ms,
        reason: e.reason.as_ref().map(Reason::describe),
        nodes: e.reports(),
        redrives: e.redrives,
        next_redrive_ms: None,
        resolution: e.resolution.clone(),
        resolved_by: e.resolved_by.clone(),
        resolved_ms: e.resolved_ms,
    }
}

impl JournalTxns {
    fn actionable(&self, txn: &str) -> Result<Entry, TxnActionError> {
        let e = self
            .journal
            .get(txn)
            .ok_or_else(|| TxnActionError::NotFound(txn.to_string()))?;
        if let Some(reason) = &e.resolution {
            return Err(already_resolved(&e, reason));
        }
        if !e.fences() {
            return Err(TxnActionError::NotActionable {
                txn: txn.to_string(),
                state: e.state,
            });
        }
        Ok(e)
    }
}

/// The answer to acting on a transaction a person resolved already.
fn already_resolved(e: &Entry, reason: &str) -> TxnActionError {
    TxnActionError::AlreadyResolved {
        txn: e.begin.txn.clone(),
        by: e.resolved_by.clone().unwrap_or_else(|| "a person".into()),
        at: e.resolved_ms.map_or("-".into(), |ms| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
            )
            .to_string()
        }),
        reason: reason.to_string(),
    }
}

impl TxnStore for JournalTxns {
    fn journal_open(&self) -> bool {
        self.journal.log_problem().is_none()
    }

    fn journal_problem(&self) -> Option<String> {
        self.journal.problem()
    }

    fn journal_stats(&self) -> Option<crate::txn::JournalStats> {
        self.journal.stats()
    }

    fn list(&self, state: Option<TxnState>, limit: usize) -> Vec<TxnView> {
        self.journal.list(state, limit).iter().map(view).collect()
    }

    fn get(&self, txn: &str) -> Option<TxnView> {
        self.journal.get(txn).as_ref().map(view)
    }

    fn counts(&self) -> (usize, usize) {
        self.journal.counts()
    }

    fn by_key(&self, key: &str, limit: usize) -> Vec<TxnView> {
        let mut found = self.journal.of_key(key);
        found.truncate(limit);
        found.iter().map(view).collect()
    }

    fn retry(&self, txn: &str) -> BoxFuture<'static, Result<TxnView, TxnActionError>> {
        let checked = self.actionable(txn);
        let (journal, current, locks, cb, txn) = (
            self.journal.clone(),
            self.current.clone(),
            self.locks.clone(),
            self.on_change.clone(),
            txn.to_string(),
        );
        async move {
            let e = checked?;
            if e.state == TxnState::Failed {
                redrive_one(&journal, &current, &locks, &txn, cb.as_ref()).await;
            } else {
                super::redrive::verify_one(&journal, &current, &locks, &txn, cb.as_ref()).await;
            }
            journal
                .get(&txn)
                .as_ref()
                .map(view)
                .ok_or(TxnActionError::NotFound(txn))
        }
        .boxed()
    }

    fn resolve(
        &self,
        txn: &str,
        reason: String,
        by: String,
    ) -> BoxFuture<'static, Result<TxnView, TxnActionError>> {
        let checked = self.actionable(txn);
        let (journal, locks, txn) = (self.journal.clone(), self.locks.clone(), txn.to_string());
        async move {
            let key = checked?.begin.key;
            // The resource's turn first: a re-drive running on it finishes (and may converge the
            // transaction) before a person's word lifts its fence, so no undo planned before the
            // resolve can land after a write admitted by it.
            let Ok(_turn) = tokio::time::timeout(RESOLVE_WAIT, locks.lock(&key)).await else {
                return Err(TxnActionError::Journal(format!("a write or re-drive on `{key}` is still running after {RESOLVE_WAIT:?}; try again")));
            };
            let busy = |why: String| TxnActionError::Journal(format!("cannot take the resource's lease ({why}); try again"));
            match journal.claim(&txn).await {
                Ok(true) => {}
                Ok(false) => return Err(busy("another sidecar is working on it".into())),
                Err(e) => return Err(busy(e.to_string())),
            }
            if let Some(e) = journal.get(&txn).filter(|e| !e.fences()) {
                journal.release(&txn).await;
                if let Some(reason) = &e.resolution {
                    return Err(already_resolved(&e, reason));
                }
                return Ok(view(&e));
            }
            journal.resolve_by(&txn, reason.clone(), Some(by.clone())).await.map_err(|e| TxnActionError::Journal(e.to_string()))?;
            tracing::warn!(txn = %txn, reason = %reason, by = %by, "transaction resolved by a person; its resource is unfenced");
            journal.get(&txn).as_ref().map(view).ok_or(TxnActionError::NotFound(txn))
        }
        .boxed()
    }
}
