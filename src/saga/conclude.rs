//! Concluding a judged write: each node's report, the decision ([`decide`]), the undo of the
//! nodes the evidence shows it changed (and only those), and the end state in the light of the
//! key's last acknowledged state.

use super::attempt::CallResult;
use super::decide::{Decision, decide};
use super::end::{report, unknown_nodes};
use super::undo::{PlanError, run_undo};
use super::write::{Journaled, Judged, Txn};
use crate::journal::shared::Hold;
use crate::journal::shared::lease::under;
use crate::txn::UndoPlan;
use crate::txn::evidence::{Judgement, Verdict};
use crate::txn::outcome::{CompOutcome, CompReport, NodeReport, NodeResponse, Reason, TxnState};
use futures_util::future::join_all;
use std::sync::Arc;

/// What a write is concluded from: the answers, the judgement and read-backs, each node's undo
/// plan, the node answers still being journaled, and the key's lease.
pub(super) struct Concluded<'a> {
    pub(super) results: &'a [CallResult],
    pub(super) judged: Judged,
    pub(super) plans: Vec<Option<Result<UndoPlan, PlanError>>>,
    pub(super) journaled: Vec<Journaled>,
    pub(super) hold: Option<Arc<Hold>>,
}

/// The end state, reason and answer of a judged write, with each node's report; undoes the
/// nodes to undo first when there are some.
pub(super) async fn conclude(
    t: &Txn<'_>,
    c: Concluded<'_>,
) -> (
    TxnState,
    Option<Reason>,
    Option<NodeResponse>,
    Vec<NodeReport>,
) {
    let Concluded {
        results,
        judged,
        mut plans,
        journaled,
        hold,
    } = c;
    let mut reports: Vec<NodeReport> = results
        .iter()
        .zip(t.rt.nodes.all())
        .zip(judged.read_backs)
        .map(|((r, n), read_back)| NodeReport {
            read_back,
            ..report(n, r)
        })
        .collect();
    // Only a node the evidence shows the write changed (its prior state known) is undone.
    // A node left unknown because its undo cannot be built keeps the reason in its report.
    for (plan, v) in plans.iter_mut().zip(&judged.judgement.nodes) {
        let unbuildable = *v == Verdict::Unknown && matches!(plan, Some(Err(_)));
        if *v != Verdict::Undo && !unbuildable {
            *plan = None;
        }
    }
    let decision = Decide {
        results,
        judgement: &judged.judgement,
        plans: &plans,
        journaled,
        hold,
    };
    let (state, reason, resp) = decided(t, decision, &mut reports).await;
    let (state, reason) = against_history(t, &judged.judgement, state, reason);
    (state, reason, resp, reports)
}

/// What [`decided`] decides from: the undo plans only of the nodes to undo.
struct Decide<'a> {
    results: &'a [CallResult],
    judgement: &'a Judgement,
    plans: &'a [Option<Result<UndoPlan, PlanError>>],
    journaled: Vec<Journaled>,
    hold: Option<Arc<Hold>>,
}

/// The end state from the decision; undoes the nodes to undo first when there are some.
async fn decided(
    t: &Txn<'_>,
    c: Decide<'_>,
    reports: &mut [NodeReport],
) -> (TxnState, Option<Reason>, Option<NodeResponse>) {
    let answer = |i: usize| c.results[i].answer.as_ref().ok().cloned();
    match decide(c.results, c.judgement) {
        Decision::Succeeded(i) => (TxnState::Succeeded, None, answer(i)),
        Decision::TargetStateHolds => (TxnState::Rejected, Some(Reason::TargetStateHolds), None),
        Decision::Rejected(Some(i)) => (TxnState::Rejected, None, answer(i)),
        Decision::Rejected(None) => (TxnState::Rejected, Some(Reason::NodesDisagree), None),
        Decision::ToBeRetried => (TxnState::ToBeRetried, Some(Reason::NotApplied), None),
        d @ (Decision::Compensate | Decision::Unresolved) => {
            // An undo may need the plans the nodes' answers gave: durable before it starts.
            let nodes = t.rt.nodes.all();
            for (done, node) in join_all(c.journaled).await.into_iter().zip(nodes) {
                if let Some(Err(e)) = done {
                    tracing::error!(txn = %t.id, node = %node.name(), error = %e, "cannot journal a node's answer");
                }
            }
            let (state, reason) = under(c.hold, compensate(t, c.plans, reports)).await;
            let no_rule = t.route.and_then(|r| r.compensation.as_ref()).is_none();
            let reason = match (d, no_rule) {
                (_, true) => Reason::NoCompensationRule,
                (Decision::Unresolved, false) => {
                    Reason::OutcomeUnknown(unknown_nodes(nodes, &c.judgement.nodes))
                }
                _ => reason,
            };
            let state = match d {
                Decision::Unresolved => TxnState::Failed,
                _ => state,
            };
            (state, Some(reason), None)
        }
    }
}

