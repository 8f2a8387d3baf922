//! Pre-images and undos: the snapshot read before a write, the per-node undo plans, and running
//! them when a write is partial.

use super::Coordinator;
use super::attempt::{Call, CallLimits, call_with_retries};
use super::run::Txn;
use super::undo::{self, PlanError, Snapshot, UndoInputs};
use crate::config::template::{Context, Escape, RenderError};
use crate::headers;
use crate::journal::record::{Begin, VerifyPlan, body_hash, now_ms};
use crate::retry::Backoff;
use crate::runtime::Runtime;
use crate::telemetry::trace;
use crate::txn::UndoPlan;
use crate::txn::outcome::{
    Class, CompOutcome, CompReport, NodeReport, NodeResponse, Reason, TxnState,
};
use crate::upstream::{Node, SendError};
use bytes::Bytes;
use futures_util::future::join_all;
use http::{HeaderMap, Method};
use opentelemetry::context::FutureExt as _;
use std::sync::Arc;

/// Why the pre-images of a write could not be read (nothing was sent to any node).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The snapshot rule's path template cannot be filled in for this request.
    #[error(transparent)]
    Path(#[from] RenderError),
    /// A node answered something that is neither the resource nor its absence.
    #[error("node {node} answered {status} to {method} {path}")]
    Answered {
        node: String,
        status: http::StatusCode,
        method: Method,
        path: String,
    },
    /// A node could not be read.
    #[error("node {node}: {source}")]
    Unreachable {
        node: String,
        #[source]
        source: SendError,
    },
}

impl Coordinator {
    /// Reads each node's pre-image, when the route asks for it.
    pub(super) async fn snapshots(
        &self,
        t: &Txn<'_>,
    ) -> Result<Option<(String, Vec<Snapshot>)>, SnapshotError> {
        let Some(rule) = t.route.and_then(|r| r.snapshot.as_ref()) else {
            return Ok(None);
        };
        let path = match &rule.path {
            Some(tpl) => {
                let ctx = Context {
                    params: &t.params,
                    body: t.json.as_ref(),
                    ..Context::default()
                };
                tpl.render(&ctx, Escape::Path)?
            }
            None => t.req.path().to_string(),
        };
        let policy = Backoff::from(&t.rt.settings.config.retry);
        let limits = CallLimits::of(t.rt);
        let mut headers = t.node_headers.clone();
        headers.remove(http::header::CONTENT_TYPE);
        headers.remove(http::header::CONTENT_LENGTH);
        headers.remove(headers::IDEMPOTENCY_KEY);
        let calls: Vec<Call> =
            t.rt.nodes
                .all()
                .iter()
                .map(|node| Call {
                    node,
                    method: rule.method.clone(),
                    path_and_query: path.clone(),
                    headers: headers.clone(),
                    body: Bytes::new(),
                    already: &[404, 410],
                    resend: true,
                })
                .collect();
        let results = join_all(calls.iter().map(|c| call_with_retries(c, &policy, limits))).await;
        let mut out = Vec::with_capacity(results.len());
        for (r, node) in results.into_iter().zip(t.rt.nodes.all()) {
            out.push(match (r.class, r.answer) {
                (Class::Applied, Ok(resp)) => {
                    let ct = resp
                        .headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                    Snapshot::Present(resp.body, ct)
                }
                (Class::Already, _) => Snapshot::Absent,
                (_, Ok(resp)) => {
                    return Err(SnapshotError::Answered {
                        node: node.name().to_string(),
                        status: resp.status,
                        method: rule.method.clone(),
                        path,
                    });
                }
                (_, Err(source)) => {
                    return Err(SnapshotError::Unreachable {
                        node: node.name().to_string(),
                        source,
                    });
                }
            });
        }
        Ok(Some((path, out)))
    }

    /// Undoes the write on every node that applied it or may have.
    pub(super) async fn compensate(
        &self,
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
}

/// Resolves per-node undo plans from the route's rule.
pub(super) struct Planner<'a> {
    pub(super) t: &'a Txn<'a>,
    pub(super) snapshots: &'a Option<(String, Vec<Snapshot>)>,
}

