//! One transaction, start to end: the steps listed in the module docs of [`super`].

use super::attempt::{Call, CallLimits, CallResult};
use super::compensate::{Planner, begin_record};
use super::decide::{Decision, decide, touched};
use super::finish::{log_outcome, not_sent, pre_statuses, report, unknown_nodes};
use super::locks::KeyGuard;
use super::send::send_write;
use super::undo::{PlanError, Snapshot};
use super::{Coordinator, new_txn_id};
use crate::config::template::{Context, Escape};
use crate::config::validate::Route;
use crate::headers;
use crate::journal::JournalError;
use crate::journal::shared::Hold;
use crate::journal::shared::lease::under;
use crate::retry::Backoff;
use crate::runtime::Runtime;
use crate::txn::UndoPlan;
use crate::txn::evidence::{Judgement, Verdict};
use crate::txn::outcome::{Class, NodeReport, NodeResponse, Outcome, Reason, TxnState};
use bytes::Bytes;
use futures_util::future::{OptionFuture, join_all};
use http::{HeaderMap, Method};
use opentelemetry::context::FutureExt as _;
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::Instant;

/// A write as the client sent it, body buffered.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub method: Method,
    /// Path and query, e.g. `/v1/group/?x=1`.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl WriteRequest {
    /// A JSON write with no other headers (library use and tests).
    pub fn json(method: Method, path: &str, body: &str) -> WriteRequest {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        WriteRequest {
            method,
            path_and_query: path.to_string(),
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    pub(super) fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or("/")
    }
}

/// The end state in the light of the key's last acknowledged state: a node that did not hold it
/// before this write and still does not makes the transaction `failed` (listed, fenced: the
/// nodes differ, whatever this write did); one this write brought back in line is named.
fn against_history(
    t: &Txn<'_>,
    j: &Judgement,
    state: TxnState,
    reason: Option<Reason>,
) -> (TxnState, Option<Reason>) {
    let names = |which: Vec<usize>| -> String {
        let nodes = t.rt.nodes.all();
        let n: Vec<String> = which
            .iter()
            .map(|&i| format!("node {}", nodes[i].name()))
            .collect();
        n.join(", ")
    };
    let (still, realigned) = (j.still_diverged(), j.realigned());
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

/// The resource a write takes the turn of (see the README's "What a write does"):
/// - the route's `key`, rendered from the request;
/// - a route without `key`: a `POST` creates a resource the node names, so it gets a key of its
///   own (`txn:<id>`) and one create that cannot be decided fences no other; any other method
///   names its resource by its path;
/// - a write no route matches (or whose `key` cannot be rendered): its path.
///
/// Paths are in their normal form ([`crate::wire::path`]): two spellings of one resource take one
/// turn.
fn resource_key(
    route: Option<&Arc<Route>>,
    params: &[(String, String)],
    json: Option<&Value>,
    path: &str,
    method: &Method,
    txn: &str,
) -> String {
    let Some(route) = route else {
        return path.to_string();
    };
    match &route.key {
        Some(k) => {
            let ctx = Context {
                params,
                body: json,
                ..Context::default()
            };
            k.render(&ctx, Escape::Raw)
                .unwrap_or_else(|_| path.to_string())
        }
        None if *method == Method::POST => format!("txn:{txn}"),
        None => path.to_string(),
    }
}

/// A node record's durability, when there is a journal.
type JournalWait = Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send>>;
type Journaled = OptionFuture<JournalWait>;

/// Per node, in node order: the final result, the undo plan, and its journal record's durability.
#[derive(Default)]
struct WriteAll(
    Vec<CallResult>,
    Vec<Option<Result<UndoPlan, PlanError>>>,
    Vec<Journaled>,
);

/// What [`Coordinator::conclude`] decides from: the answers, the judgement, the undo plans
/// (only of the nodes to undo), the node answers still being journaled, and the key's lease.
struct Concluded<'a> {
    results: &'a [CallResult],
    judgement: &'a Judgement,
    plans: &'a [Option<Result<UndoPlan, PlanError>>],
    journaled: Vec<Journaled>,
    hold: Option<Arc<Hold>>,
}

/// Everything a transaction carries from step to step.
pub(super) struct Txn<'a> {
    pub(super) id: String,
    pub(super) rt: &'a Runtime,
    pub(super) req: &'a WriteRequest,
    pub(super) route: Option<&'a Arc<Route>>,
    pub(super) params: Vec<(String, String)>,
    pub(super) json: Option<Value>,
    pub(super) key: String,
    pub(super) node_headers: HeaderMap,
    pub(super) started: Instant,
    /// The client's idempotency key and the request it came with.
    pub(super) idem: Option<crate::journal::record::IdemKey>,
}

