//! Nothing forgotten: recovery of in-doubt transactions at startup, the background re-drive of
//! failed ones, and the late-write check of rollbacks whose nodes had unknown outcomes.
//!
//! All three decide with [`saga::recover::resolve`](super::recover::resolve): the
//! journal's evidence plus a fresh read of every node the transaction touched, judged by the one
//! decision function the live path uses; an undo runs only where the evidence shows it cannot
//! destroy what the node held before.

use super::locks::{KeyGuard, KeyLocks};
use super::recover::{Resolution, evidence_of, fresh, header_map, resolve};
use super::undo::run_undo;
use crate::journal::Journal;
use crate::journal::record::{Entry, now_ms};
use crate::journal::shared::lease::under;
use crate::retry::Backoff;
use crate::runtime::{Current, Runtime, Stop};
use crate::txn::evidence::{State, Verdict};
use crate::txn::outcome::{NodeReport, Reason};
use crate::txn::{CompOutcome, TxnState};
use futures_util::{StreamExt, stream};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// Called after recovery or a re-drive changed a transaction, with its state before (alerts and
/// metrics hook in here).
pub(crate) type OnChange = Arc<dyn Fn(TxnState, &Entry) + Send + Sync>;

/// What recovery did at startup.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Recovered {
    /// Undone where the write landed.
    pub rolled_back: usize,
    /// Found on every node: complete.
    pub completed: usize,
    /// Applied nowhere.
    pub unchanged: usize,
    /// Could not be decided or undone: listed and re-driven.
    pub failed: usize,
}

/// How many keys recovery decides at once (a key's own writes are decided one at a time).
const KEYS_AT_ONCE: usize = 32;

/// Decides every in-doubt transaction (the client never got an answer) from the evidence, each
/// under its key's turn. Runs before dtc serves, so no new write can race it. A key's in-doubt
/// writes are decided one after another in journal order ([`recover_key`]); different keys at
/// once. With `[cluster]` the store's in-doubt transactions may be other sidecars' writes in
/// flight ([`Journal::in_doubt_to_recover`] gives none): recovery there is [`super::takeover`],
/// which claims expired leases and calls [`recover_taken_over`] on each.
pub(crate) async fn recover_at_start(
    journal: &Arc<Journal>,
    current: &Current,
    locks: &Arc<KeyLocks>,
    on_change: Option<&OnChange>,
) -> Recovered {
    let mut in_doubt = journal.in_doubt_to_recover();
    // Journal order: a key's in-doubt writes are its last turns, in turn order.
    in_doubt.sort_by_key(|e| e.seq);
    // A key whose older write is `failed` and unresolved: its nodes may differ already.
    let mut failed: HashMap<String, (u64, String)> = HashMap::new();
    for e in journal.open_entries() {
        if e.state == TxnState::Failed && e.resolution.is_none() {
            let oldest = failed
                .entry(e.begin.key.clone())
                .or_insert_with(|| (e.seq, e.begin.txn.clone()));
            if e.seq < oldest.0 {
                *oldest = (e.seq, e.begin.txn.clone());
            }
        }
    }
    let mut keys: Vec<Vec<Entry>> = Vec::new();
    let mut place: HashMap<String, usize> = HashMap::new();
    for entry in in_doubt {
        let i = *place.entry(entry.begin.key.clone()).or_insert_with(|| {
            keys.push(Vec::new());
            keys.len() - 1
        });
        keys[i].push(entry);
    }
    let states: Vec<Vec<TxnState>> = stream::iter(keys.into_iter().map(|entries| {
        let behind = entries
            .first()
            .and_then(|first| failed.get(&first.begin.key).filter(|f| f.0 < first.seq))
            .map(|f| f.1.clone());
        recover_key(journal, current, locks, entries, behind, on_change)
    }))
    .buffer_unordered(KEYS_AT_ONCE)
    .collect()
    .await;
    let mut out = Recovered::default();
    for state in states.into_iter().flatten() {
        match state {
            TxnState::RolledBack => out.rolled_back += 1,
            TxnState::Succeeded => out.completed += 1,
            TxnState::ToBeRetried => out.unchanged += 1,
            _ => out.failed += 1,
        }
    }
    out
}

