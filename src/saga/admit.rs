//! Admission: the checks before anything is read or sent — a route (or pass-through allowed),
//! the resource key's turn (for a pipelined write, its intent journaled with its ticket, and at
//! the turn the window, see [`super::locks`]), no fence on it, no node down under
//! `writes.fail_fast`.

use super::deps::Deps;
use super::end::{not_sent, refused, untouched};
use super::locks::{Durable, Early, KeyGuard};
use super::write::{Planner, Txn};
use crate::txn::outcome::{Outcome, Reason, TxnState};

/// `k` of a pipelined write: it goes to the nodes while at most `k - 1` writes before it on its
/// key lack a durable end (recorded in its intent: recovery uses the `k` it was written with).
pub(crate) const WINDOW: u8 = 4;

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
    let mut guard = d.locks.ticket(&t.key, early(d, t));
    guard.turn().await;
    if let Some(intent) = guard.take_intent()
        && let Err(e) = intent.await
    {
        return Err(refused(d, t, e));
    }
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
    if let Err(e) = guard.window_open().await {
        let nodes = not_sent(t.rt.nodes.all());
        let reason = Reason::JournalUnavailable(e.to_string());
        return Err(untouched(d, t, TxnState::ToBeRetried, reason, nodes));
    }
    // Last, so a write that is a down node's half-open trial is not refused after claiming it.
    let undoable = t.route.is_some_and(|r| r.compensation.is_some());
    let wait = settings.config.writes.wait_for_down_node;
    let newly = settings.config.retry.deadline;
    if settings.config.writes.fail_fast
        && let Err(down) = t.rt.nodes.admit_write_within(undoable, wait, newly).await
    {
        let reason = Reason::NodeDown(down.node);
        let nodes = not_sent(t.rt.nodes.all());
        let mut refused = untouched(d, t, TxnState::ToBeRetried, reason, nodes);
        refused.retry_after = Some(down.retry_in);
        return Err(refused);
    }
    Ok(guard)
}

/// The early intent of a pipelined write (local journal only), for its ticket: journaled when
/// the ticket is taken, ended as never sent if the ticket is given up before its turn.
fn early<'a>(d: &'a Deps, t: &'a Txn<'_>) -> Option<impl FnOnce() -> Early + 'a> {
    let journal = d.journal.as_ref().filter(|j| !j.shared_by_fleet())?;
    if !t.pipelined() {
        return None;
    }
    Some(move || {
        // Each node's undo as far as the request alone tells it (a pipelined route takes no
        // pre-image): what the intent at the turn would carry, so recovery can run the undo
        // its judgement allows without the node's answer, lost in a crash.
        let planner = Planner {
            t,
            snapshots: &None,
        };
        let undo = (0..t.rt.nodes.all().len())
            .map(|i| planner.plan(i, None).and_then(Result::ok))
            .collect();
        let mut intent = t.intent(undo, Vec::new());
        intent.early = Some(WINDOW);
        let durable: Durable = Box::pin(journal.begin(intent.clone()));
        let nodes = not_sent(t.rt.nodes.all());
        let j = journal.clone();
        let abandon = Box::new(move || {
            let why = "given up before its turn".to_string();
            j.note(
                intent,
                TxnState::ToBeRetried,
                Some(Reason::NeverSent(why)),
                nodes,
            );
        });
        let j = journal.clone();
        let flush = Box::new(move || -> Durable { Box::pin(j.flush()) });
        Early {
            window: WINDOW,
            intent: Some(durable),
            abandon,
            flush,
        }
    })
}