impl Coordinator {
    /// Runs one write transaction to its end on the config in effect when it starts. The future
    /// should be driven to completion (the proxy spawns it, so a client that goes away does not
    /// cancel a half-done write).
    pub async fn execute(&self, req: WriteRequest) -> Outcome {
        let rt = self.current.load();
        let id = new_txn_id();
        let path = crate::wire::path::normalize(req.path());
        let matched = rt.settings.routes.iter().find_map(|r| {
            (r.method == req.method)
                .then(|| r.pattern.matches(&path))
                .flatten()
                .map(|p| (r, p))
        });
        let (route, params) = match matched {
            Some((r, p)) => (Some(r), p),
            None => (None, Vec::new()),
        };
        // Only a route's templates read the body as JSON; a write no route matches skips the parse.
        let json = route.and_then(|_| serde_json::from_slice::<Value>(&req.body).ok());
        let key = resource_key(route, &params, json.as_ref(), &path, &req.method, &id);
        let idem = super::idem::bind(&req, &path);
        let mut node_headers = headers::for_node(req.headers.clone());
        node_headers.insert(
            headers::IDEMPOTENCY_KEY,
            headers::value(&super::idem::node_key(&id, idem.as_ref())),
        );
        node_headers.insert(headers::TXN_ID, headers::value(&id));
        let name = route.map_or(req.method.as_str(), |r| r.name.as_str());
        let trace = self.tracing.write(&req.headers, name, &req.method, &id);
        let txn = Txn {
            id,
            rt: &rt,
            req: &req,
            route,
            params,
            json,
            key,
            node_headers,
            started: Instant::now(),
            idem,
        };
        let mut outcome = self.run(&txn).with_context(trace.context()).await;
        outcome.trace_id = Some(trace.trace_id());
        let status = outcome.response.as_ref().map(|r| r.status.as_u16());
        trace.end(outcome.state.as_str(), status);
        log_outcome(&outcome);
        self.count(&outcome);
        outcome
    }

    /// One write, start to end: admitted, prepared (lease, pre-images, intent), sent to every
    /// node, judged from the evidence, concluded (undone where it must be), ended.
    async fn run(&self, t: &Txn<'_>) -> Outcome {
        let _idem_turn = match self.idempotency(t).await {
            Ok(turn) => turn,
            Err(answered) => return answered,
        };
        let guard = match self.admit(t).await {
            Ok(guard) => guard,
            Err(refused) => return refused,
        };
        let snapshots = match self.pre_images(t).await {
            Ok(s) => s,
            Err(refused) => return refused,
        };
        let planner = Planner {
            t,
            snapshots: &snapshots,
        };
        let pre: Vec<Option<UndoPlan>> = match &self.journal {
            Some(_) => (0..t.rt.nodes.all().len())
                .map(|i| planner.plan(i, None).and_then(Result::ok))
                .collect(),
            None => Vec::new(),
        };
        if let Some(j) = &self.journal
            && let Err(e) = j
                .begin(begin_record(t, pre.clone(), pre_statuses(&snapshots)))
                .await
        {
            return self.refused(t, e);
        }
        let hold = self.journal.as_ref().and_then(|j| j.hold(&t.id));
        let WriteAll(results, mut plans, journaled) =
            under(hold.clone(), self.write_all(t, &planner, &pre)).await;
        let judged = under(
            hold.clone(),
            self.judge_live(t, &results, &plans, &snapshots),
        )
        .await;
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
        let concluded = Concluded {
            results: &results,
            judgement: &judged.judgement,
            plans: &plans,
            journaled,
            hold,
        };
        let (state, reason, resp) = self.conclude(t, concluded, &mut reports).await;
        let (state, reason) = against_history(t, &judged.judgement, state, reason);
        self.end(t, state, reason, reports, resp, guard).await
    }

    /// The checks before anything is read or sent: a route (or pass-through allowed), the key's
    /// turn, no fence on it, no node down under `fail_fast` (or this write is its trial). `Err` is the answer without
    /// touching a node.
    async fn admit(&self, t: &Txn<'_>) -> Result<KeyGuard, Outcome> {
        let settings = &t.rt.settings;
        if t.route.is_none() && settings.unmatched() == crate::config::Unmatched::Refuse {
            return Err(self.untouched(t, TxnState::Rejected, Reason::NoRoute, Vec::new()));
        }
        let guard = self.locks.lock(&t.key).await;
        // With `[cluster]` the store checks the fence when the intent takes the lease; the view
        // in memory may be a scan old.
        let local = self.journal.as_ref().filter(|j| j.store().is_none());
        if let Some(blocking) = local.and_then(|j| j.fence_of(&t.key)) {
            let nodes = not_sent(t.rt.nodes.all());
            // A rollback waiting for its late-write check fences for a while, not for good.
            let verify_after = settings.config.journal.verify_after;
            if let Some(due_in) = local.and_then(|j| j.check_due_in(&blocking, verify_after)) {
                let reason = Reason::Checking(blocking);
                let mut o = self.untouched(t, TxnState::ToBeRetried, reason, nodes);
                o.retry_after = Some(due_in);
                return Err(o);
            }
            let reason = Reason::Fenced(blocking);
            return Err(self.untouched(t, TxnState::Rejected, reason, nodes));
        }
        // Last, so a write that is a down node's half-open trial is not refused after claiming it.
        let undoable = t.route.is_some_and(|r| r.compensation.is_some());
        if settings.config.writes.fail_fast
            && let Err(down) = t.rt.nodes.admit_write(undoable)
        {
            let reason = Reason::NodeDown(down.node);
            let nodes = not_sent(t.rt.nodes.all());
            let mut refused = self.untouched(t, TxnState::ToBeRetried, reason, nodes);
            refused.retry_after = Some(down.retry_in);
            return Err(refused);
        }
        Ok(guard)
    }