impl Planner<'_> {
    /// The undo of node `i` given its answer (`None` before it answered). `None` when the route
    /// has no rule; `Some(Err)` when the rule cannot be resolved for this node.
    pub(super) fn plan(
        &self,
        i: usize,
        response: Option<&NodeResponse>,
    ) -> Option<Result<UndoPlan, PlanError>> {
        let t = self.t;
        let Some(rule) = t.route.and_then(|r| r.compensation.as_ref()) else {
            return Some(Err(PlanError::NoRule));
        };
        let inputs = UndoInputs {
            params: &t.params,
            request_json: t.json.as_ref(),
            request_body: &t.req.body,
            request_content_type: t
                .req
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            response,
            snapshot: self.snapshots.as_ref().map(|(_, s)| &s[i]),
            snapshot_path: self.snapshots.as_ref().map(|(p, _)| p.as_str()),
        };
        Some(undo::plan(rule, &inputs))
    }
}

/// The journal's intent record of a transaction; `pre` holds each node's pre-image status.
pub(super) fn begin_record(
    t: &Txn<'_>,
    undo: Vec<Option<UndoPlan>>,
    pre: Vec<Option<u16>>,
) -> Begin {
    let keep = &t.rt.settings.config.journal.headers;
    let all = keep.iter().any(|k| k == "*");
    let headers = undo_headers(&t.req.headers)
        .iter()
        .filter(|(k, _)| all || keep.iter().any(|h| h.eq_ignore_ascii_case(k.as_str())))
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    Begin {
        txn: t.id.clone(),
        at_ms: now_ms(),
        generation: t.rt.generation,
        method: t.req.method.to_string(),
        path: t.req.path_and_query.clone(),
        key: t.key.clone(),
        route: t.route.map(|r| r.name.clone()),
        nodes: t
            .rt
            .nodes
            .all()
            .iter()
            .map(|n| (n.name().to_string(), n.spec.url.to_string()))
            .collect(),
        headers,
        undo,
        verify: verify_plan(t),
        pre_restores: !pre.is_empty() && super::live::restores(t),
        pre,
        body_hash: (t.req.method != http::Method::DELETE).then(|| body_hash(&t.req.body)),
        idem: t.idem.clone(),
    }
}

/// The route's read-back, rendered from the request.
pub(super) fn verify_plan(t: &Txn<'_>) -> Option<VerifyPlan> {
    let rule = t.route?.verify.as_ref()?;
    let ctx = Context {
        params: &t.params,
        body: t.json.as_ref(),
        ..Context::default()
    };
    let path = rule.path.render(&ctx, Escape::Path).ok()?;
    Some(VerifyPlan {
        method: rule.method.to_string(),
        path,
        prior: rule.prior.clone(),
        target: rule.target.clone(),
    })
}

/// The client's end-to-end headers an undo carries (authorization and the like).
pub(super) fn undo_headers(client: &HeaderMap) -> HeaderMap {
    let mut headers = headers::for_node(client.clone());
    for h in [
        http::header::CONTENT_TYPE,
        http::header::CONTENT_LENGTH,
        headers::IDEMPOTENCY_KEY,
        headers::TXN_ID,
    ] {
        headers.remove(h);
    }
    headers
}

/// Runs one node's undo with retries; the client's end-to-end headers (auth, say) go along.
/// Its idempotency key is `<txn>-<purpose>`: the same undo retried is one operation, while a
/// later check (`purpose` unique to it) must really run again.
pub(crate) async fn run_undo(
    rt: &Runtime,
    node: &Arc<Node>,
    plan: &UndoPlan,
    txn: &str,
    client_headers: &HeaderMap,
    purpose: &str,
) -> CompReport {
    let mut headers = undo_headers(client_headers);
    if let Some((k, v)) = plan.content_type_header() {
        headers.insert(k, v);
    }
    headers.insert(
        headers::IDEMPOTENCY_KEY,
        headers::value(&format!("{txn}-{purpose}")),
    );
    headers.insert(headers::TXN_ID, headers::value(txn));
    let Ok(method) = Method::from_bytes(plan.method.as_bytes()) else {
        return CompReport {
            outcome: CompOutcome::Failed,
            status: None,
            error: Some(format!("bad method {}", plan.method)),
            attempts: 0,
        };
    };
    let call = Call {
        node,
        method,
        path_and_query: plan.path.clone(),
        headers,
        body: plan.body.clone(),
        already: &plan.already,
        resend: true,
    };
    let step = trace::step("dtc.undo", node.name());
    let r = call_with_retries(
        &call,
        &Backoff::from(&rt.settings.config.retry),
        CallLimits::of(rt),
    )
    .with_context(step.context())
    .await;
    let outcome = match r.class {
        Class::Applied | Class::Already => CompOutcome::Undone,
        _ => CompOutcome::Failed,
    };
    step.end(r.status(), r.error().as_deref(), r.class.as_str());
    CompReport {
        outcome,
        status: r.status(),
        error: r.error(),
        attempts: r.attempts,
    }
}
