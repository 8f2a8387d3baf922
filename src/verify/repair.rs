//! Repair: the write that brings an odd node to the target, chosen from what dtc itself knows
//! how to send for the key (the journaled writes and undo plans), and sent as a journaled
//! transaction of its own (route `dtc verify repair`, listed in `/transactions`).
//!
//! The write, in order of preference:
//! - to make a node **absent**: a journaled undo plan that deletes (the undo of a create), else
//!   a journaled `DELETE` write with the odd node's own representation as its body;
//! - to make a node **present** with the target's representation: the undo plan of a route that
//!   restores snapshots (`body = "snapshot"`) with the target as its body, else a journaled
//!   create/replace write with the target as its body, else an undo plan that re-creates.
//!
//! After the write the node is read again: the repair converged only when it now holds the
//! target.
//!
//! With `[cluster]` the caller took the key's lease before it read the nodes it decided from
//! (`super::Verifier`), and the repair's intent is recorded under that same lease.
//!
//! Left for the saga's single write path (issue 24): this module still builds its own journal
//! records and node requests (`run`) instead of handing explicit per-node writes to the saga;
//! its undo rules and evidence are not the saga's. The decision it acts on is sound; the write
//! itself is a second copy of the saga's.

use super::keys::KeyHistory;
use super::read::{self, Held, ReadPlan, Target};
use crate::config::validate::CompBody;
use crate::headers;
use crate::journal::Journal;
use crate::journal::record::{Begin, body_hash, now_ms};
use crate::journal::shared::lease::under;
use crate::retry::Backoff;
use crate::runtime::Runtime;
use crate::saga::attempt::{Call, CallLimits, call_with_retries};
use crate::saga::{Class, NodeReport, Reason, TxnState};
use crate::upstream::Node;
use bytes::Bytes;
use http::Method;
use std::sync::Arc;

/// The route name repair transactions carry.
pub const REPAIR_ROUTE: &str = "dtc verify repair";

/// One repair request.
#[derive(Debug, Clone, PartialEq)]
pub struct RepairWrite {
    pub method: Method,
    pub path: String,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// Statuses meaning "already so".
    pub already: Vec<u16>,
}

/// What a repair came to.
#[derive(Debug, Clone)]
pub struct Repaired {
    pub txn: String,
    pub state: TxnState,
    /// Per odd node: the repair's answer.
    pub nodes: Vec<NodeReport>,
    pub elapsed: std::time::Duration,
}

/// The write that brings a node holding `held` to `target`, or why there is none.
pub fn choose(
    rt: &Runtime,
    history: &KeyHistory,
    target: &Target,
    held: &Held,
) -> Result<RepairWrite, String> {
    let plans = || {
        history.txns.iter().flat_map(|e| {
            e.nodes
                .iter()
                .filter_map(|n| n.undo.as_ref())
                .map(move |p| (e, p))
        })
    };
    let json = Some("application/json".to_string());
    match target {
        Target::Absent => {
            if let Some((_, p)) = plans().find(|(_, p)| p.method == "DELETE") {
                return Ok(RepairWrite {
                    method: Method::DELETE,
                    path: p.path.clone(),
                    content_type: p.content_type.clone(),
                    body: p.body.clone(),
                    already: p.already.clone(),
                });
            }
            let (
                Some(e),
                Held::Present {
                    body, content_type, ..
                },
            ) = (
                history.txns.iter().find(|e| e.begin.method == "DELETE"),
                held,
            )
            else {
                return Err("no journaled delete or undo of a create for this key".into());
            };
            Ok(RepairWrite {
                method: Method::DELETE,
                path: e.begin.path.clone(),
                content_type: content_type.clone().or(json),
                body: body.clone(),
                already: already_of(rt, e.begin.route.as_deref()),
            })
        }
        Target::Present { body, content_type } => {
            let restore = plans().find(|(e, p)| {
                p.method != "DELETE"
                    && route_of(rt, e.begin.route.as_deref()).is_some_and(|r| {
                        r.compensation
                            .as_ref()
                            .is_some_and(|c| matches!(c.body, CompBody::Snapshot))
                    })
            });
            if let Some((_, p)) = restore {
                return Ok(RepairWrite {
                    method: Method::from_bytes(p.method.as_bytes()).map_err(|e| e.to_string())?,
                    path: p.path.clone(),
                    content_type: content_type.clone().or(json),
                    body: body.clone(),
                    already: p.already.clone(),
                });
            }
            if let Some(e) = history.txns.iter().find(|e| {
                e.begin.method != "DELETE" && e.begin.route.as_deref() != Some(REPAIR_ROUTE)
            }) {
                return Ok(RepairWrite {
                    method: Method::from_bytes(e.begin.method.as_bytes())
                        .map_err(|e| e.to_string())?,
                    path: e.begin.path.clone(),
                    content_type: content_type.clone().or(json),
                    body: body.clone(),
                    already: already_of(rt, e.begin.route.as_deref()),
                });
            }
            let Some((_, p)) = plans().find(|(_, p)| p.method != "DELETE") else {
                return Err("no journaled create or undo of a delete for this key".into());
            };
            Ok(RepairWrite {
                method: Method::from_bytes(p.method.as_bytes()).map_err(|e| e.to_string())?,
                path: p.path.clone(),
                content_type: p.content_type.clone(),
                body: p.body.clone(),
                already: p.already.clone(),
            })
        }
    }
}

