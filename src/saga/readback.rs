//! Reading a node's state: the route's `verify` read, classified as the write's target state,
//! its prior state, or unclear — the evidence that replaces "may have applied" — and a
//! pre-image's status in the same terms ([`pre_image`]), for the live path and recovery alike.

use super::attempt::{Call, CallLimits, call_with_retries};
use super::undo::Snapshot;
use crate::journal::record::VerifyPlan;
use crate::retry::Backoff;
use crate::runtime::Runtime;
use crate::telemetry::trace;
use crate::txn::NodeResponse;
use crate::txn::evidence::{PreImage, ReadBack, State};
use crate::upstream::{Node, SendError};
use futures_util::future::join_all;
use http::HeaderMap;
use opentelemetry::context::FutureExt as _;
use std::sync::Arc;

/// What one read showed, with the report line for the node (`target`, `prior`, `unclear: ...`).
pub(crate) struct Read {
    pub read_back: ReadBack,
    pub note: String,
}

/// Reads the resource on `node` with `plan`, retrying transient failures under the retry policy.
pub(crate) async fn read_state(
    rt: &Runtime,
    node: &Arc<Node>,
    plan: &VerifyPlan,
    headers: &HeaderMap,
) -> Read {
    let method = plan.method.clone();
    let mut headers = headers.clone();
    for h in [
        http::header::CONTENT_TYPE,
        http::header::CONTENT_LENGTH,
        crate::headers::IDEMPOTENCY_KEY,
    ] {
        headers.remove(h);
    }
    let call = Call {
        node,
        method,
        path_and_query: plan.path.clone(),
        headers,
        body: Default::default(),
        already: &[],
        resend: true,
        wait_down: None,
    };
    let limits = CallLimits::of(rt);
    let step = trace::step("dtc.read_back", node.name());
    let r = call_with_retries(&call, &Backoff::from(&rt.settings.config.retry), limits)
        .with_context(step.context())
        .await;
    step.end(r.status(), r.error().as_deref(), r.class.as_str());
    match (r.status(), r.error()) {
        (Some(status), _) => match plan.state_of(status) {
            Some(State::Target) => Read {
                read_back: ReadBack::Is(State::Target),
                note: format!("target ({status})"),
            },
            Some(State::Prior) => Read {
                read_back: ReadBack::Is(State::Prior),
                note: format!("prior ({status})"),
            },
            None => unclear(format!("status {status}")),
        },
        (None, e) => unclear(e.unwrap_or_default()),
    }
}

/// Reads `path` on `node` with `method` and `headers`, retried under the config's policy: the
/// node's last answer, or why none came. A read outside a write (anti-entropy's look at a key)
/// goes through here, so every node request is built in the saga.
pub(crate) async fn fetch(
    rt: &Runtime,
    node: &Arc<Node>,
    method: &http::Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<NodeResponse, SendError> {
    let call = Call {
        node,
        method: method.clone(),
        path_and_query: path.to_string(),
        headers: headers.clone(),
        body: Default::default(),
        already: &[404, 410],
        resend: true,
        wait_down: None,
    };
    let policy = Backoff::from(&rt.settings.config.retry);
    call_with_retries(&call, &policy, CallLimits::of(rt))
        .await
        .answer
}

/// Reads every node where `which[i]` holds, at once; `None` for the others.
pub(crate) async fn read_nodes(
    rt: &Runtime,
    nodes: &[Option<Arc<Node>>],
    which: &[bool],
    plan: &VerifyPlan,
    headers: &HeaderMap,
) -> Vec<Option<Read>> {
    join_all(
        nodes
            .iter()
            .zip(which)
            .enumerate()
            .map(|(i, (node, &w))| async move {
                match (node, w) {
                    (Some(node), true) => {
                        Some(read_state(rt, node, &plan.for_node(i), headers).await)
                    }
                    (None, true) => Some(unclear(
                        "the node's URL in the journal is not usable".into(),
                    )),
                    _ => None,
                }
            }),
    )
    .await
}

fn unclear(why: String) -> Read {
    Read {
        read_back: ReadBack::Unclear,
        note: format!("unclear: {why}"),
    }
}

/// The status a pre-image read stands for: present (200) or absent (404).
pub(crate) fn pre_status(s: &Snapshot) -> u16 {
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