    /// Each node's pre-image, when the route takes them (under the key's lease with
    /// `[cluster]`, or another sidecar's write could change the resource between the read and
    /// this write). `Err` is the answer: nothing was sent.
    async fn pre_images(&self, t: &Txn<'_>) -> Result<Option<(String, Vec<Snapshot>)>, Outcome> {
        let snapshot_route = t.route.is_some_and(|r| r.snapshot.is_some());
        if let Some(j) = self
            .journal
            .as_ref()
            .filter(|j| snapshot_route && j.store().is_some())
            && let Err(e) = j.lease_first(&t.key, &t.id).await
        {
            return Err(self.refused(t, e));
        }
        match self.snapshots(t).await {
            Ok(s) => Ok(s),
            Err(e) => {
                if let Some(j) = &self.journal {
                    j.release(&t.id).await;
                }
                Err(self.untouched(
                    t,
                    TxnState::ToBeRetried,
                    Reason::SnapshotFailed(e.to_string()),
                    not_sent(t.rt.nodes.all()),
                ))
            }
        }
    }

    /// The end state from the decision; undoes the nodes to undo first when there are some.
    async fn conclude(
        &self,
        t: &Txn<'_>,
        c: Concluded<'_>,
        reports: &mut [NodeReport],
    ) -> (TxnState, Option<Reason>, Option<NodeResponse>) {
        let answer = |i: usize| c.results[i].answer.as_ref().ok().cloned();
        match decide(c.results, c.judgement) {
            Decision::Succeeded(i) => (TxnState::Succeeded, None, answer(i)),
            Decision::TargetStateHolds => {
                (TxnState::Rejected, Some(Reason::TargetStateHolds), None)
            }
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
                let (state, reason) = under(c.hold, self.compensate(t, c.plans, reports)).await;
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

    /// Sends the write to every node at once; journals each node's answer and undo as it comes,
    /// when it tells recovery something the intent did not.
    ///
    /// The node records are enqueued, not awaited: the end record comes after them in the log,
    /// so its durability covers theirs. Only a compensation, which may need their undo plans
    /// after a crash, waits for them (the returned futures) before it starts. Without the extra
    /// waits a transaction costs one sync fewer per node answer.
    ///
    /// A node that applied the write at its first attempt, with the undo the intent already
    /// holds (`pre`), gets no record of its own: after a crash recovery reads the resource on
    /// every node (the route's `verify` rule) and finds the write there, which tells it what the
    /// record would have; the end record carries the answer. That saves three of the five
    /// records of a write that every node applies at once. (A route without a read-back loses
    /// that evidence: its in-doubt writes end `failed` rather than be guessed.)
    async fn write_all(
        &self,
        t: &Txn<'_>,
        planner: &Planner<'_>,
        pre: &[Option<UndoPlan>],
    ) -> WriteAll {
        let policy = Backoff::from(&t.rt.settings.config.retry);
        let limits = CallLimits::of(t.rt);
        let already = t.route.map(|r| r.already.as_slice()).unwrap_or(&[]);
        let resend = t.route.is_some_and(|r| r.resend);
        let check = super::compensate::verify_plan(t);
        let per_node = t.rt.nodes.all().iter().enumerate().map(|(i, node)| {
            let (policy, check) = (&policy, check.as_ref());
            async move {
                let call = Call {
                    node,
                    method: t.req.method.clone(),
                    path_and_query: t.req.path_and_query.clone(),
                    headers: t.node_headers.clone(),
                    body: t.req.body.clone(),
                    already,
                    resend,
                };
                let r = send_write(t.rt, &call, policy, limits, check, &t.node_headers).await;
                let plan = if touched(&r) {
                    planner.plan(i, r.answer.as_ref().ok())
                } else {
                    None
                };
                let undo = plan.as_ref().and_then(|p| p.as_ref().ok());
                let news = r.class != Class::Applied
                    || r.attempts != 1
                    || r.ambiguous
                    || undo != pre.get(i).and_then(Option::as_ref);
                let journaled = self.journal.as_ref().filter(|_| news).map(|j| {
                    Box::pin(j.node(&t.id, i, report(node, &r), undo.cloned())) as JournalWait
                });
                (r, plan, OptionFuture::from(journaled))
            }
        });
        let mut out = WriteAll::default();
        for (r, plan, journaled) in join_all(per_node).await {
            out.0.push(r);
            out.1.push(plan);
            out.2.push(journaled);
        }
        out
    }
}
