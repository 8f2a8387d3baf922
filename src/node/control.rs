//! The fault switch of running reference nodes: a small HTTP API (`dtc node --admin`, and the
//! demo's `--node-admin`) that changes a node's standing faults while it runs, so a person can
//! break the demo on purpose and heal it again (`dtc demo fault node-3 down`).
//!
//! - `GET /nodes`: every node with its faults;
//! - `POST /nodes/{name}/faults` with `{"faults": ["down", "delay=500ms", ...]}` (see
//!   [`FaultChange`]): applies them in order and answers the node as `GET /nodes` shows it.
//!
//! It listens on loopback by default and takes no token: it exists to break things.

use super::RefNode;
use crate::wire::{self, Drain, Options, ProxyBody, problem};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// One change of a node's standing faults, as `dtc demo --fault` and `dtc demo fault` write it.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultChange {
    /// `down`: stop listening; connects are refused.
    Down,
    /// `up`: listen again on the same port.
    Up,
    /// `delay=500ms`: latency added before each request.
    Delay(Duration),
    /// `error-rate=0.2`: that share of writes answers 500 without being applied.
    ErrorRate(f64),
    /// `apply-then-fail-rate=0.1`: that share of writes is applied, then answers 500.
    ApplyThenFailRate(f64),
    /// `heal`: up, no delay, no rates, no pending one-shot faults.
    Heal,
}

/// The forms [`FaultChange`] takes, for messages.
pub(crate) const FAULT_FORMS: &str =
    "down, up, delay=500ms, error-rate=0.2, apply-then-fail-rate=0.1 or heal";

/// Why a fault given on the command line or to the control API is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    #[error("`{text}`: the rate must be a number from 0 to 1, e.g. {name}=0.2")]
    Rate { text: String, name: String },
    #[error("`{0}` is not a rate: write a number from 0 to 1, e.g. 0.1")]
    BareRate(String),
    #[error("`{text}`: {why}; write the delay like delay=500ms")]
    Delay { text: String, why: String },
    #[error("`{0}` is not a fault: write {FAULT_FORMS}")]
    Unknown(String),
}

impl FromStr for FaultChange {
    type Err = FaultError;

    fn from_str(text: &str) -> Result<Self, FaultError> {
        let (name, value) = match text.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (text.trim(), None),
        };
        let rate = |v: Option<&str>| -> Result<f64, FaultError> {
            match v.map(str::parse::<f64>) {
                Some(Ok(r)) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(FaultError::Rate {
                    text: text.to_string(),
                    name: name.to_string(),
                }),
            }
        };
        Ok(match (name, value) {
            ("down", None) => FaultChange::Down,
            ("up", None) => FaultChange::Up,
            ("heal", None) => FaultChange::Heal,
            ("delay", Some(v)) => {
                FaultChange::Delay(humantime::parse_duration(v).map_err(|e| FaultError::Delay {
                    text: text.to_string(),
                    why: e.to_string(),
                })?)
            }
            ("error-rate", v) => FaultChange::ErrorRate(rate(v)?),
            ("apply-then-fail-rate", v) => FaultChange::ApplyThenFailRate(rate(v)?),
            _ => return Err(FaultError::Unknown(text.to_string())),
        })
    }
}

impl std::fmt::Display for FaultChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaultChange::Down => f.write_str("down"),
            FaultChange::Up => f.write_str("up"),
            FaultChange::Heal => f.write_str("heal"),
            FaultChange::Delay(d) => write!(f, "delay={}", humantime::format_duration(*d)),
            FaultChange::ErrorRate(r) => write!(f, "error-rate={r}"),
            FaultChange::ApplyThenFailRate(r) => write!(f, "apply-then-fail-rate={r}"),
        }
    }
}

impl RefNode {
    /// Applies one change of its standing faults.
    pub async fn apply(&self, change: &FaultChange) {
        match change {
            FaultChange::Down => self.set_down(true).await,
            FaultChange::Up => self.set_down(false).await,
            FaultChange::Delay(d) => self.set_delay(*d),
            FaultChange::ErrorRate(r) => self.set_error_rate(*r),
            FaultChange::ApplyThenFailRate(r) => self.set_apply_then_fail_rate(*r),
            FaultChange::Heal => {
                self.clear_faults();
                self.release_held();
                self.set_delay(Duration::ZERO);
                self.set_error_rate(0.0);
                self.set_apply_then_fail_rate(0.0);
                self.set_down(false).await;
            }
        }
    }

