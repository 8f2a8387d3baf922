//! The live path's evidence: the nodes' answers, the pre-images when the route took them, and a
//! read of the resource on every node whose answer leaves its state open, judged by
//! [`evidence::judge`](crate::txn::evidence::judge).

use super::Coordinator;
use super::attempt::CallResult;
use super::compensate::verify_plan;
use super::decide::{all_converged, answers};
use super::readback::read_nodes;
use super::run::Txn;
use super::undo::{PlanError, Snapshot};
use crate::journal::record::VerifyPlan;
use crate::txn::UndoPlan;
use crate::txn::evidence::{Judgement, NodeEvidence, PreImage, State, judge_with};

/// The judgement of a live write, and per node what its read-back showed (for its report).
pub(super) struct Judged {
    pub(super) judgement: Judgement,
    pub(super) read_backs: Vec<Option<String>>,
}

/// The status a pre-image read stands for: present (200) or absent (404).
pub(super) fn pre_status(s: &Snapshot) -> u16 {
    match s {
        Snapshot::Present(..) => 200,
        Snapshot::Absent => 404,
    }
}

/// A node's journaled pre-image as evidence; `restores` when the undo is built from it.
pub(crate) fn pre_image(
    status: Option<u16>,
    verify: Option<&VerifyPlan>,
    restores: bool,
) -> PreImage {
    let state = status.and_then(|s| verify.and_then(|v| v.state_of(s)));
    match (status, state, restores) {
        (None, ..) => PreImage::None,
        (Some(_), s, true) => PreImage::Restores(s),
        (Some(_), Some(s), false) => PreImage::Known(s),
        (Some(_), None, false) => PreImage::None,
    }
}

/// Whether the route's undo puts back the pre-image.
pub(super) fn restores(t: &Txn<'_>) -> bool {
    t.route
        .and_then(|r| r.compensation.as_ref())
        .is_some_and(|c| matches!(c.body, crate::config::validate::CompBody::Snapshot))
}

impl Coordinator {
    /// The key's state after its last acknowledged write, in this write's terms, if the journal
    /// knows it.
    fn history(&self, t: &Txn<'_>, check: Option<&VerifyPlan>) -> Option<State> {
        let known = self.journal.as_ref()?.last_acknowledged(&t.key)?;
        known.state_for(check?)
    }

    /// Judges a write from its answers; reads the resource back first on every node whose
    /// answer does not tell its state, when the route declares a read-back.
    pub(super) async fn judge_live(
        &self,
        t: &Txn<'_>,
        results: &[CallResult],
        plans: &[Option<Result<UndoPlan, PlanError>>],
        snapshots: &Option<(String, Vec<Snapshot>)>,
    ) -> Judged {
        let n = results.len();
        let known: Vec<bool> = plans.iter().map(|p| matches!(p, Some(Ok(_)))).collect();
        let mut ev: Vec<NodeEvidence> = answers(results, &known);
        let mut read_backs = vec![None; n];
        let check = verify_plan(t);
        let history = self.history(t, check.as_ref());
        if all_converged(results) {
            return Judged {
                judgement: judge_with(&ev, history),
                read_backs,
            };
        }
        if let Some((_, snaps)) = snapshots {
            for (e, s) in ev.iter_mut().zip(snaps) {
                e.pre_image = pre_image(Some(pre_status(s)), check.as_ref(), restores(t));
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
}
