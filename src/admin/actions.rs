//! The transactions API (list, inspect, retry, resolve) and the original project's `POST /dtc/`.
//!
//! `POST /dtc/` answers `{"State": ..., "transaction": ...}` with the status the proxy gives the
//! same write (200 succeeded, 409 rejected, 503 to_be_retried or rolled_back with `Retry-After`,
//! 502 failed), so a client can act on the status alone and the body stays the original shape.

use super::AdminState;
use super::body::{bad_json, json, read_body};
use crate::headers;
use crate::saga::{NodeReport, Outcome, TxnState, WriteRequest};
use crate::txn::{TxnActionError, TxnView};
use crate::wire::{ProxyBody, problem};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

/// Transactions listed when `limit` is not given, and the most ever listed.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// `GET /transactions?state=failed&limit=N&key=K`: newest first.
pub(super) fn list(state: &AdminState, query: &str) -> Response<ProxyBody> {
    let mut filter = None;
    let mut limit = DEFAULT_LIMIT;
    let key = super::page::query_value(query, "key").filter(|k| !k.is_empty());
    for (name, value) in query.split('&').filter_map(|p| p.split_once('=')) {
        match name {
            "state" => match TxnState::ALL.into_iter().find(|s| s.as_str() == value) {
                Some(s) => filter = Some(s),
                None => {
                    return bad_query(format!("unknown state `{value}`; use one of {}", states()));
                }
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) => limit = n.clamp(1, MAX_LIMIT),
                Err(_) => return bad_query(format!("limit `{value}` is not a whole number")),
            },
            _ => {}
        }
    }
    let txns = match key {
        Some(k) => {
            let mut found = state.txns.by_key(&k, MAX_LIMIT);
            found.retain(|t| filter.is_none_or(|s| t.state == s));
            found.truncate(limit);
            found
        }
        None => state.txns.list(filter, limit),
    };
    json(StatusCode::OK, &serde_json::json!({"transactions": txns}))
}

fn states() -> String {
    TxnState::ALL.map(TxnState::as_str).join(", ")
}

fn bad_query(detail: String) -> Response<ProxyBody> {
    problem::plain(StatusCode::BAD_REQUEST, "bad-query", detail)
}

/// `GET /transactions/{id}`: `id` may be the start of an id, if only one id starts with it.
pub(super) fn get(state: &AdminState, id: &str) -> Response<ProxyBody> {
    match state.txns.find(id) {
        Ok(view) => json(StatusCode::OK, &view),
        Err(e) => action_error(e),
    }
}

/// `POST /transactions/{id}/retry`: re-drive now and answer what it came to. Runs on its own
/// task: a client that gives up waiting does not cancel a re-drive half done.
pub(super) async fn retry(state: &AdminState, id: &str) -> Response<ProxyBody> {
    let id = match state.txns.find(id) {
        Ok(t) => t.txn,
        Err(e) => return action_error(e),
    };
    tracing::info!(txn = %id, "re-drive requested through the admin API");
    let txns = state.txns.clone();
    match tokio::spawn(async move { txns.retry(&id).await }).await {
        Ok(result) => answer(result),
        Err(e) => problem::plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the re-drive stopped: {e}"),
        ),
    }
}

#[derive(Deserialize)]
struct ResolveBody {
    reason: Option<String>,
    /// Who resolves it (`alice via dtc txn`); recorded with the reason.
    by: Option<String>,
}

