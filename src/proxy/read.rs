//! Reads: one healthy node, chosen by power of two choices on in-flight requests; the answer is
//! streamed. Connect errors, broken connections before the response head, timeouts and the
//! configured statuses move on to the next node, a bounded number of times.

use super::ids::ReadIds;
use super::{buffered, stream};
use crate::headers;
use crate::journal::Journal;
use crate::runtime::Runtime;
use crate::wire::{ProxyBody, problem};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;

pub(super) async fn handle(
    rt: &Runtime,
    journal: Option<&Arc<Journal>>,
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    let cfg = &rt.settings.config;
    let (parts, body) = match buffered(req, cfg).await {
        Ok(pb) => pb,
        Err(resp) => return resp,
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let ids = ReadIds::of(rt, journal, &parts.method, path).await;
    if let Some(refused) = ids.refusal() {
        return refused;
    }
    let node_headers = headers::for_node(parts.headers);
    let mut tried = Vec::with_capacity(3);
    let mut last: Option<Response<ProxyBody>> = None;
    let mut last_error = String::new();
    let nodes = rt.nodes.all();
    while tried.len() < cfg.reads.max_tries as usize {
        let Some(i) = rt.nodes.pick(&tried) else {
            break;
        };
        tried.push(i);
        let node = &nodes[i];
        let Some(node_path) = ids.path_for(node.name(), path) else {
            continue;
        };
        let out = node.request(
            parts.method.clone(),
            &node_path,
            node_headers.clone(),
            body.clone(),
        );
        let guard = node.track();
        let sent = tokio::time::Instant::now();
        match tokio::time::timeout(cfg.timeouts.attempt, node.send(out)).await {
            Ok(Ok(resp)) => {
                let status = resp.status();
                let (mut head, body) = resp.into_parts();
                headers::strip_hop_by_hop(&mut head.headers);
                let t = &cfg.timeouts;
                let body = stream::stream(body, guard, t.read_idle, t.read_total);
                let mut resp = Response::from_parts(head, body);
                if ids.rewrites() {
                    resp = ids.answer(node.name(), resp, cfg.limits.max_body).await;
                }
                if cfg.reads.retry_statuses.contains(&status.as_u16()) {
                    tracing::debug!(node = %node.name(), %status, "read retried on another node");
                    last = Some(resp);
                    continue;
                }
                return resp;
            }
            Ok(Err(e)) => {
                tracing::debug!(node = %node.name(), error = %e, "read failed, trying another node");
                last_error = format!("{}: {e}", node.name());
            }
            Err(_) => {
                node.timed_out(sent, cfg.timeouts.attempt);
                last_error = format!(
                    "{}: no answer within {}",
                    node.name(),
                    crate::config::duration::Human(cfg.timeouts.attempt)
                );
            }
        }
    }
    if let Some(resp) = last {
        return resp;
    }
    if tried.is_empty() {
        tracing::warn!(path, "no healthy node for a read");
        return problem::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-healthy-node",
            "no node is healthy; retry later",
        );
    }
    tracing::warn!(path, tried = tried.len(), error = %last_error, "read failed on every node tried");
    problem::plain(
        StatusCode::BAD_GATEWAY,
        "read-failed",
        format!("no node answered (last: {last_error})"),
    )
}
