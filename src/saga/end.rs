//! The end of a transaction: each node's report, the durable end record, the outcome, its log
//! line, metrics and alert — and the end of one refused before it touched a node (which any
//! step above may come to).

use super::attempt::CallResult;
use super::deps::Deps;
use super::locks::KeyGuard;
use super::readback::pre_status;
use super::write::{Snapshots, Txn};
use crate::journal::JournalError;
use crate::journal::record::now_ms;
use crate::journal::shared::StoreError;
use crate::telemetry::{AlertEvent, AlertKind};
use crate::txn::evidence::Verdict;
use crate::txn::outcome::{CompOutcome, NodeReport, NodeResponse, Outcome, Reason, TxnState};
use crate::upstream::Node;
use std::sync::Arc;

/// Each node's pre-image status, when the route read them.
pub(super) fn pre_statuses(snapshots: &Snapshots) -> Vec<Option<u16>> {
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
        maybe_applied: r.ambiguous,
        // Any attempt that may still be under way, whatever the last one said: the write may
        // still land here ([`crate::txn::evidence::may_land_later`]).
        in_flight: Some(r.in_flight),
        compensation: None,
        read_back: None,
    }
}

pub(super) fn not_sent(nodes: &[Arc<Node>]) -> Vec<NodeReport> {
    nodes
        .iter()
        .map(|n| NodeReport::not_sent(n.name()))
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
        replayed: false,
        retry_after: None,
        trace_id: None,
    }
}

/// The answer a retry with the transaction's idempotency key gets again: a node's answer that
/// passed to the client, when the client sent a key and the body is within
/// `idempotency.max_answer`.
fn kept_answer(
    t: &Txn<'_>,
    state: TxnState,
    resp: Option<&NodeResponse>,
) -> Option<crate::journal::record::StoredAnswer> {
    let resp = resp.filter(|_| t.idem.is_some())?;
    let max = t.rt.settings.config.idempotency.max_answer;
    if !matches!(state, TxnState::Succeeded | TxnState::Rejected) || resp.body.len() > max {
        return None;
    }
    let mut headers = resp.headers.clone();
    crate::headers::strip_hop_by_hop(&mut headers);
    Some(crate::journal::record::StoredAnswer {
        status: resp.status.as_u16(),
        headers: headers
            .iter()
            .filter(|(k, _)| *k != http::header::CONTENT_LENGTH && *k != http::header::DATE)
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body: crate::journal::record::StoredBody::of(&resp.body),
    })
}

pub(super) fn log_outcome(o: &Outcome) {
    let ms = o.elapsed.as_secs_f64() * 1000.0;
    let route = o.route.as_deref().unwrap_or("-");
    let nodes = o.summary();
    let trace_id = o.trace_id.as_deref().unwrap_or("-");
    match o.state {
        TxnState::Succeeded | TxnState::Rejected => {
            tracing::info!(txn = %o.txn, trace_id = %trace_id, state = %o.state, route, key = %o.key, generation = o.generation, ms, nodes = %nodes, "write finished")
        }
        TxnState::ToBeRetried | TxnState::RolledBack => {
            let reason = o.reason.as_ref().map(Reason::describe).unwrap_or_default();
            tracing::warn!(txn = %o.txn, trace_id = %trace_id, state = %o.state, route, key = %o.key, generation = o.generation, ms, nodes = %nodes, reason, "write finished")
        }
        TxnState::Failed | TxnState::InDoubt => {
            let reason = o.reason.as_ref().map(Reason::describe).unwrap_or_default();
            tracing::error!(txn = %o.txn, trace_id = %trace_id, state = %o.state, route, key = %o.key, generation = o.generation, ms, nodes = %nodes, reason, "write finished")
        }
    }
}