/// `POST /transactions/{id}/resolve` with `{"reason": "..."}`: a person took care of it.
pub(super) async fn resolve(
    state: &AdminState,
    id: &str,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let body = match read_body(state, req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let (reason, by) = if body.iter().all(u8::is_ascii_whitespace) {
        (None, None)
    } else {
        match serde_json::from_slice::<ResolveBody>(&body) {
            Ok(b) => (b.reason.filter(|r| !r.trim().is_empty()), b.by),
            Err(e) => return bad_json(&e),
        }
    };
    let by = by
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| "an admin API client".into());
    let id = match state.txns.find(id) {
        Ok(t) => t.txn,
        Err(e) => return action_error(e),
    };
    let Some(reason) = reason else {
        return problem::plain(
            StatusCode::BAD_REQUEST,
            "reason-required",
            r#"say why the transaction is resolved: send {"reason": "..."} (it is recorded)"#,
        );
    };
    tracing::info!(txn = %id, reason = %reason, by = %by, "resolve requested through the admin API");
    answer(state.txns.resolve(&id, reason, by).await)
}

fn answer(result: Result<TxnView, TxnActionError>) -> Response<ProxyBody> {
    match result {
        Ok(view) => json(StatusCode::OK, &view),
        Err(e) => action_error(e),
    }
}

fn action_error(e: TxnActionError) -> Response<ProxyBody> {
    let (status, kind) = match &e {
        TxnActionError::NotFound(_) => (StatusCode::NOT_FOUND, "unknown-transaction"),
        TxnActionError::NotActionable { .. } => (StatusCode::CONFLICT, "not-actionable"),
        TxnActionError::AlreadyResolved { .. } => (StatusCode::CONFLICT, "already-resolved"),
        TxnActionError::Ambiguous { .. } => (StatusCode::BAD_REQUEST, "ambiguous-id"),
        TxnActionError::Journal(_) => (StatusCode::SERVICE_UNAVAILABLE, "journal-unavailable"),
    };
    problem::plain(status, kind, e.to_string())
}

/// The original project's request.
#[derive(Deserialize)]
struct DtcBody {
    #[serde(rename = "groupId")]
    group_id: String,
    action: String,
}

/// The original project's answer, plus the transaction's detail.
#[derive(Serialize)]
struct DtcAnswer<'a> {
    #[serde(rename = "State")]
    state: TxnState,
    transaction: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    nodes: &'a [NodeReport],
}

/// `POST /dtc/`: create or delete a group on every node, as one transaction.
pub(super) async fn dtc(state: &AdminState, req: Request<Incoming>) -> Response<ProxyBody> {
    let body = match read_body(state, req).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let parsed: DtcBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return bad_json(&e),
    };
    let method = match parsed.action.as_str() {
        "create" => Method::POST,
        "delete" => Method::DELETE,
        other => {
            return problem::plain(
                StatusCode::BAD_REQUEST,
                "bad-action",
                format!("action `{other}` is unknown; use \"create\" or \"delete\""),
            );
        }
    };
    if parsed.group_id.is_empty() {
        return problem::plain(StatusCode::BAD_REQUEST, "bad-group", "groupId is empty");
    }
    let group = serde_json::json!({"groupId": parsed.group_id}).to_string();
    let write = WriteRequest::json(method, "/v1/group/", &group);
    match crate::answer::run_detached(&state.coordinator, write).await {
        Ok(outcome) => dtc_answer(state, &outcome),
        Err(failed) => failed,
    }
}

fn dtc_answer(state: &AdminState, o: &Outcome) -> Response<ProxyBody> {
    let retry_after = state.current.load().settings.config.writes.retry_after;
    // The proxy's own mapping of a state to a status, so both listeners agree.
    let like_proxy = crate::answer::for_outcome(o, retry_after);
    let answer = DtcAnswer {
        state: o.state,
        transaction: &o.txn,
        detail: o.reason.as_ref().map(|r| r.describe()),
        nodes: &o.nodes,
    };
    let mut resp = json(like_proxy.status(), &answer);
    if let Some(v) = like_proxy.headers().get(http::header::RETRY_AFTER) {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, v.clone());
    }
    resp.headers_mut()
        .insert(headers::TXN_ID, headers::value(&o.txn));
    resp.headers_mut()
        .insert(headers::TXN_STATE, headers::value(o.state.as_str()));
    resp
}
