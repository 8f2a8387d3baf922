//! The end of a transaction: each node's report, the outcome, and its log line.

use super::attempt::CallResult;
use super::decide::touched;
use super::live::pre_status;
use super::run::Txn;
use crate::txn::evidence::Verdict;
use crate::txn::outcome::{Class, NodeReport, NodeResponse, Outcome, Reason, TxnState};
use crate::upstream::Node;
use std::sync::Arc;

/// Each node's pre-image status, when the route read them.
pub(super) fn pre_statuses(
    snapshots: &Option<(String, Vec<super::undo::Snapshot>)>,
) -> Vec<Option<u16>> {
    snapshots
        .as_ref()
        .map(|(_, s)| s.iter().map(|s| Some(pre_status(s))).collect())
        .unwrap_or_default()
}

/// `node b, node c`: the nodes the judgement could not decide.
pub(crate) fn unknown_nodes(nodes: &[Arc<Node>], verdicts: &[Verdict]) -> String {
    let names: Vec<String> = nodes
        .iter()
        .zip(verdicts)
        .filter(|(_, v)| **v == Verdict::Unknown)
        .map(|(n, _)| format!("node {}", n.name()))
        .collect();
    names.join(", ")
}

pub(super) fn report(node: &Node, r: &CallResult) -> NodeReport {
    NodeReport {
        node: node.name().to_string(),
        outcome: r.class,
        status: r.status(),
        error: r.error(),
        attempts: r.attempts,
        maybe_applied: touched(r) && r.class != Class::Applied,
        compensation: None,
        read_back: None,
    }
}

pub(super) fn not_sent(nodes: &[Arc<Node>]) -> Vec<NodeReport> {
    nodes
        .iter()
        .map(|n| NodeReport {
            node: n.name().to_string(),
            outcome: Class::NotSent,
            status: None,
            error: None,
            attempts: 0,
            maybe_applied: false,
            compensation: None,
            read_back: None,
        })
        .collect()
}

pub(super) fn finish(
    t: &Txn<'_>,
    state: TxnState,
    reason: Option<Reason>,
    nodes: Vec<NodeReport>,
    response: Option<NodeResponse>,
) -> Outcome {
    Outcome {
        txn: t.id.clone(),
        state,
        reason,
        generation: t.rt.generation,
        route: t.route.map(|r| r.name.clone()),
        key: t.key.clone(),
        nodes,
        response,
        elapsed: t.started.elapsed(),
    }
}

pub(super) fn log_outcome(o: &Outcome) {
    let ms = o.elapsed.as_secs_f64() * 1000.0;
    let route = o.route.as_deref().unwrap_or("-");
    let nodes = o.summary();
    match o.state {
        TxnState::Succeeded | TxnState::Rejected => {
            tracing::info!(txn = %o.txn, state = %o.state, route, key = %o.key, generation = o.generation, ms, nodes = %nodes, "write finished")
        }
        TxnState::ToBeRetried | TxnState::RolledBack => {
            let reason = o.reason.as_ref().map(Reason::describe).unwrap_or_default();
            tracing::warn!(txn = %o.txn, state = %o.state, route, key = %o.key, generation = o.generation, ms, nodes = %nodes, reason, "write finished")
        }
        TxnState::Failed | TxnState::InDoubt => {
            let reason = o.reason.as_ref().map(Reason::describe).unwrap_or_default();
            tracing::error!(txn = %o.txn, state = %o.state, route, key = %o.key, generation = o.generation, ms, nodes = %nodes, reason, "write finished")
        }
    }
}
