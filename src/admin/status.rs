//! Read-only admin endpoints: readiness, metrics, nodes and the effective config.

use super::AdminState;
use super::body::json;
use crate::telemetry::metrics::CONTENT_TYPE;
use crate::wire::ProxyBody;
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

/// The placeholder shown instead of a secret.
const REDACTED: &str = "***";

/// `GET /readyz`: 200 when dtc can take writes, else 503 with `missing`, a list of reasons (a
/// check adds its own line; see docs/views.md, "Readiness"):
/// - the journal is not open, or the journal or shared store refuses writes;
/// - no node is up: a node counts once it has answered (a probe or a request, below 500) since
///   dtc started and is not marked down, so a dtc whose nodes all cannot be reached is not
///   ready, even before the probes mark them down;
/// - every client connection slot is taken.
pub(super) fn readyz(state: &AdminState) -> Response<ProxyBody> {
    let rt = state.current.load();
    let mut missing = Vec::new();
    match state.txns.journal_problem() {
        Some(why) => missing.push(format!("writes are refused: {why}")),
        None if !state.txns.journal_open() => {
            missing.push("the transaction journal is not open".to_string());
        }
        None => {}
    }
    let nodes = rt.nodes.all();
    if !nodes.iter().any(|n| n.health.is_up() && n.stats.answered()) {
        let each: Vec<String> = nodes
            .iter()
            .map(|n| match (n.health.is_up(), n.stats.last_error()) {
                (false, _) => format!("{} down", n.name()),
                (true, Some(e)) => format!("{} not reached ({})", n.name(), e.error),
                (true, None) => format!("{} not reached yet", n.name()),
            })
            .collect();
        missing.push(format!("no node is up: {}", each.join(", ")));
    }
    let max = rt.settings.config.limits.max_connections as u64;
    let open = state.metrics.client_connections();
    if open >= max {
        missing.push(format!(
            "every client connection slot is taken ({open} of limits.max_connections = {max}): new clients are refused"
        ));
    }
    let status = if missing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": missing.is_empty(),
        "generation": rt.generation,
        "missing": missing,
    });
    json(status, &body)
}

/// `GET /metrics`: the Prometheus text format.
pub(super) fn metrics(state: &AdminState) -> Response<ProxyBody> {
    let mut view = state.current.load().scrape_view(state.txns.counts());
    view.journal = state.txns.journal_stats();
    let mut resp = Response::new(ProxyBody::full(state.metrics.encode(&view)));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(CONTENT_TYPE),
    );
    resp
}

/// One node in `GET /nodes`.
#[derive(Serialize)]
struct NodeView<'a> {
    name: &'a str,
    url: String,
    up: bool,
    in_flight: usize,
}

/// `GET /nodes`: each node of the current generation, its health and load.
pub(super) fn nodes(state: &AdminState) -> Response<ProxyBody> {
    let rt = state.current.load();
    let nodes: Vec<NodeView<'_>> = rt
        .nodes
        .all()
        .iter()
        .map(|n| NodeView {
            name: n.name(),
            // As configured: `Uri`'s Display would add a `/` to a URL without a path.
            url: format!("http://{}{}", n.spec.authority, n.spec.base_path),
            up: n.health.is_up(),
            in_flight: n.in_flight(),
        })
        .collect();
    json(
        StatusCode::OK,
        &json!({"generation": rt.generation, "nodes": nodes}),
    )
}

/// `GET /config`: the effective config (defaults filled in, secrets redacted), its generation,
/// and the reload status.
pub(super) fn config(state: &AdminState) -> Response<ProxyBody> {
    let rt = state.current.load();
    let mut config = match serde_json::to_value(&rt.settings.config) {
        Ok(v) => v,
        Err(e) => {
            return crate::wire::problem::plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("could not encode the config: {e}"),
            );
        }
    };
    redact(&mut config);
    let reload = (state.reload)();
    let body = json!({
        "generation": rt.generation,
        "last_reload_error": reload.last_error,
        "reloads": reload,
        "config": config,
    });
    json(StatusCode::OK, &body)
}

/// Replaces every secret in a config's JSON form with [`REDACTED`].
fn redact(config: &mut Value) {
    if let Some(token) = config.pointer_mut("/listen/admin_token")
        && !token.is_null()
    {
        *token = Value::String(REDACTED.into());
    }
    if let Some(Value::String(url)) = config.pointer_mut("/cluster/database_url") {
        *url = crate::config::cluster::redact_url(url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_and_absent_tokens_stay_null() {
        let mut set = json!({"listen": {"admin_token": "s3cret", "admin": "x"}});
        redact(&mut set);
        assert_eq!(set, json!({"listen": {"admin_token": "***", "admin": "x"}}));
        let mut unset = json!({"listen": {"admin_token": null}});
        redact(&mut unset);
        assert_eq!(unset, json!({"listen": {"admin_token": null}}));
    }
}
