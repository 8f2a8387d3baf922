//! Undo plans: the compensating request for one node, resolved from the route's rule and what
//! that node answered. A plan is plain data, so the journal can keep it and recovery can run it;
//! [`run_undo`] runs one, for the live path and recovery alike.

use super::attempt::{Call, CallLimits, call_with_retries};
use crate::config::template::{Context, Escape, RenderError};
use crate::config::validate::{CompBody, CompensationRule};
use crate::headers;
use crate::retry::Backoff;
use crate::runtime::Runtime;
use crate::telemetry::trace;
use crate::txn::outcome::{Class, CompOutcome, CompReport};
use crate::txn::{NodeResponse, UndoPlan};
use crate::upstream::Node;
use bytes::Bytes;
use http::{HeaderMap, Method};
use opentelemetry::context::FutureExt as _;
use serde_json::Value;
use std::sync::Arc;

/// What a node held before the write (snapshot compensation).
#[derive(Debug, Clone)]
pub(crate) enum Snapshot {
    /// The representation and its content type.
    Present(Bytes, Option<String>),
    /// The resource did not exist there (404 or 410).
    Absent,
}

/// Why the undo of one node cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum PlanError {
    /// The route has no compensation rule.
    #[error("no compensation rule")]
    NoRule,
    /// The rule's path or body template cannot be filled in (e.g. it needs the node's response,
    /// which never came).
    #[error("cannot build the undo: {0}")]
    Render(#[from] RenderError),
    /// The rule restores a pre-image, and this node's was not read.
    #[error("cannot build the undo: the pre-image of this node was not read")]
    NoPreImage,
}

/// The inputs of a plan for one node.
pub(crate) struct UndoInputs<'a> {
    pub params: &'a [(String, String)],
    pub request_json: Option<&'a Value>,
    pub request_body: &'a Bytes,
    pub request_content_type: Option<&'a str>,
    /// The node's answer to the write, if one came.
    pub response: Option<&'a NodeResponse>,
    /// The node's pre-image, when the route takes snapshots.
    pub snapshot: Option<&'a Snapshot>,
    /// The path the snapshot read (to delete a resource that did not exist before).
    pub snapshot_path: Option<&'a str>,
}

/// Resolves the undo of one node; an error says why it cannot be built (e.g. the template needs
/// the node's response, which never came).
pub(crate) fn plan(
    rule: &CompensationRule,
    inputs: &UndoInputs<'_>,
) -> Result<UndoPlan, PlanError> {
    let response_json = inputs
        .response
        .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok());
    let location = inputs
        .response
        .and_then(|r| r.headers.get(http::header::LOCATION))
        .and_then(|v| v.to_str().ok())
        .map(location_path);
    let ctx = Context {
        params: inputs.params,
        body: inputs.request_json,
        response: response_json.as_ref(),
        location: location.as_deref(),
    };
    let path = rule.path.render(&ctx, Escape::Path)?;
    let (content_type, body) = match &rule.body {
        CompBody::None => (None, Bytes::new()),
        CompBody::Original => (
            inputs.request_content_type.map(String::from),
            inputs.request_body.clone(),
        ),
        CompBody::Template(t) => (
            Some("application/json".to_string()),
            Bytes::from(t.render(&ctx, Escape::Json)?),
        ),
        CompBody::Snapshot => match inputs.snapshot {
            Some(Snapshot::Present(body, ct)) => (ct.clone(), body.clone()),
            // Nothing was there before: the undo is to make it absent again.
            Some(Snapshot::Absent) => {
                let path = inputs.snapshot_path.unwrap_or(&path).to_string();
                return Ok(UndoPlan {
                    method: Method::DELETE,
                    path,
                    content_type: None,
                    body: Bytes::new(),
                    already: vec![404, 410],
                });
            }
            None => return Err(PlanError::NoPreImage),
        },
    };
    Ok(UndoPlan {
        method: rule.method.clone(),
        path,
        content_type,
        body,
        already: rule.already.clone(),
    })
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
    let mut headers = headers::for_undo(client_headers);
    if let Some((k, v)) = plan.content_type_header() {
        headers.insert(k, v);
    }
    headers.insert(
        headers::IDEMPOTENCY_KEY,
        headers::value(&format!("{txn}-{purpose}")),
    );
    headers.insert(headers::TXN_ID, headers::value(txn));
    let method = plan.method.clone();
    let call = Call {
        node,
        method,
        path_and_query: plan.path.clone(),
        headers,
        body: plan.body.clone(),
        already: &plan.already,
        resend: true,
        wait_down: None,
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

/// `http://host/items/5?x` → `/items/5?x`; a path stays as it is.
fn location_path(loc: &str) -> String {
    match loc.split_once("://") {
        Some((_, rest)) => rest
            .find('/')
            .map(|i| rest[i..].to_string())
            .unwrap_or_else(|| "/".into()),
        None => loc.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::location_path;

    #[test]
    fn location_reduces_to_path() {
        assert_eq!(location_path("http://n1:5000/items/5"), "/items/5");
        assert_eq!(location_path("/items/5"), "/items/5");
    }
}