/// Metrics, and the alert of a failed transaction.
pub(super) fn count(d: &Deps, o: &Outcome) {
    // An answer given from an idempotency key is no transaction (counted apart).
    let keyed = matches!(
        o.reason,
        Some(Reason::KeyReused(_) | Reason::KeyInProgress(_))
    );
    if o.replayed || keyed {
        return;
    }
    let m = &d.metrics;
    m.txn_finished(o.state, o.elapsed.as_secs_f64());
    for n in &o.nodes {
        m.node_request(&n.node, n.outcome);
        for _ in 1..n.attempts {
            m.retry(&n.node);
        }
        if let Some(c) = &n.compensation {
            m.compensation(&n.node, c.outcome == CompOutcome::Undone);
        }
    }
    if let (TxnState::Failed, Some(alerter)) = (o.state, &d.alerter) {
        alerter.send(AlertEvent {
            kind: AlertKind::TransactionFailed,
            txn: o.txn.clone(),
            state: o.state,
            key: o.key.clone(),
            route: o.route.clone(),
            reason: o.reason.as_ref().map(Reason::describe),
            nodes: o.nodes.clone(),
            at_ms: now_ms(),
        });
    }
}

/// Ends a transaction whose intent the journal did not take: the key is fenced (fleet-wide,
/// with `[cluster]`), busy through another sidecar past `cluster.wait`, or the journal or
/// store is unavailable. No node was touched.
pub(super) fn refused(d: &Deps, t: &Txn<'_>, e: JournalError) -> Outcome {
    let nodes = not_sent(t.rt.nodes.all());
    match e {
        JournalError::Store(StoreError::Fenced { txn, .. }) => {
            untouched(d, t, TxnState::Rejected, Reason::Fenced(txn), nodes)
        }
        JournalError::Store(e @ StoreError::Busy { .. }) => {
            tracing::warn!(txn = %t.id, key = %t.key, error = %e, "key busy through another sidecar: write refused before touching any node");
            finish(
                t,
                TxnState::ToBeRetried,
                Some(Reason::KeyBusy(e.to_string())),
                nodes,
                None,
            )
        }
        e => {
            tracing::error!(txn = %t.id, error = %e, "journal unavailable: write refused before touching any node");
            let reason = Reason::JournalUnavailable(e.to_string());
            finish(t, TxnState::ToBeRetried, Some(reason), nodes, None)
        }
    }
}

/// Ends a transaction that touched no node: journaled for inspection, without waiting.
pub(super) fn untouched(
    d: &Deps,
    t: &Txn<'_>,
    state: TxnState,
    reason: Reason,
    nodes: Vec<NodeReport>,
) -> Outcome {
    if let Some(j) = &d.journal {
        j.note(
            t.intent(Vec::new(), Vec::new()),
            state,
            Some(reason.clone()),
            nodes.clone(),
        );
    }
    finish(t, state, Some(reason), nodes, None)
}

/// Makes the end state durable before the client hears of it.
///
/// The key is released as soon as the end record is enqueued: the next write to it journals
/// its intent after this end in the log, and touches no node before that intent is durable,
/// so it cannot overtake this one; the two records share one sync instead of two in a row.
pub(super) async fn end(
    d: &Deps,
    t: &Txn<'_>,
    mut state: TxnState,
    mut reason: Option<Reason>,
    reports: Vec<NodeReport>,
    mut resp: Option<NodeResponse>,
    key: KeyGuard,
) -> Outcome {
    let durable = d.journal.as_ref().map(|j| {
        let answer = kept_answer(t, state, resp.as_ref());
        j.end(&t.id, state, reason.clone(), reports.clone(), answer)
    });
    drop(key);
    if let Some(durable) = durable
        && let Err(e) = durable.await
    {
        // Without a durable end the transaction is in doubt: the next start undoes it,
        // so the client must not be told it succeeded.
        tracing::error!(txn = %t.id, error = %e, "cannot journal the end of a transaction");
        if state == TxnState::Succeeded {
            state = TxnState::Failed;
            reason = Some(Reason::JournalUnavailable(e.to_string()));
            resp = None;
        }
    }
    finish(t, state, reason, reports, resp)
}
