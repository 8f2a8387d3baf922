//! Takeover (`[cluster]`): every sidecar looks for expired leases every `cluster.scan_every`;
//! exactly one claims each (`FOR UPDATE SKIP LOCKED`, the epoch bumped), recovers an in-doubt
//! transaction with [`super::redrive::recover_taken_over`] — what startup recovery calls
//! under the key's local turn — and releases the key. The same pass refreshes the fleet's view of transactions
//! that the admin API lists and the re-drive works on, and prunes finished transactions beyond
//! `journal.keep_finished` from the store.

use super::redrive::{OnChange, recover_taken_over};
use crate::journal::Journal;
use crate::journal::record::Entry;
use crate::runtime::{Current, Stop};
use crate::txn::TxnState;
use std::sync::Arc;

/// One pass: refresh the view, take over expired leases, recover or release each. Returns how
/// many transactions it took over.
pub(crate) async fn scan_once(
    journal: &Arc<Journal>,
    current: &Current,
    on_change: Option<&OnChange>,
) -> usize {
    if let Err(e) = journal.refresh().await {
        tracing::debug!(error = %e, "cannot refresh the fleet's transactions");
    }
    if let Err(e) = journal.prune().await {
        tracing::debug!(error = %e, "cannot prune finished transactions");
    }
    let taken: Vec<Entry> = match journal.take_over().await {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(error = %e, "cannot look for expired leases");
            return 0;
        }
    };
    let n = taken.len();
    for entry in taken {
        match entry.state {
            TxnState::InDoubt => {
                recover_taken_over(journal, current, &entry, on_change).await;
            }
            // A re-drive or check the lost sidecar had claimed: the key is free again, and the
            // background re-drive picks the transaction up.
            _ => journal.release(&entry.begin.txn).await,
        }
    }
    if n > 0 {
        journal.wake.notify_one();
    }
    n
}

/// Runs [`scan_once`] every `cluster.scan_every` until `stop`, the first time `scan_every` after
/// the start (which made its own pass).
pub(crate) async fn run(
    journal: Arc<Journal>,
    current: Arc<Current>,
    on_change: Option<OnChange>,
    mut stop: Stop,
) {
    // The start made the first pass (`app.rs`, before serving): the next one is due after
    // `scan_every`, not at once — a second pass racing the first writes refreshed the view at a
    // moment nobody chose.
    loop {
        let every = current
            .load()
            .settings
            .config
            .cluster
            .as_ref()
            .map_or(std::time::Duration::from_secs(1), |c| c.scan_every);
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = stop.stopped() => return,
        }
        scan_once(&journal, &current, on_change.as_ref()).await;
    }
}
