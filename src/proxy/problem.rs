//! Error answers: `application/problem+json` (RFC 9457), with the transaction and each node's
//! part when a write is involved.

use super::body::ProxyBody;
use crate::headers;
use crate::txn::{NodeReport, Outcome, Reason, TxnState};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;
use std::time::Duration;

/// A problem document.
#[derive(Debug, Serialize)]
pub struct Problem<'a> {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'a str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<TxnState>,
    /// Whether the client may simply send the same request again.
    pub retryable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocking_transaction: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub nodes: &'a [NodeReport],
}

/// A problem answer that is not about a transaction (413, 408, 503 no node, ...).
pub fn plain(status: StatusCode, kind: &str, detail: impl Into<String>) -> Response<ProxyBody> {
    let p = Problem {
        kind: format!("urn:dtc:problem:{kind}"),
        title: status.canonical_reason().unwrap_or("error"),
        status: status.as_u16(),
        detail: detail.into(),
        transaction: None,
        state: None,
        retryable: matches!(status.as_u16(), 408 | 429 | 502..=504),
        blocking_transaction: None,
        nodes: &[],
    };
    respond(status, &p)
}

/// The client's answer for a write that did not simply pass through a node's answer.
pub fn for_outcome(o: &Outcome, retry_after: Duration) -> Response<ProxyBody> {
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
        Some(Reason::Fenced(t)) => Some(t.as_str()),
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
    };
    let mut resp = respond(status, &p);
    if status == StatusCode::SERVICE_UNAVAILABLE {
        let secs = retry_after.as_secs().max(1);
        resp.headers_mut()
            .insert(RETRY_AFTER, headers::value(&secs.to_string()));
    }
    resp
}

fn respond(status: StatusCode, p: &Problem<'_>) -> Response<ProxyBody> {
    let body = serde_json::to_vec(p).unwrap_or_default();
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    resp
}
