//! Nothing forgotten: recovery of in-doubt transactions at startup, the background re-drive of
//! failed ones, and the late-write check of rollbacks whose nodes had unknown outcomes.
//!
//! All three run a transaction's journaled undo plans (idempotent: each undo's "already"
//! statuses mean done) on the nodes that may still hold the write.

use super::record::{Entry, VerifyPlan, now_ms};
use super::store::Journal;
use crate::config::NodeSpec;
use crate::config::validate::parse_http_url;
use crate::runtime::{Current, Runtime};
use crate::saga::attempt::{Call, CallLimits, call_with_retries};
use crate::saga::compensate::run_undo;
use crate::saga::policy::Backoff;
use crate::saga::{CompOutcome, CompReport, NodeReport, TxnState};
use crate::upstream::Node;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::Arc;
use std::time::Duration;

/// Called after recovery or a re-drive changed a transaction, with its state before (alerts and
/// metrics hook in here).
pub type OnChange = Arc<dyn Fn(TxnState, &Entry) + Send + Sync>;

/// What recovery did at startup.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub rolled_back: usize,
    pub failed: usize,
}

/// Undoes every in-doubt transaction (the client never got a success): on each node that applied
/// it or may have. Runs before dtc serves, so no new write can race it.
pub async fn recover(
    journal: &Arc<Journal>,
    current: &Current,
    on_change: Option<&OnChange>,
) -> Recovered {
    let rt = current.load();
    let mut out = Recovered::default();
    for entry in journal
        .open_entries()
        .into_iter()
        .filter(|e| e.state == TxnState::InDoubt)
    {
        let (state, nodes) = undo_entry(&rt, &entry).await;
        tracing::warn!(txn = %entry.begin.txn, key = %entry.begin.key, state = %state, "in-doubt transaction recovered");
        if let Err(e) = journal.redrive(&entry.begin.txn, state, nodes).await {
            tracing::error!(txn = %entry.begin.txn, error = %e, "cannot journal the recovery");
        }
        match state {
            TxnState::RolledBack => out.rolled_back += 1,
            _ => out.failed += 1,
        }
        if let (Some(cb), Some(e)) = (on_change, journal.get(&entry.begin.txn)) {
            cb(TxnState::InDoubt, &e);
        }
    }
    out
}

/// Runs the undo of every node of `entry` that may still hold the write.
async fn undo_entry(rt: &Runtime, entry: &Entry) -> (TxnState, Vec<NodeReport>) {
    let mut reports = entry.reports();
    let headers = header_map(&entry.begin.headers);
    let mut all_undone = true;
    for i in entry.nodes_to_undo() {
        let (name, url) = &entry.begin.nodes[i];
        let report = match (&entry.nodes[i].undo, node_for(rt, name, url)) {
            (Some(plan), Some(node)) => {
                run_undo(rt, &node, plan, &entry.begin.txn, &headers, "undo").await
            }
            (None, _) => failed_comp(
                "no undo is known for this node (no compensation rule, or it needs an answer that never came)",
            ),
            (_, None) => failed_comp("the node's URL in the journal is not usable"),
        };
        all_undone &= report.outcome == CompOutcome::Undone;
        reports[i].compensation = Some(report);
    }
    let state = if all_undone {
        TxnState::RolledBack
    } else {
        TxnState::Failed
    };
    (state, reports)
}

fn failed_comp(why: &str) -> CompReport {
    CompReport {
        outcome: CompOutcome::Failed,
        status: None,
        error: Some(why.to_string()),
        attempts: 0,
    }
}

/// The node of the running config with this name and URL, or a one-off client for it.
fn node_for(rt: &Runtime, name: &str, url: &str) -> Option<Arc<Node>> {
    if let Some(n) = rt
        .nodes
        .all()
        .iter()
        .find(|n| n.name() == name && n.spec.url == url)
    {
        return Some(n.clone());
    }
    let (uri, authority, base_path) = parse_http_url(url).ok()?;
    let spec = NodeSpec {
        name: name.to_string(),
        url: uri,
        authority,
        base_path,
    };
    Some(Node::new(
        spec,
        rt.settings.config.timeouts.connect,
        rt.settings.config.health.clone(),
    ))
}