/// Undoes the write on every node that applied it or may have.
async fn compensate(
    t: &Txn<'_>,
    plans: &[Option<Result<UndoPlan, PlanError>>],
    reports: &mut [NodeReport],
) -> (TxnState, Reason) {
    let no_rule = t.route.and_then(|r| r.compensation.as_ref()).is_none();
    let runs = plans
        .iter()
        .zip(t.rt.nodes.all())
        .map(|(plan, node)| async move {
            match plan {
                None => None,
                Some(Err(e)) => Some(CompReport {
                    outcome: CompOutcome::Failed,
                    status: None,
                    error: Some(e.to_string()),
                    attempts: 0,
                }),
                Some(Ok(plan)) => {
                    Some(run_undo(t.rt, node, plan, &t.id, &t.req.headers, "undo").await)
                }
            }
        });
    let comps = join_all(runs).await;
    let mut all_undone = true;
    for (rep, comp) in reports.iter_mut().zip(comps) {
        if let Some(c) = comp {
            all_undone &= c.outcome == CompOutcome::Undone;
            rep.compensation = Some(c);
        }
    }
    match (all_undone, no_rule) {
        (true, _) => (TxnState::RolledBack, Reason::Compensated),
        (false, true) => (TxnState::Failed, Reason::NoCompensationRule),
        (false, false) => (TxnState::Failed, Reason::CompensationFailed),
    }
}

/// The end state in the light of the key's last acknowledged state: a node that did not hold it
/// before this write and still does not makes the transaction `failed` (listed, fenced: the
/// nodes differ, whatever this write did); one this write brought back in line is named. A node
/// that is catching up (joining, or found behind) is expected not to hold it yet: it serves no
/// reads, and its backfill visits the key after this write, under the key's turn.
fn against_history(
    t: &Txn<'_>,
    j: &Judgement,
    state: TxnState,
    reason: Option<Reason>,
) -> (TxnState, Option<Reason>) {
    let nodes = t.rt.nodes.all();
    let names = |which: Vec<usize>| -> String {
        let n: Vec<String> = which
            .iter()
            .map(|&i| format!("node {}", nodes[i].name()))
            .collect();
        n.join(", ")
    };
    let (behind, still): (Vec<usize>, Vec<usize>) = j
        .still_diverged()
        .into_iter()
        .partition(|&i| !nodes[i].catch_up.readable());
    if !behind.is_empty() {
        let odd = names(behind);
        tracing::info!(txn = %t.id, key = %t.key, nodes = %odd, "nodes catching up do not hold the key's last acknowledged state yet: their backfill brings them in line");
    }
    let realigned = j.realigned();
    if !still.is_empty() {
        let odd = names(still);
        tracing::error!(txn = %t.id, key = %t.key, nodes = %odd, "nodes do not hold the key's last acknowledged state: listed for repair");
        return (TxnState::Failed, Some(Reason::Diverged(odd)));
    }
    if !realigned.is_empty() {
        let odd = names(realigned);
        tracing::warn!(txn = %t.id, key = %t.key, nodes = %odd, "nodes did not hold the key's last acknowledged state before this write (lost data?); this write brought them back in line");
        if state == TxnState::Succeeded && reason.is_none() {
            return (state, Some(Reason::Realigned(odd)));
        }
    }
    (state, reason)
}