/// Decides one key's in-doubt writes, given in journal order, one at a time: each judgement
/// (read-back, completion or undo) ends before the next write is read. A key's writes go to the
/// nodes one after another, so those in doubt are some that finished, at most one partly
/// applied, then some never sent: judged in this order, the first one that finds the nodes
/// apart brings them alike and every later one finds them alike. Judged in another order, a
/// later write's undo could take back what an earlier one, not yet judged, left (a create undone
/// on the nodes where the delete before it had not run).
///
/// Once one of them cannot be decided (`failed`: the nodes may differ), the key's later writes
/// within the window are not judged: what the nodes held before each of them is not known (the
/// nodes were not brought alike), so they end `failed` too, nothing read or undone, and the
/// re-drive takes them up in the same order ([`run_worker`]). So do all of them when an older
/// write of the key was `failed` already (`behind`: a pipelined write queued behind it, refused
/// at its turn, whose refusal was lost). Those beyond the window with no node record were never
/// sent ([`never_sent`]), whatever the writes before them came to.
async fn recover_key(
    journal: &Arc<Journal>,
    current: &Current,
    locks: &Arc<KeyLocks>,
    entries: Vec<Entry>,
    behind: Option<String>,
    on_change: Option<&OnChange>,
) -> Vec<TxnState> {
    let mut states = Vec::with_capacity(entries.len());
    let Some(ahead) = entries.first().map(|e| e.begin.txn.clone()) else {
        return states;
    };
    let mut undecided: Option<String> = behind;
    for (i, entry) in entries.iter().enumerate() {
        let _turn = locks.lock(&entry.begin.key).await;
        let state = if never_sent(entry, i + 1) {
            end_never_sent(journal, entry, &ahead, on_change).await
        } else if let Some(before) = &undecided {
            end_behind(journal, entry, before, on_change).await
        } else {
            recover_taken_over(journal, current, entry, on_change).await
        };
        if state == TxnState::Failed && undecided.is_none() {
            undecided = Some(entry.begin.txn.clone());
        }
        states.push(state);
    }
    states
}

/// Ends a write in doubt behind `before`, an in-doubt write of the same key that recovery could
/// not decide, as `failed` (listed, fenced): nothing is read, nothing undone.
async fn end_behind(
    journal: &Arc<Journal>,
    entry: &Entry,
    before: &str,
    on_change: Option<&OnChange>,
) -> TxnState {
    let txn = &entry.begin.txn;
    let why = format!(
        "any node (in doubt behind transaction {before} on the same resource, which could not be decided: judged after it)"
    );
    let reason = Reason::OutcomeUnknown(why);
    let state = TxnState::Failed;
    tracing::warn!(txn = %txn, key = %entry.begin.key, state = %state, reason = reason.describe(), "in-doubt transaction recovered");
    if let Err(e) = journal
        .redrive(txn, state, Some(reason), entry.reports())
        .await
    {
        tracing::error!(txn = %txn, error = %e, "cannot journal the decision");
    }
    if let (Some(cb), Some(e)) = (on_change, journal.get(txn)) {
        cb(TxnState::InDoubt, &e);
    }
    state
}

/// Whether a pipelined write, in doubt at the `place`-th place (from 1) of its key's in-doubt
/// writes in journal order, was never sent: it went to the nodes only once every write `k`
/// tickets before it had a durable end, and the first in-doubt write of its key, at least `k`
/// before it, has none. Its own node records must agree (none): if one is there the rule does
/// not hold and the write is judged from its evidence like any other.
fn never_sent(entry: &Entry, place: usize) -> bool {
    let Some(k) = entry.begin.early else {
        return false;
    };
    if place <= usize::from(k) {
        return false;
    }
    let recorded = entry.nodes.iter().any(|n| n.report.is_some());
    if recorded {
        tracing::error!(txn = %entry.begin.txn, key = %entry.begin.key, place, window = k, "a pipelined write beyond its window has node records: judged from its evidence instead");
    }
    !recorded
}

/// Ends a pipelined write that was never sent as `to_be_retried`: nothing is read, nothing undone.
async fn end_never_sent(
    journal: &Arc<Journal>,
    entry: &Entry,
    ahead: &str,
    on_change: Option<&OnChange>,
) -> TxnState {
    let txn = &entry.begin.txn;
    let k = entry.begin.early.unwrap_or_default();
    let why = format!(
        "queued behind transaction {ahead} and more than {k} writes in doubt at a crash (pipelined window {k})"
    );
    let reason = Reason::NeverSent(why);
    let nodes = entry
        .begin
        .nodes
        .iter()
        .map(|(name, _)| NodeReport::not_sent(name))
        .collect();
    let state = TxnState::ToBeRetried;
    tracing::warn!(txn = %txn, key = %entry.begin.key, state = %state, reason = reason.describe(), "in-doubt transaction recovered");
    if let Err(e) = journal.redrive(txn, state, Some(reason), nodes).await {
        tracing::error!(txn = %txn, error = %e, "cannot journal the decision");
    }
    if let (Some(cb), Some(e)) = (on_change, journal.get(txn)) {
        cb(TxnState::InDoubt, &e);
    }
    state
}

