//! A write's answer as a problem document: the status, title and retryability of each end
//! state, with the transaction and each node's part. One mapping, so the proxy and the admin's
//! `POST /dtc/` give a write the same status; and one way for both to run a write
//! ([`run_detached`]).

use crate::headers;
use crate::saga::{Coordinator, WriteRequest};
use crate::txn::{Outcome, Reason, TxnState};
use crate::wire::ProxyBody;
use crate::wire::problem::{self, Problem, respond};
use http::header::RETRY_AFTER;
use http::{Response, StatusCode};
use std::time::Duration;

/// Runs `write` to its end on a task of its own, so a client that hangs up cannot cancel a
/// half-done write. `Err` is the answer when that task failed (a bug; logged).
pub(crate) async fn run_detached(
    coordinator: &Coordinator,
    write: WriteRequest,
) -> Result<Outcome, Response<ProxyBody>> {
    let coordinator = coordinator.clone();
    match tokio::spawn(async move { coordinator.execute(write).await }).await {
        Ok(outcome) => Ok(outcome),
        Err(e) => {
            tracing::error!(error = %e, "write task failed");
            Err(problem::plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the write task failed; see the dtc log",
            ))
        }
    }
}

/// The client's answer for a write that did not simply pass through a node's answer. A 503
/// carries `Retry-After`: the outcome's own (a down node's next trial) or `retry_after`.
pub(crate) fn for_outcome(o: &Outcome, retry_after: Duration) -> Response<ProxyBody> {
    let (status, title, retryable) = match o.state {
        TxnState::Rejected if o.reason == Some(Reason::NoRoute) => (
            StatusCode::NOT_IMPLEMENTED,
            "no route for this write",
            false,
        ),
        TxnState::Rejected if matches!(o.reason, Some(Reason::Fenced(_))) => (
            StatusCode::CONFLICT,
            "resource fenced by an unresolved transaction",
            false,
        ),
        TxnState::Rejected if matches!(o.reason, Some(Reason::KeyReused(_))) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency key reused with another request",
            false,
        ),
        TxnState::ToBeRetried if matches!(o.reason, Some(Reason::KeyInProgress(_))) => (
            StatusCode::CONFLICT,
            "a request with this idempotency key is still running",
            true,
        ),
        TxnState::Rejected if matches!(o.reason, Some(Reason::UnknownId(_))) => {
            (StatusCode::NOT_FOUND, "no resource with this id", false)
        }
        TxnState::Rejected if matches!(o.reason, Some(Reason::NodeIdUnknown(_))) => (
            StatusCode::CONFLICT,
            "a node's id of this resource is unknown",
            false,
        ),
        TxnState::Rejected if o.reason == Some(Reason::TargetStateHolds) => (
            StatusCode::CONFLICT,
            "write not confirmed: every node already holds its target state",
            false,
        ),
        TxnState::Rejected => (StatusCode::CONFLICT, "write rejected", false),
        TxnState::ToBeRetried => (
            StatusCode::SERVICE_UNAVAILABLE,
            "write not applied, retry",
            true,
        ),
        TxnState::RolledBack if o.any_rejected() => (
            StatusCode::CONFLICT,
            "write rolled back: a node rejected it",
            false,
        ),
        TxnState::RolledBack => (
            StatusCode::SERVICE_UNAVAILABLE,
            "write rolled back, retry",
            true,
        ),
        TxnState::Failed | TxnState::InDoubt => (
            StatusCode::BAD_GATEWAY,
            "write failed: nodes may be inconsistent",
            false,
        ),
        TxnState::Succeeded => (StatusCode::OK, "succeeded", false),
    };
    let blocking = match &o.reason {
        Some(
            Reason::Fenced(t)
            | Reason::KeyReused(t)
            | Reason::KeyInProgress(t)
            | Reason::Checking(t),
        ) => Some(t.as_str()),
        _ => None,
    };
    let p = Problem {
        kind: format!("urn:dtc:state:{}", o.state),
        title,
        status: status.as_u16(),
        detail: o.reason.as_ref().map(Reason::describe).unwrap_or_default(),
        transaction: Some(&o.txn),
        state: Some(o.state),
        retryable,
        blocking_transaction: blocking,
        nodes: &o.nodes,
        trace_id: o.trace_id.as_deref(),
    };
    let mut resp = respond(status, &p);
    if status == StatusCode::SERVICE_UNAVAILABLE || (retryable && status == StatusCode::CONFLICT) {
        // Whole seconds (HTTP's unit), rounded up: never before the retry can work.
        let wait = o.retry_after.unwrap_or(retry_after);
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        resp.headers_mut()
            .insert(RETRY_AFTER, headers::value(&secs.to_string()));
    }
    resp
}
