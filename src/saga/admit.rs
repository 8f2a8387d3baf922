//! Admission: the checks before anything is read or sent — a route (or pass-through allowed),
//! the resource key's turn, no fence on it, no node down under `writes.fail_fast`.

use super::deps::Deps;
use super::end::{not_sent, untouched};
use super::locks::KeyGuard;
use super::write::Txn;
use crate::txn::outcome::{Outcome, Reason, TxnState};

/// Waits for the key's turn and checks the write may go: `Ok` holds the turn until the write
/// ends; `Err` is the answer without touching a node. A write that is a down node's half-open
/// trial is admitted.
pub(super) async fn admit(d: &Deps, t: &Txn<'_>) -> Result<KeyGuard, Outcome> {
    let settings = &t.rt.settings;
    if t.route.is_none() && settings.unmatched() == crate::config::Unmatched::Refuse {
        return Err(untouched(
            d,
            t,
            TxnState::Rejected,
            Reason::NoRoute,
            Vec::new(),
        ));
    }
    let guard = d.locks.lock(&t.key).await;
    let journal = d.journal.as_ref();
    if let Some(blocking) = journal.and_then(|j| j.admission_fence(&t.key)) {
        let nodes = not_sent(t.rt.nodes.all());
        // A rollback waiting for its late-write check fences for a while, not for good.
        let verify_after = settings.config.journal.verify_after;
        if let Some(due_in) = journal.and_then(|j| j.check_due_in(&blocking, verify_after)) {
            let reason = Reason::Checking(blocking);
            let mut o = untouched(d, t, TxnState::ToBeRetried, reason, nodes);
            o.retry_after = Some(due_in);
            return Err(o);
        }
        let reason = Reason::Fenced(blocking);
        return Err(untouched(d, t, TxnState::Rejected, reason, nodes));
    }
    // Last, so a write that is a down node's half-open trial is not refused after claiming it.
    let undoable = t.route.is_some_and(|r| r.compensation.is_some());
    let wait = settings.config.writes.wait_for_down_node;
    if settings.config.writes.fail_fast
        && let Err(down) = t.rt.nodes.admit_write_within(undoable, wait).await
    {
        let reason = Reason::NodeDown(down.node);
        let nodes = not_sent(t.rt.nodes.all());
        let mut refused = untouched(d, t, TxnState::ToBeRetried, reason, nodes);
        refused.retry_after = Some(down.retry_in);
        return Err(refused);
    }
    Ok(guard)
}
