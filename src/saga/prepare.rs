//! Preparing a write, before anything is sent: with `[cluster]` the key's lease (first, for a
//! route that reads pre-images), each node's pre-image when the route takes them, and the
//! journal's intent record with the undo each node would need.

use super::attempt::{Call, CallLimits, call_with_retries};
use super::deps::Deps;
use super::end::{not_sent, pre_statuses, refused, untouched};
use super::undo::Snapshot;
use super::write::{Planner, Snapshots, Txn};
use crate::config::template::{Context, Escape, RenderError};
use crate::headers;
use crate::retry::Backoff;
use crate::txn::UndoPlan;
use crate::txn::outcome::{Class, Outcome, Reason, TxnState};
use crate::upstream::SendError;
use bytes::Bytes;
use futures_util::future::join_all;
use http::Method;

/// What a prepared write goes on with: the pre-images, and each node's undo as the intent
/// recorded it (empty without a journal).
pub(super) struct Prepared {
    pub(super) snapshots: Snapshots,
    pub(super) pre: Vec<Option<UndoPlan>>,
}

/// Reads the pre-images and journals the intent (unless `journaled`: a pipelined write's,
/// journaled with its ticket). `Err` is the answer: nothing was sent.
pub(super) async fn prepare(d: &Deps, t: &Txn<'_>, journaled: bool) -> Result<Prepared, Outcome> {
    let snapshots = pre_images(d, t).await?;
    let planner = Planner {
        t,
        snapshots: &snapshots,
    };
    let pre: Vec<Option<UndoPlan>> = match &d.journal {
        Some(_) => (0..t.rt.nodes.all().len())
            .map(|i| planner.plan(i, None).and_then(Result::ok))
            .collect(),
        None => Vec::new(),
    };
    if let Some(j) = d.journal.as_ref().filter(|_| !journaled)
        && let Err(e) = j
            .begin(t.intent(pre.clone(), pre_statuses(&snapshots)))
            .await
    {
        return Err(refused(d, t, e));
    }
    Ok(Prepared { snapshots, pre })
}

/// Each node's pre-image, when the route takes them (under the key's lease with
/// `[cluster]`, or another sidecar's write could change the resource between the read and
/// this write). `Err` is the answer: nothing was sent.
async fn pre_images(d: &Deps, t: &Txn<'_>) -> Result<Snapshots, Outcome> {
    let snapshot_route = t.route.is_some_and(|r| r.snapshot.is_some());
    if let Some(j) = d
        .journal
        .as_ref()
        .filter(|j| snapshot_route && j.hold(&t.id).is_none())
        && let Err(e) = j.take_lease(&t.key, &t.id).await
    {
        return Err(refused(d, t, e));
    }
    match snapshots(t).await {
        Ok(s) => Ok(s),
        Err(e) => {
            if let Some(j) = &d.journal {
                j.release(&t.id).await;
            }
            Err(untouched(
                d,
                t,
                TxnState::ToBeRetried,
                Reason::SnapshotFailed(e.to_string()),
                not_sent(t.rt.nodes.all()),
            ))
        }
    }
}

/// Why the pre-images of a write could not be read (nothing was sent to any node).
#[derive(Debug, thiserror::Error)]
pub(super) enum SnapshotError {
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

/// Reads each node's pre-image, when the route asks for it.
async fn snapshots(t: &Txn<'_>) -> Result<Snapshots, SnapshotError> {
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
            .enumerate()
            .map(|(i, node)| Call {
                node,
                method: rule.method.clone(),
                path_and_query: t.node_path(i, &path),
                headers: headers.clone(),
                body: Bytes::new(),
                already: &[404, 410],
                resend: true,
                wait_down: None,
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