/// Decides an in-doubt transaction no write is running any more (local journal only): one
/// whose end record the log failed to write, found open again when the repaired log was read
/// back. A live write holds its key's turn from before its intent until its end is enqueued,
/// so an in-doubt entry whose key nobody holds or waits for has no owner; under the key's turn
/// it is looked at again, then decided like one found at startup. `None` when it was not
/// orphaned after all.
pub(crate) async fn recover_orphan(
    journal: &Arc<Journal>,
    current: &Current,
    locks: &Arc<KeyLocks>,
    txn: &str,
    on_change: Option<&OnChange>,
) -> Option<TxnState> {
    journal.own_in_doubt(txn)?;
    let _turn = turn(journal, locks, txn).await?;
    let entry = journal.own_in_doubt(txn)?;
    tracing::warn!(txn, key = %entry.begin.key, "an in-doubt transaction no write is running (its end was never journaled): deciding it from the nodes");
    Some(recover_taken_over(journal, current, &entry, on_change).await)
}

/// Decides one in-doubt transaction from the evidence and journals the decision, once its key's
/// turn is held: the local turn at startup, or with `[cluster]` the key's lease, claimed by
/// [`super::takeover`] from a lost sidecar (waiting for the local turn too would invert the
/// order a live write takes them in, local turn then lease, and stall that write until
/// `cluster.wait`). Returns the new state.
pub(crate) async fn recover_taken_over(
    journal: &Arc<Journal>,
    current: &Current,
    entry: &Entry,
    on_change: Option<&OnChange>,
) -> TxnState {
    let rt = current.load();
    let txn = &entry.begin.txn;
    let known = journal.key_state(&entry.begin.key, &entry.begin.txn).await;
    let r = under(
        journal.hold(txn),
        resolve(&rt, entry, known, &purpose(entry)),
    )
    .await;
    tracing::warn!(txn = %txn, key = %entry.begin.key, state = %r.state, reason = r.reason.as_ref().map(|r| r.describe()).unwrap_or_default(), "in-doubt transaction recovered");
    let state = r.state;
    unmap_if_deleted(journal, &rt, entry, state).await;
    record(journal, txn, r).await;
    if let (Some(cb), Some(e)) = (on_change, journal.get(txn)) {
        cb(TxnState::InDoubt, &e);
    }
    state
}

/// The undo's idempotency purpose: a fresh one when the nodes were read (the read shows the
/// state now, so an undo must really run), else the live path's own (the same undo retried).
fn purpose(entry: &Entry) -> String {
    match entry.begin.verify {
        Some(_) => fresh("recover"),
        None => "undo".into(),
    }
}

/// A mapped resource (a route's `id`) that a recovered or re-driven `DELETE` left absent on
/// every node leaves the id map, as the live path's end takes it out (before the decision is
/// journaled: with `[cluster]` that releases the key's lease the map's write needs).
async fn unmap_if_deleted(journal: &Journal, rt: &Runtime, entry: &Entry, state: TxnState) {
    if state != TxnState::Succeeded || entry.begin.method != "DELETE" {
        return;
    }
    let path = crate::wire::path::normalize(&entry.begin.path);
    let Some((rule, canonical)) = rt.settings.mapped_id(&path) else {
        return;
    };
    let txn = &entry.begin.txn;
    if let Err(e) = journal.unmap_ids(txn, &rule.collection, &canonical).await {
        tracing::error!(txn = %txn, error = %e, "cannot journal that a mapped resource is gone");
    }
}

async fn record(journal: &Journal, txn: &str, r: Resolution) {
    if let Err(e) = journal.redrive(txn, r.state, r.reason, r.nodes).await {
        tracing::error!(txn, error = %e, "cannot journal the decision");
    }
}

