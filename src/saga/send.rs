//! Sending: the write to every node at once ([`send_all`]), each node's answer and undo
//! journaled as it comes. No blind re-send ([`send_write`]): an attempt whose outcome is
//! unknown (a timeout, a cut connection, a 5xx other than 503) is followed by another only when
//! that cannot apply the write twice — the route declares it idempotent, or a read of the
//! resource shows this write did not land.

use super::attempt::{Call, CallLimits, CallResult, call_with_retries};
use super::decide::touched;
use super::deps::Deps;
use super::end::report;
use super::readback::read_state;
use super::write::{JournalWait, Planner, Txn, WriteAll};
use crate::journal::record::VerifyPlan;
use crate::retry::Backoff;
use crate::runtime::Runtime;
use crate::txn::UndoPlan;
use crate::txn::evidence::{ReadBack, State};
use crate::txn::outcome::Class;
use futures_util::future::{OptionFuture, join_all};
use http::HeaderMap;
use tokio::time::Instant;

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
pub(super) async fn send_all(
    d: &Deps,
    t: &Txn<'_>,
    planner: &Planner<'_>,
    pre: &[Option<UndoPlan>],
) -> WriteAll {
    let policy = Backoff::from(&t.rt.settings.config.retry);
    let limits = CallLimits::of(t.rt);
    let already = t.route.map(|r| r.already.as_slice()).unwrap_or(&[]);
    let resend = t.route.is_some_and(|r| r.resend);
    let wait_down = wait_down(t.rt);
    let check = t.verify_plan();
    let per_node = t.rt.nodes.all().iter().enumerate().map(|(i, node)| {
        let (policy, check) = (&policy, check.as_ref().map(|c| c.for_node(i)));
        async move {
            let (headers, body) = t.node_write(i);
            let call = Call {
                node,
                method: t.req.method.clone(),
                path_and_query: t.node_path(i, &t.req.path_and_query),
                headers,
                body,
                already,
                resend,
                wait_down,
            };
            let check = check.as_deref();
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
            let journaled = d.journal.as_ref().filter(|_| news).map(|j| {
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

/// Sends `call` under `policy`; after an attempt that halted it (see [`Call::resend`]) reads
/// the resource with `check` and sends again only if the node is still in the prior state,
/// within what is left of the policy's attempts and deadline. Otherwise the ambiguous result
/// stands, for the judgement's read-back to decide.
pub(super) async fn send_write(
    rt: &Runtime,
    call: &Call<'_>,
    policy: &Backoff,
    limits: CallLimits,
    check: Option<&VerifyPlan>,
    headers: &HeaderMap,
) -> CallResult {
    let started = Instant::now();
    let mut r = call_with_retries(call, policy, limits).await;
    while r.halted {
        let Some(check) = check else { return r };
        let Some(left) = remaining(policy, r.attempts, started.elapsed()) else {
            return r;
        };
        let read = read_state(rt, call.node, check, headers).await;
        if read.read_back != ReadBack::Is(State::Prior) {
            return r;
        }
        tracing::debug!(node = %call.node.name(), "read back in the prior state after an ambiguous attempt: sending the write again");
        let next = call_with_retries(call, &left, limits).await;
        r = CallResult {
            attempts: r.attempts + next.attempts,
            ambiguous: r.ambiguous || next.ambiguous,
            in_flight: r.in_flight || next.in_flight,
            ..next
        };
    }
    r
}

/// How long a node the breaker holds down is waited for after a refused connection
/// ([`Call::wait_down`]): `retry.deadline` with `writes.fail_fast`, as the admission waits out a
/// newly down node; not at all without the breaker.
pub(super) fn wait_down(rt: &Runtime) -> Option<std::time::Duration> {
    let c = &rt.settings.config;
    c.writes.fail_fast.then_some(c.retry.deadline)
}

/// What is left of `policy` after `used` attempts and `elapsed` time; `None` when nothing is.
fn remaining(policy: &Backoff, used: u32, elapsed: std::time::Duration) -> Option<Backoff> {
    let attempts = policy.attempts.checked_sub(used).filter(|&n| n > 0)?;
    let deadline = policy
        .deadline
        .checked_sub(elapsed)
        .filter(|d| !d.is_zero())?;
    Some(Backoff {
        attempts,
        deadline,
        ..policy.clone()
    })
}