/// The journaled end-to-end headers of a transaction as a header map (invalid ones dropped).
pub fn header_map(pairs: &[(String, String)]) -> HeaderMap {
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

/// Re-drives one failed transaction now; returns its new state.
pub async fn redrive_one(
    journal: &Arc<Journal>,
    current: &Current,
    txn: &str,
    on_change: Option<&OnChange>,
) -> Option<TxnState> {
    let entry = journal.get(txn)?;
    if entry.state != TxnState::Failed || entry.resolution.is_some() {
        return Some(entry.state);
    }
    let rt = current.load();
    let (state, nodes) = undo_entry(&rt, &entry).await;
    if let Err(e) = journal.redrive(txn, state, nodes).await {
        tracing::error!(txn, error = %e, "cannot journal the re-drive");
    }
    if let (Some(cb), Some(e)) = (on_change, journal.get(txn)) {
        cb(TxnState::Failed, &e);
    }
    if state == TxnState::RolledBack {
        tracing::info!(txn, key = %entry.begin.key, redrives = entry.redrives + 1, "failed transaction converged: rolled back on every node");
    } else {
        tracing::warn!(txn, key = %entry.begin.key, redrives = entry.redrives + 1, "re-drive did not converge yet");
    }
    Some(state)
}

/// The late-write check on nodes whose outcome was unknown: reads the resource back with the
/// route's `verify` rule and undoes again if a late write shows; without a rule, re-applies the
/// undo (idempotent: an "already" answer shows the rollback holds). Returns true when verified.
pub async fn verify_one(journal: &Arc<Journal>, current: &Current, txn: &str) -> bool {
    let Some(entry) = journal.get(txn) else {
        return true;
    };
    if !entry.verify_pending {
        return true;
    }
    let rt = current.load();
    let headers = header_map(&entry.begin.headers);
    for i in entry.unknown_outcome_nodes() {
        let (name, url) = &entry.begin.nodes[i];
        let (Some(plan), Some(node)) = (&entry.nodes[i].undo, node_for(&rt, name, url)) else {
            continue;
        };
        if let Some(check) = &entry.begin.verify {
            match read_back(&rt, &node, check, &headers).await {
                Some(true) => continue,
                Some(false) => {
                    tracing::warn!(txn, node = %name, "a late write landed after the rollback; undoing it again")
                }
                None => return false,
            }
        }
        let r = run_undo(
            &rt,
            &node,
            plan,
            txn,
            &headers,
            &format!("verify-{}", now_ms()),
        )
        .await;
        if r.outcome != CompOutcome::Undone {
            return false;
        }
        if entry.begin.verify.is_none() && r.status.is_some_and(|s| (200..300).contains(&s)) {
            tracing::warn!(txn, node = %name, "a late write had landed after the rollback; undone again");
        }
    }
    match journal.verified(txn).await {
        Ok(()) => {
            tracing::info!(txn, "rollback verified on nodes with unknown outcomes");
            true
        }
        Err(e) => {
            tracing::error!(txn, error = %e, "cannot journal the verification");
            false
        }
    }
}

/// Reads the resource back on `node`: `Some(true)` when the rollback holds, `Some(false)` when a
/// late write shows, `None` when the node could not say.
async fn read_back(
    rt: &Runtime,
    node: &Arc<Node>,
    check: &VerifyPlan,
    headers: &HeaderMap,
) -> Option<bool> {
    let method = http::Method::from_bytes(check.method.as_bytes()).ok()?;
    let mut headers = headers.clone();
    headers.remove(http::header::CONTENT_TYPE);
    let call = Call {
        node,
        method,
        path_and_query: check.path.clone(),
        headers,
        body: Default::default(),
        already: &[],
    };
    let limits = CallLimits {
        attempt_timeout: rt.settings.config.timeouts.attempt,
        max_body: rt.settings.config.limits.max_body,
    };
    let r = call_with_retries(&call, &Backoff::from(&rt.settings.config.retry), limits).await;
    let status = r.status()?;
    if check.expect.contains(&status) {
        return Some(true);
    }
    (status < 500 && !matches!(status, 408 | 429)).then_some(false)
}

/// The background worker: re-drives failed transactions with capped exponential backoff and
/// checks rollbacks, until `shutdown`.
pub async fn run_worker(journal: Arc<Journal>, current: Arc<Current>, on_change: Option<OnChange>) {
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
        for e in journal.open_entries() {
            let finished = e.finished_ms.unwrap_or(now);
            let (due, verify) = if e.state == TxnState::Failed && e.resolution.is_none() {
                (
                    finished + backoff.delay(e.redrives + 1).as_millis() as u64,
                    false,
                )
            } else if e.verify_pending {
                (finished + cfg.verify_after.as_millis() as u64, true)
            } else {
                continue;
            };
            if due > now {
                next_in = next_in.min(Duration::from_millis(due - now));
                continue;
            }
            if verify {
                if !verify_one(&journal, &current, &e.begin.txn).await {
                    next_in = next_in.min(cfg.verify_after);
                }
            } else {
                redrive_one(&journal, &current, &e.begin.txn, on_change.as_ref()).await;
                // Its next attempt is due after a new backoff: look again at once.
                next_in = Duration::ZERO;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(next_in.max(Duration::from_millis(10))) => {}
            () = journal.wake.notified() => {}
        }
    }
}