/// Re-drives one failed transaction now, under its key's turn (no write to the key runs
/// meanwhile, and the nodes are read after the turn is taken); returns its new state.
pub(crate) async fn redrive_one(
    journal: &Arc<Journal>,
    current: &Current,
    locks: &Arc<KeyLocks>,
    txn: &str,
    on_change: Option<&OnChange>,
) -> Option<TxnState> {
    let _turn = turn(journal, locks, txn).await?;
    if !claim(journal, txn).await {
        return journal.get(txn).map(|e| e.state);
    }
    let entry = journal.get(txn)?;
    if entry.state != TxnState::Failed || entry.resolution.is_some() {
        journal.release(txn).await;
        return Some(entry.state);
    }
    let rt = current.load();
    let known = journal.key_state(&entry.begin.key, &entry.begin.txn).await;
    let r = under(
        journal.hold(txn),
        resolve(&rt, &entry, known, &purpose(&entry)),
    )
    .await;
    let state = r.state;
    unmap_if_deleted(journal, &rt, &entry, state).await;
    record(journal, txn, r).await;
    if let (Some(cb), Some(e)) = (on_change, journal.get(txn)) {
        cb(TxnState::Failed, &e);
    }
    if state == TxnState::Failed {
        tracing::warn!(txn, key = %entry.begin.key, redrives = entry.redrives + 1, "re-drive did not converge yet");
    } else {
        tracing::info!(txn, key = %entry.begin.key, state = %state, redrives = entry.redrives + 1, "failed transaction converged");
    }
    Some(state)
}

/// The late-write check of a rollback: reads every node the transaction touched and compares it
/// with the state the decision chose for it; undoes a late write where the evidence allows.
/// Without a read-back rule, re-applies the undo on the nodes whose outcome was unknown and whose
/// prior state is known (idempotent: an "already" answer shows the rollback holds). Returns true
/// when verified.
pub(crate) async fn verify_one(
    journal: &Arc<Journal>,
    current: &Current,
    locks: &Arc<KeyLocks>,
    txn: &str,
    on_change: Option<&OnChange>,
) -> bool {
    let Some(_turn) = turn(journal, locks, txn).await else {
        return true;
    };
    if !claim(journal, txn).await {
        return false;
    }
    let hold = journal.hold(txn);
    let verified = under(hold, verify_claimed(journal, current, txn, on_change)).await;
    if !verified {
        // Released already when the check journaled a decision; else released here.
        journal.release(txn).await;
    }
    verified
}

/// Waits for the turn of `txn`'s key: background work on a transaction runs like a write to its
/// resource, after the writes before it and before the writes after it. `None` when the
/// transaction is gone.
async fn turn(journal: &Journal, locks: &Arc<KeyLocks>, txn: &str) -> Option<KeyGuard> {
    let key = journal.get(txn)?.begin.key;
    Some(locks.lock(&key).await)
}

/// Claims `txn`'s key in cluster mode (true at once without); false when another sidecar holds
/// it or the store cannot say.
async fn claim(journal: &Journal, txn: &str) -> bool {
    match journal.claim(txn).await {
        Ok(claimed) => claimed,
        Err(e) => {
            tracing::warn!(txn, error = %e, "cannot claim the transaction's key; trying later");
            false
        }
    }
}

async fn verify_claimed(
    journal: &Arc<Journal>,
    current: &Current,
    txn: &str,
    on_change: Option<&OnChange>,
) -> bool {
    let Some(entry) = journal.get(txn) else {
        return true;
    };
    if !entry.verify_pending {
        journal.release(txn).await;
        return true;
    }
    let rt = current.load();
    if entry.begin.verify.is_none() {
        return reapply_undos(journal, &rt, &entry).await;
    }
    let known = journal.key_state(&entry.begin.key, &entry.begin.txn).await;
    let r = resolve(&rt, &entry, known, &fresh("verify")).await;
    if r.all_read && r.judgement.settled() {
        return match journal.verified(txn).await {
            Ok(()) => {
                tracing::info!(
                    txn,
                    "rollback verified: every node read back in the state the decision chose"
                );
                true
            }
            Err(e) => {
                tracing::error!(txn, error = %e, "cannot journal the verification");
                false
            }
        };
    }
    if !r.all_read && r.state != TxnState::Failed {
        // A node could not be read: look again later.
        return false;
    }
    if r.judgement.nodes.contains(&Verdict::Undo) {
        tracing::warn!(
            txn,
            "a late write landed after the rollback; undoing it again"
        );
    }
    if r.state == TxnState::Failed {
        tracing::error!(
            txn,
            reason = r.reason.as_ref().map(|r| r.describe()).unwrap_or_default(),
            "the rollback's check found the nodes divergent"
        );
    }
    let state = r.state;
    record(journal, txn, r).await;
    if let (Some(cb), Some(e), true) = (on_change, journal.get(txn), state == TxnState::Failed) {
        cb(TxnState::RolledBack, &e);
    }
    false
}

