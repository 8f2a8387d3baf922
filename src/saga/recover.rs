//! Deciding a journaled transaction after the fact — at startup (in doubt), in the background
//! re-drive (failed) and in the late-write check (rolled back): the journal's answers and
//! pre-images plus a fresh read of every node the transaction touched, judged by
//! [`evidence::judge`](crate::txn::evidence::judge), and the undos the judgement allows.

use super::readback::{pre_image, read_nodes};
use super::undo::run_undo;
use crate::journal::record::Known;
use crate::journal::record::{Entry, now_ms};
use crate::runtime::Runtime;
use crate::txn::evidence::{Answer, End, Judgement, NodeEvidence, ReadBack, Verdict, judge_with};
use crate::txn::outcome::{Class, CompOutcome, CompReport, NodeReport, Reason, TxnState};
use crate::upstream::Node;
use futures_util::future::join_all;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;

/// Each node's evidence as the journal holds it (no read-back yet).
pub(crate) fn evidence_of(entry: &Entry) -> Vec<NodeEvidence> {
    let verify = entry.begin.verify.as_ref();
    entry
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let answer = match &n.report {
                None => Answer::Unrecorded,
                Some(r) if r.outcome == Class::NotSent => Answer::NotSent,
                Some(r) if r.status.is_none() && r.attempts == 0 => Answer::Unrecorded,
                Some(r) => Answer::Answered {
                    class: r.outcome,
                    ambiguous: r.maybe_applied,
                },
            };
            let undone = n
                .report
                .as_ref()
                .and_then(|r| r.compensation.as_ref())
                .is_some_and(|c| c.outcome == CompOutcome::Undone);
            NodeEvidence {
                answer,
                pre_image: pre_image(
                    entry.begin.pre.get(i).copied().flatten(),
                    verify,
                    entry.begin.pre_restores,
                ),
                undone,
                read_back: ReadBack::NotTaken,
                undo_known: n.undo.is_some(),
            }
        })
        .collect()
}

/// What deciding a journaled transaction came to.
pub(crate) struct Resolution {
    pub state: TxnState,
    pub reason: Option<Reason>,
    pub nodes: Vec<NodeReport>,
    pub judgement: Judgement,
    /// Whether every node answered the read-back (false: some could not be read, or the route
    /// has none).
    pub all_read: bool,
}

/// Reads every node the transaction touched (when the route declares a read-back), judges, and
/// runs the undos the judgement allows. `purpose` names the undo's idempotency key
/// (`<txn>-<purpose>`).
pub(crate) async fn resolve(
    rt: &Runtime,
    entry: &Entry,
    known: Option<Known>,
    purpose: &str,
) -> Resolution {
    let mut ev = evidence_of(entry);
    // What the key held after its last acknowledged write before this transaction; else, for
    // a mapped resource, present (the live judgement's rule, `VerifyPlan::mapped_prior`).
    let history = known
        .filter(|k| k.txn != entry.begin.txn && k.at_ms <= entry.begin.at_ms)
        .and_then(|k| entry.begin.verify.as_ref().and_then(|v| k.state_for(v)))
        .or_else(|| entry.begin.verify.as_ref().and_then(|v| v.mapped_prior()));
    let mut reports = entry.reports();
    let nodes: Vec<Option<Arc<Node>>> = entry
        .begin
        .nodes
        .iter()
        .map(|(name, url)| rt.nodes.node_for(name, url, &rt.settings))
        .collect();
    let headers = header_map(&entry.begin.headers);
    let mut all_read = false;
    if let Some(check) = &entry.begin.verify {
        let touched: Vec<bool> = ev.iter().map(|e| e.answer != Answer::NotSent).collect();
        let reads = read_nodes(rt, &nodes, &touched, check, &headers).await;
        all_read = true;
        for (i, read) in reads.into_iter().enumerate() {
            if let Some(read) = read {
                all_read &= read.read_back != ReadBack::Unclear;
                ev[i].read_back = read.read_back;
                reports[i].read_back = Some(read.note);
            }
        }
    }
    let judgement = judge_with(&ev, history);
    let undos = judgement.nodes.iter().enumerate().map(|(i, v)| {
        let (plan, node, headers) = (&entry.nodes[i].undo, &nodes[i], &headers);
        async move {
            if *v != Verdict::Undo {
                return None;
            }
            Some(match (plan, node) {
                (Some(plan), Some(node)) => {
                    run_undo(rt, node, plan, &entry.begin.txn, headers, purpose).await
                }
                (None, _) => failed_comp("no undo is known for this node"),
                (_, None) => failed_comp("the node's URL in the journal is not usable"),
            })
        }
    });
    let mut all_undone = true;
    let mut any_undone = ev.iter().any(|e| e.undone);
    for (i, comp) in join_all(undos).await.into_iter().enumerate() {
        if let Some(c) = comp {
            all_undone &= c.outcome == CompOutcome::Undone;
            any_undone |= c.outcome == CompOutcome::Undone;
            reports[i].compensation = Some(c);
        }
    }
    let names = |pick: &dyn Fn(usize) -> bool| -> String {
        let n: Vec<String> = (0..entry.begin.nodes.len())
            .filter(|&i| pick(i))
            .map(|i| format!("node {}", entry.begin.nodes[i].0))
            .collect();
        n.join(", ")
    };
    let divergent = judgement.divergent();
    let still = judgement.still_diverged();
    let (state, reason) = match judgement.end {
        _ if !still.is_empty() => {
            let odd = names(&|i| still.contains(&i));
            (TxnState::Failed, Some(Reason::Diverged(odd)))
        }
        End::Complete => (TxnState::Succeeded, Some(Reason::CompletedUnanswered)),
        End::Failed => {
            let unknown = names(&|i| judgement.nodes[i] == Verdict::Unknown);
            (TxnState::Failed, Some(Reason::OutcomeUnknown(unknown)))
        }
        _ if !divergent.is_empty() => {
            let odd = names(&|i| divergent.contains(&i));
            let why = format!("{odd} (read back in a state the decision did not leave it in)");
            (TxnState::Failed, Some(Reason::OutcomeUnknown(why)))
        }
        _ if !all_undone => (TxnState::Failed, Some(Reason::CompensationFailed)),
        End::RollBack => (TxnState::RolledBack, Some(Reason::Compensated)),
        End::Unchanged if any_undone => (TxnState::RolledBack, Some(Reason::Compensated)),
        End::Unchanged => (TxnState::ToBeRetried, Some(Reason::NotApplied)),
    };
    Resolution {
        state,
        reason,
        nodes: reports,
        judgement,
        all_read,
    }
}

/// A unique undo purpose: a later check must really run again, not be answered from a node's
/// idempotency cache.
pub(crate) fn fresh(purpose: &str) -> String {
    format!("{purpose}-{}", now_ms())
}

fn failed_comp(why: &str) -> CompReport {
    CompReport {
        outcome: CompOutcome::Failed,
        status: None,
        error: Some(why.to_string()),
        attempts: 0,
    }
}

/// The journaled client headers as a map.
pub(crate) fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    h
}
