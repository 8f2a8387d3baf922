//! The live path's evidence: the nodes' answers, the pre-images when the route took them, and a
//! read of the resource on every node whose answer leaves its state open, judged by
//! [`evidence::judge`](crate::txn::evidence::judge).

use super::attempt::CallResult;
use super::decide::{all_converged, answers};
use super::deps::Deps;
use super::readback::{pre_image, pre_status, read_nodes};
use super::undo::PlanError;
use super::write::{Judged, Snapshots, Txn};
use crate::journal::record::VerifyPlan;
use crate::txn::UndoPlan;
use crate::txn::evidence::{NodeEvidence, State, judge_with};

/// The key's state after its last acknowledged write, in this write's terms, if the journal
/// knows it (in cluster mode, the store's, read under the key's lease).
///
/// A resource in the id map exists on every node (its create and every write since were
/// acknowledged, and a delete takes it out): present, when the key's history says nothing.
async fn history(d: &Deps, t: &Txn<'_>, check: Option<&VerifyPlan>) -> Option<State> {
    let check = check?;
    let known = d.journal.as_ref()?.key_state(&t.key, &t.id).await;
    known
        .and_then(|k| k.state_for(check))
        .or_else(|| check.mapped_prior())
}

/// Judges a write from its answers; reads the resource back first on every node whose
/// answer does not tell its state, when the route declares a read-back.
pub(super) async fn judge(
    d: &Deps,
    t: &Txn<'_>,
    results: &[CallResult],
    plans: &[Option<Result<UndoPlan, PlanError>>],
    snapshots: &Snapshots,
) -> Judged {
    let n = results.len();
    let known: Vec<bool> = plans.iter().map(|p| matches!(p, Some(Ok(_)))).collect();
    let mut ev: Vec<NodeEvidence> = answers(results, &known);
    let mut read_backs = vec![None; n];
    let check = t.verify_plan();
    let history = history(d, t, check.as_ref()).await;
    if all_converged(results) {
        return Judged {
            judgement: judge_with(&ev, history),
            read_backs,
        };
    }
    if let Some((_, snaps)) = snapshots {
        for (e, s) in ev.iter_mut().zip(snaps) {
            e.pre_image = pre_image(Some(pre_status(s)), check.as_ref(), t.restores());
        }
    }
    let which: Vec<bool> = ev.iter().map(NodeEvidence::needs_read_back).collect();
    if let Some(check) = check.as_ref().filter(|_| which.contains(&true)) {
        let nodes: Vec<_> = t.rt.nodes.all().iter().cloned().map(Some).collect();
        let reads = read_nodes(t.rt, &nodes, &which, check, &t.node_headers).await;
        for (i, read) in reads.into_iter().enumerate() {
            if let Some(read) = read {
                ev[i].read_back = read.read_back;
                read_backs[i] = Some(read.note);
            }
        }
    }
    let judgement = judge_with(&ev, history);
    if judgement.end != crate::txn::evidence::End::Complete {
        tracing::debug!(txn = %t.id, ?judgement, "write judged from evidence");
    }
    Judged {
        judgement,
        read_backs,
    }
}