/// The check without a read-back: the undo again, only where the prior state is known.
async fn reapply_undos(journal: &Arc<Journal>, rt: &Runtime, entry: &Entry) -> bool {
    let txn = &entry.begin.txn;
    let judgement = crate::txn::evidence::judge(&evidence_of(entry));
    let headers = header_map(&entry.begin.headers);
    for i in entry.late_write_nodes() {
        let (name, url) = &entry.begin.nodes[i];
        if judgement.expect[i] != Some(State::Prior) {
            continue;
        }
        let (Some(plan), Some(node)) = (
            &entry.nodes[i].undo,
            rt.nodes.node_for(name, url, &rt.settings),
        ) else {
            continue;
        };
        let r = run_undo(rt, &node, plan, txn, &headers, &fresh("verify")).await;
        if r.outcome != CompOutcome::Undone {
            return false;
        }
        if r.status.is_some_and(|s| (200..300).contains(&s)) {
            tracing::warn!(txn, node = %name, "a late write had landed after the rollback; undone again");
        }
    }
    match journal.verified(txn).await {
        Ok(()) => {
            tracing::info!(
                txn,
                "rollback re-applied on the nodes with unknown outcomes"
            );
            true
        }
        Err(e) => {
            tracing::error!(txn, error = %e, "cannot journal the verification");
            false
        }
    }
}

/// The background worker: re-drives failed transactions with capped exponential backoff and
/// checks rollbacks, until `stop` (after the transaction it is working on).
pub(crate) async fn run_worker(
    journal: Arc<Journal>,
    current: Arc<Current>,
    locks: Arc<KeyLocks>,
    on_change: Option<OnChange>,
    mut stop: Stop,
) {
    loop {
        let cfg = current.load().settings.config.journal.clone();
        let backoff = Backoff {
            attempts: u32::MAX,
            initial: cfg.redrive_initial,
            max: cfg.redrive_max,
            multiplier: 2.0,
            jitter: 0.0,
            deadline: Duration::MAX,
        };
        let now = now_ms();
        let mut next_in = Duration::from_secs(5);
        let mut open = journal.open_entries();
        // Journal order: a key's failed and in-doubt writes are decided (and its rollbacks
        // checked) oldest first, none while one before it on the key is still undecided (see
        // `recover_key`).
        open.sort_by_key(|e| (e.seq, e.begin.at_ms));
        let mut undecided: HashSet<String> = HashSet::new();
        for e in open {
            let finished = e.finished_ms.unwrap_or(now);
            let failed = e.state == TxnState::Failed && e.resolution.is_none();
            let in_doubt = e.state == TxnState::InDoubt;
            // A rollback's late-write check waits too: its read would see what the older,
            // undecided write left, and could undo it as a late copy of this one.
            if (failed || in_doubt || e.verify_pending) && undecided.contains(&e.begin.key) {
                continue;
            }
            let (due, verify) = if failed {
                (
                    finished + backoff.delay(e.redrives + 1).as_millis() as u64,
                    false,
                )
            } else if e.verify_pending {
                (finished + cfg.verify_after.as_millis() as u64, true)
            } else if in_doubt && locks.queued(&e.begin.key) == 0 {
                let txn = &e.begin.txn;
                let state = recover_orphan(&journal, &current, &locks, txn, on_change.as_ref())
                    .await
                    .or_else(|| journal.get(txn).map(|e| e.state));
                if matches!(state, Some(TxnState::Failed | TxnState::InDoubt)) {
                    undecided.insert(e.begin.key.clone());
                }
                continue;
            } else {
                if in_doubt {
                    undecided.insert(e.begin.key.clone());
                }
                continue;
            };
            if due > now {
                next_in = next_in.min(Duration::from_millis(due - now));
                if failed {
                    undecided.insert(e.begin.key.clone());
                }
                continue;
            }
            if verify {
                if !verify_one(&journal, &current, &locks, &e.begin.txn, on_change.as_ref()).await {
                    next_in = next_in.min(cfg.verify_after);
                }
            } else {
                let state =
                    redrive_one(&journal, &current, &locks, &e.begin.txn, on_change.as_ref()).await;
                if state == Some(TxnState::Failed) {
                    undecided.insert(e.begin.key.clone());
                }
                // Its next attempt is due after a new backoff: look again at once.
                next_in = Duration::ZERO;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(next_in.max(Duration::from_millis(10))) => {}
            () = journal.wake.notified() => {}
            () = stop.stopped() => return,
        }
    }
}
