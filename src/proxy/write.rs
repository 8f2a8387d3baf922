//! Writes: buffer the body, run the transaction on its own task (so a client that disconnects
//! cannot cancel a half-done write), and turn the outcome into the client's answer.

use super::{Proxy, buffered};
use crate::headers;
use crate::runtime::Runtime;
use crate::saga::{Outcome, TxnState, WriteRequest};
use crate::wire::ProxyBody;
use http::{Request, Response};
use hyper::body::Incoming;

pub(super) async fn handle(
    proxy: &Proxy,
    rt: &Runtime,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let cfg = &rt.settings.config;
    let (parts, body) = match buffered(req, cfg).await {
        Ok(pb) => pb,
        Err(resp) => return resp,
    };
    let write = WriteRequest {
        method: parts.method,
        path_and_query: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .to_string(),
        headers: parts.headers,
        body,
    };
    let outcome = match crate::answer::run_detached(&proxy.coordinator, write).await {
        Ok(o) => o,
        Err(failed) => return failed,
    };
    respond(&outcome, cfg.writes.retry_after)
}

/// The client's answer: the node's own answer when every node converged (or all refused alike),
/// a problem document otherwise; always with the transaction's id and state.
pub(super) fn respond(o: &Outcome, retry_after: std::time::Duration) -> Response<ProxyBody> {
    let mut resp = match (&o.response, o.state) {
        (Some(r), TxnState::Succeeded | TxnState::Rejected) => {
            let mut resp = Response::new(ProxyBody::full(r.body.clone()));
            *resp.status_mut() = r.status;
            *resp.headers_mut() = r.headers.clone();
            headers::strip_hop_by_hop(resp.headers_mut());
            resp
        }
        _ => crate::answer::for_outcome(o, retry_after),
    };
    resp.headers_mut()
        .insert(headers::TXN_ID, headers::value(&o.txn));
    resp.headers_mut()
        .insert(headers::TXN_STATE, headers::value(o.state.as_str()));
    if o.replayed {
        resp.headers_mut().insert(
            headers::IDEMPOTENT_REPLAYED,
            http::HeaderValue::from_static("true"),
        );
    }
    resp
}
