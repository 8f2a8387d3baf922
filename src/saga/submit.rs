//! A write dtc decided itself — a repair of `dtc verify` — entering the saga with explicit
//! per-node requests instead of a client's request and a route: the journal's intent, each
//! node's request sent with retries, a look at each node afterwards, the durable end. The
//! caller decides *what* to write; this module is the only place such a write is journaled and
//! sent.
//!
//! The caller holds the key's turn (and with `[cluster]` its lease, as the transaction) and
//! decided from reads it took under them, so no write of the key can slip between its reads
//! and this write.

use super::attempt::{Call, CallLimits};
use super::deps::Deps;
use super::send::send_write;
use crate::config::ids::IdRule;
use crate::headers;
use crate::journal::idmap::IdEntry;
use crate::journal::record::{Begin, body_hash, now_ms};
use crate::journal::shared::lease::under;
use crate::journal::{Journal, JournalError};
use crate::retry::Backoff;
use crate::runtime::Runtime;
use crate::txn::outcome::{Class, NodeReport, Reason, TxnState};
use crate::upstream::Node;
use bytes::Bytes;
use futures_util::future::{BoxFuture, join_all};
use http::{HeaderMap, Method};
use std::sync::Arc;
use std::time::Duration;

/// One node's request of a submitted write.
#[derive(Clone)]
pub struct NodeWrite {
    pub node: Arc<Node>,
    pub method: Method,
    pub path: String,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// Statuses meaning "already so".
    pub already: Vec<u16>,
}

/// What a node holds after its write, as the caller reads it: whether that is what the write
/// was for, and a description for the report.
pub struct Looked {
    pub holds_target: bool,
    pub holds: String,
}

/// Reads a node after its write; with [`Remap`], under the node's new id (`None`: its answer
/// named none).
pub type Look<'a> = &'a (dyn Fn(Arc<Node>, Option<String>) -> BoxFuture<'a, Looked> + Sync);

/// A write that recreates a mapped resource ([`crate::config::ids`]) on the nodes it writes:
/// each node's request is a create whose answer names the node's new id, which the id map
/// records (durably, before the end) in place of the one the node lost.
pub struct Remap<'a> {
    pub rule: &'a IdRule,
    /// The resource's map entry as the caller read it, under the key's turn (and lease).
    pub entry: &'a IdEntry,
}

/// A write dtc decided itself, ready to send.
pub struct Submitted<'a> {
    /// The transaction id; with `[cluster]` the caller holds the key's lease as this transaction.
    pub txn: &'a str,
    pub key: &'a str,
    /// The name its transaction is listed under (e.g. `dtc verify repair`).
    pub route: &'a str,
    /// The config generation the caller decided on.
    pub rt: &'a Runtime,
    /// The end-to-end headers (authorization and the like) every request carries.
    pub headers: &'a HeaderMap,
    /// The representation the write puts in place, if any (its hash is journaled).
    pub target_body: Option<&'a Bytes>,
    /// Per node to write, its request (at least one).
    pub writes: &'a [NodeWrite],
    /// The look at each node after its write: the write converged there only when it holds the
    /// target.
    pub look: Look<'a>,
    /// When the writes recreate a mapped resource: the map to update.
    pub remap: Option<Remap<'a>>,
}

/// What a submitted write came to.
#[derive(Debug, Clone)]
pub struct Submission {
    pub txn: String,
    pub state: TxnState,
    /// Per node written: its answer, and why it did not converge.
    pub nodes: Vec<NodeReport>,
    pub elapsed: Duration,
}