fn route_of<'a>(rt: &'a Runtime, name: Option<&str>) -> Option<&'a crate::config::Route> {
    let name = name?;
    rt.settings
        .routes
        .iter()
        .find(|r| r.name == name)
        .map(|r| &**r)
}

fn already_of(rt: &Runtime, name: Option<&str>) -> Vec<u16> {
    route_of(rt, name)
        .map(|r| r.already.clone())
        .unwrap_or_default()
}

/// One repair: what to send where, and how to tell it worked.
pub struct Repair<'a> {
    /// The transaction id; in cluster mode the caller holds the key's lease as this transaction.
    pub txn: &'a str,
    pub key: &'a str,
    /// Per odd node, the write.
    pub writes: &'a [(Arc<Node>, RepairWrite)],
    /// The read that tells what a node holds.
    pub read_plan: &'a ReadPlan,
    pub target: &'a Target,
}

/// Sends the writes of `r` as one journaled transaction on its key, then reads each node again.
/// The caller holds the key's lock (and with `[cluster]` its lease).
pub async fn run(journal: &Arc<Journal>, rt: &Runtime, r: Repair<'_>) -> Result<Repaired, String> {
    let Repair {
        txn,
        key,
        writes,
        read_plan,
        target,
    } = r;
    let started = tokio::time::Instant::now();
    let txn = txn.to_string();
    let first = &writes.first().ok_or("nothing to repair")?.1;
    let begin = Begin {
        idem: None,
        txn: txn.clone(),
        at_ms: now_ms(),
        generation: rt.generation,
        method: first.method.to_string(),
        path: first.path.clone(),
        key: key.to_string(),
        route: Some(REPAIR_ROUTE.to_string()),
        nodes: writes
            .iter()
            .map(|(n, _)| (n.name().to_string(), n.spec.url.to_string()))
            .collect(),
        headers: Vec::new(),
        undo: vec![None; writes.len()],
        verify: None,
        pre: Vec::new(),
        pre_restores: false,
        body_hash: match target {
            Target::Present { body, .. } => Some(body_hash(body)),
            Target::Absent => None,
        },
    };
    journal.begin(begin).await.map_err(|e| e.to_string())?;
    let policy = Backoff::from(&rt.settings.config.retry);
    let limits = CallLimits::of(rt);
    let sends = writes.iter().map(|(node, w)| {
        let (txn, policy) = (&txn, &policy);
        async move {
            let mut h = read_plan.headers.clone();
            if let Some(ct) = w.content_type.as_deref().and_then(|c| c.parse().ok()) {
                h.insert(http::header::CONTENT_TYPE, ct);
            }
            h.insert(headers::IDEMPOTENCY_KEY, headers::value(txn));
            h.insert(headers::TXN_ID, headers::value(txn));
            let call = Call {
                node,
                method: w.method.clone(),
                path_and_query: w.path.clone(),
                headers: h,
                body: w.body.clone(),
                already: &w.already,
                resend: true,
            };
            let r = call_with_retries(&call, policy, limits).await;
            let held = read::read(rt, node, read_plan).await;
            let converged =
                matches!(r.class, Class::Applied | Class::Already) && held.matches(target);
            let report = NodeReport {
                node: node.name().to_string(),
                outcome: r.class,
                status: r.status(),
                error: (!converged).then(|| match r.error() {
                    Some(e) => e,
                    None => format!("after the repair the node holds {}", held.describe()),
                }),
                attempts: r.attempts,
                maybe_applied: false,
                compensation: None,
                read_back: None,
            };
            (converged, report)
        }
    });
    // With `[cluster]` the intent is recorded under the key's lease: the requests respect it.
    let hold = journal.hold(&txn);
    let results = under(hold, futures_util::future::join_all(sends)).await;
    let all = results.iter().all(|(c, _)| *c);
    let nodes: Vec<NodeReport> = results.into_iter().map(|(_, r)| r).collect();
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
        .end(&txn, state, reason, nodes.clone(), None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Repaired {
        txn,
        state,
        nodes,
        elapsed: started.elapsed(),
    })
}