    /// The node as the fault switch shows it.
    pub fn view(&self) -> NodeView {
        let f = self.shared.faults().standing();
        NodeView {
            name: self.name().to_string(),
            url: self.url(),
            down: self.is_down(),
            delay: humantime::format_duration(f.delay).to_string(),
            error_rate: f.error_rate,
            apply_then_fail_rate: f.apply_then_fail_rate,
        }
    }
}

/// One node and its standing faults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub name: String,
    pub url: String,
    pub down: bool,
    /// `0s`, `500ms`.
    pub delay: String,
    pub error_rate: f64,
    pub apply_then_fail_rate: f64,
}

impl NodeView {
    /// `node-3 http://127.0.0.1:5002: down, delay 500ms, error rate 0.2`.
    pub fn line(&self) -> String {
        let mut faults = Vec::new();
        if self.down {
            faults.push("DOWN (connects refused)".to_string());
        }
        if self.delay != "0s" {
            faults.push(format!("delay {}", self.delay));
        }
        if self.error_rate > 0.0 {
            faults.push(format!("error rate {}", self.error_rate));
        }
        if self.apply_then_fail_rate > 0.0 {
            faults.push(format!(
                "apply-then-fail rate {}",
                self.apply_then_fail_rate
            ));
        }
        if faults.is_empty() {
            faults.push("healthy".into());
        }
        format!("{} {}: {}", self.name, self.url, faults.join(", "))
    }
}

/// The body of `POST /nodes/{name}/faults`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct FaultRequest {
    pub faults: Vec<String>,
}

/// Serves the fault switch of `nodes` on `listener` until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    nodes: Vec<RefNode>,
    shutdown: impl Future<Output = ()>,
) {
    let nodes = Arc::new(nodes);
    let service = service_fn(move |req: Request<Incoming>| {
        let nodes = nodes.clone();
        async move { Ok::<_, Infallible>(handle(&nodes, req).await) }
    });
    let opts = Options::new(
        "node-admin",
        auto::Builder::new(TokioExecutor::new()),
        Drain::Abort,
    );
    wire::serve(listener, service, shutdown, opts, wire::Plain("node-admin")).await;
}

async fn handle(nodes: &[RefNode], req: Request<Incoming>) -> Response<ProxyBody> {
    let path = req.uri().path().trim_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["nodes"]) => {
            let views: Vec<NodeView> = nodes.iter().map(RefNode::view).collect();
            json(StatusCode::OK, &serde_json::json!({ "nodes": views }))
        }
        (Method::POST, ["nodes", name, "faults"]) => {
            let Some(node) = nodes.iter().find(|n| n.name() == *name) else {
                let names: Vec<&str> = nodes.iter().map(RefNode::name).collect();
                return problem::plain(
                    StatusCode::NOT_FOUND,
                    "unknown-node",
                    format!("no node `{name}` here; the nodes are {}", names.join(", ")),
                );
            };
            change(node, req).await
        }
        _ => problem::plain(
            StatusCode::NOT_FOUND,
            "not-found",
            "the fault switch serves GET /nodes and POST /nodes/{name}/faults",
        ),
    }
}

async fn change(node: &RefNode, req: Request<Incoming>) -> Response<ProxyBody> {
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return problem::plain(StatusCode::BAD_REQUEST, "bad-body", e.to_string());
        }
    };
    let asked: FaultRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let detail = format!(r#"send {{"faults": ["down"]}}: {e}"#);
            return problem::plain(StatusCode::BAD_REQUEST, "bad-json", detail);
        }
    };
    let mut changes = Vec::new();
    for text in &asked.faults {
        match text.parse::<FaultChange>() {
            Ok(c) => changes.push(c),
            Err(e) => return problem::plain(StatusCode::BAD_REQUEST, "bad-fault", e.to_string()),
        }
    }
    for c in &changes {
        node.apply(c).await;
        tracing::info!(node = %node.name(), fault = %c, "fault switched");
    }
    json(StatusCode::OK, &node.view())
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<ProxyBody> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut resp = Response::new(ProxyBody::full(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_changes_parse_and_print_back() {
        for text in ["down", "up", "heal", "delay=500ms", "error-rate=0.2"] {
            assert_eq!(text.parse::<FaultChange>().unwrap().to_string(), text);
        }
        assert!(
            "error-rate=2"
                .parse::<FaultChange>()
                .unwrap_err()
                .to_string()
                .contains("0 to 1")
        );
        assert!(
            "delay=soon"
                .parse::<FaultChange>()
                .unwrap_err()
                .to_string()
                .contains("delay=500ms")
        );
        assert!(
            "sideways"
                .parse::<FaultChange>()
                .unwrap_err()
                .to_string()
                .contains("heal")
        );
    }
}