/// Why a submitted write did not run.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("nothing to write")]
    Nothing,
    #[error("dtc runs without a journal")]
    NoJournal,
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Why a recreating write's new node ids are not in the id map.
#[derive(Debug, thiserror::Error)]
enum RemapError {
    #[error("{collection}/{canonical} left the id map meanwhile: the recreated copy is not mapped")]
    Gone {
        collection: String,
        canonical: String,
    },
    #[error("the new node ids could not be recorded in the id map: {0}")]
    Journal(#[from] JournalError),
}

/// Journals the intent of `s`, sends each node its request, looks at each node, journals the
/// end: `succeeded` when every node holds the target, else `to_be_retried` with the reasons.
pub(super) async fn submit(d: &Deps, s: Submitted<'_>) -> Result<Submission, SubmitError> {
    let started = tokio::time::Instant::now();
    let journal = d.journal.as_ref().ok_or(SubmitError::NoJournal)?;
    let first = s.writes.first().ok_or(SubmitError::Nothing)?;
    journal.begin(intent(&s, first)).await?;
    let policy = Backoff::from(&s.rt.settings.config.retry);
    let limits = CallLimits::of(s.rt);
    let sends = s.writes.iter().map(|w| {
        let (s, policy) = (&s, &policy);
        async move {
            let mut h = s.headers.clone();
            if let Some(ct) = w.content_type.as_deref().and_then(|c| c.parse().ok()) {
                h.insert(http::header::CONTENT_TYPE, ct);
            }
            h.insert(headers::IDEMPOTENCY_KEY, headers::value(s.txn));
            h.insert(headers::TXN_ID, headers::value(s.txn));
            let call = Call {
                node: &w.node,
                method: w.method.clone(),
                path_and_query: w.path.clone(),
                headers: h,
                body: w.body.clone(),
                already: &w.already,
                resend: true,
                wait_down: super::send::wait_down(s.rt),
            };
            // Re-sent freely (`resend`): no read-back is needed before a second copy.
            let r = send_write(s.rt, &call, policy, limits, None, &call.headers).await;
            let new_id = s.remap.as_ref().and_then(|m| {
                let a = r.answer.as_ref().ok()?;
                let loc = a.headers.get(http::header::LOCATION);
                m.rule.assigned(&a.body, loc.and_then(|v| v.to_str().ok()))
            });
            let looked = (s.look)(w.node.clone(), new_id.clone()).await;
            let converged = matches!(r.class, Class::Applied | Class::Already)
                && looked.holds_target
                && (s.remap.is_none() || new_id.is_some());
            let report = NodeReport {
                node: w.node.name().to_string(),
                outcome: r.class,
                status: r.status(),
                error: (!converged).then(|| match r.error() {
                    Some(e) => e,
                    None => format!("after the repair the node holds {}", looked.holds),
                }),
                attempts: r.attempts,
                maybe_applied: false,
                in_flight: None,
                compensation: None,
                read_back: None,
            };
            (converged, report, new_id)
        }
    });
    // With `[cluster]` the intent is recorded under the key's lease: the requests respect it.
    let results = under(journal.hold(s.txn), join_all(sends)).await;
    let mut all = results.iter().all(|(c, _, _)| *c);
    let mut nodes: Vec<NodeReport> = Vec::with_capacity(results.len());
    let mut new_ids = Vec::new();
    for ((_, report, id), w) in results.into_iter().zip(s.writes) {
        if let Some(id) = id {
            new_ids.push((w.node.name().to_string(), id));
        }
        nodes.push(report);
    }
    if let Some(m) = &s.remap
        && let Err(why) = remap(journal, s.txn, m, new_ids).await
    {
        let why = why.to_string();
        all = false;
        for n in &mut nodes {
            n.error.get_or_insert_with(|| why.clone());
        }
    }
    let (state, reason) = if all {
        (TxnState::Succeeded, None)
    } else {
        let why = nodes
            .iter()
            .filter_map(|n| Some(format!("{}: {}", n.node, n.error.as_ref()?)))
            .collect::<Vec<_>>()
            .join("; ");
        (TxnState::ToBeRetried, Some(Reason::RepairIncomplete(why)))
    };
    journal
        .end(s.txn, state, reason, nodes.clone(), None)
        .await?;
    Ok(Submission {
        txn: s.txn.to_string(),
        state,
        nodes,
        elapsed: started.elapsed(),
    })
}

/// Records the new node ids a recreating write learned (every one learned, even where the look
/// disagreed: the node holds a resource by that id now). `Err` says why the map did not take
/// them.
async fn remap(
    journal: &Journal,
    txn: &str,
    m: &Remap<'_>,
    new_ids: Vec<(String, String)>,
) -> Result<(), RemapError> {
    if new_ids.is_empty() {
        return Ok(());
    }
    let mut entry = m.entry.clone();
    for (node, id) in new_ids {
        entry.set_node(&node, id);
    }
    match journal.set_ids(txn, entry.clone()).await {
        Ok(true) => {
            tracing::info!(txn, canonical = %entry.canonical, nodes = ?entry.nodes, "a recreated resource's new node ids are mapped");
            Ok(())
        }
        Ok(false) => Err(RemapError::Gone {
            collection: entry.collection,
            canonical: entry.canonical,
        }),
        Err(e) => {
            tracing::error!(txn, error = %e, "cannot record a recreated resource's new node ids");
            Err(e.into())
        }
    }
}

/// The journal's intent record: the first node's request names the write; no undo (a repair
/// brings a node to what the others hold), no read-back rule.
fn intent(s: &Submitted<'_>, first: &NodeWrite) -> Begin {
    Begin {
        idem: None,
        txn: s.txn.to_string(),
        at_ms: now_ms(),
        generation: s.rt.generation,
        method: first.method.clone(),
        path: first.path.clone(),
        key: s.key.to_string(),
        route: Some(s.route.to_string()),
        nodes: s
            .writes
            .iter()
            .map(|w| (w.node.name().to_string(), w.node.spec.url.to_string()))
            .collect(),
        headers: Vec::new(),
        undo: vec![None; s.writes.len()],
        verify: None,
        pre: Vec::new(),
        pre_restores: false,
        body_hash: s.target_body.map(|b| body_hash(b)),
        early: None,
    }
}
