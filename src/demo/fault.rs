//! `dtc demo fault [NODE CHANGE...]`: switches the faults of a running demo's nodes (or of a
//! `dtc node --admin`) through their fault switch ([`crate::node::control`]).
//!
//! Exit codes ([`crate::exit`]): 0 done; 64 a change or the URL is not understood; 65 the switch
//! refused (no such node); 69 nothing answers at `--node-admin` (is the demo running?); 76 the
//! answer was not a fault switch's.

use super::NODE_ADMIN;
use crate::exit;
use crate::node::control::{FAULT_FORMS, FaultRequest};
use crate::node::{FaultChange, NodeView};
use crate::upstream::pool::Pool;
use bytes::Bytes;
use clap::Args;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use std::process::ExitCode;
use std::time::Duration;

/// `dtc demo fault`.
#[derive(Debug, Args)]
pub struct FaultArgs {
    /// The fault switch: the demo's `--node-admin`, or a `dtc node --admin`.
    #[arg(long, value_name = "URL", default_value = concat!("http://", "127.0.0.1:9902"), env = "DTC_NODE_ADMIN")]
    pub node_admin: String,
    /// The node to change (`node-3`); without it, list the nodes and their faults.
    pub node: Option<String>,
    /// What to change: down, up, delay=500ms, error-rate=0.2, apply-then-fail-rate=0.1, heal.
    #[arg(value_parser = |s: &str| s.parse::<FaultChange>())]
    pub changes: Vec<FaultChange>,
}

/// Why the fault switch could not be used, with its exit code.
#[derive(Debug, thiserror::Error)]
enum FaultError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "nothing answers at {0} ({1}): is `dtc demo` running? (its fault switch is --node-admin, {NODE_ADMIN} by default)"
    )]
    Unreachable(String, String),
    #[error("the fault switch refused: {0}")]
    Refused(String),
    #[error("{0}: the answer is not a fault switch's ({1})")]
    Protocol(String, String),
}

impl FaultError {
    fn code(&self) -> u8 {
        match self {
            FaultError::Usage(_) => exit::USAGE,
            FaultError::Unreachable(..) => exit::UNAVAILABLE,
            FaultError::Refused(_) => exit::DATA,
            FaultError::Protocol(..) => exit::PROTOCOL,
        }
    }
}

/// Runs `dtc demo fault`.
pub(crate) fn main(args: FaultArgs) -> ExitCode {
    crate::process::with_runtime(1, async move {
        match switch(&args).await {
            Ok(lines) => {
                lines.iter().for_each(|l| println!("{l}"));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("dtc demo fault: {e}");
                ExitCode::from(e.code())
            }
        }
    })
}

async fn switch(args: &FaultArgs) -> Result<Vec<String>, FaultError> {
    let authority = args
        .node_admin
        .strip_prefix("http://")
        .map(|a| a.trim_end_matches('/'))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| {
            FaultError::Usage(format!(
                "--node-admin `{}`: write it as http://HOST:PORT",
                args.node_admin
            ))
        })?;
    let pool = Pool::new(authority, Duration::from_secs(3), 1, Duration::from_secs(5));
    let Some(node) = &args.node else {
        let v = call(&pool, &args.node_admin, Method::GET, "/nodes", None).await?;
        let nodes: Vec<NodeView> = serde_json::from_value(v["nodes"].clone())
            .map_err(|e| FaultError::Protocol(args.node_admin.clone(), e.to_string()))?;
        return Ok(nodes.iter().map(NodeView::line).collect());
    };
    if args.changes.is_empty() {
        return Err(FaultError::Usage(format!(
            "say what to change on {node}: {FAULT_FORMS}"
        )));
    }
    let body = FaultRequest {
        faults: args.changes.iter().map(ToString::to_string).collect(),
    };
    let path = format!("/nodes/{node}/faults");
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let v = call(&pool, &args.node_admin, Method::POST, &path, Some(body)).await?;
    let view: NodeView = serde_json::from_value(v)
        .map_err(|e| FaultError::Protocol(args.node_admin.clone(), e.to_string()))?;
    Ok(vec![view.line()])
}

async fn call(
    pool: &std::sync::Arc<Pool>,
    base: &str,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<serde_json::Value, FaultError> {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| FaultError::Usage(e.to_string()))?;
    let unreachable = |why: String| FaultError::Unreachable(base.to_string(), why);
    let exchange = async {
        let resp = pool
            .send(req)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| unreachable(format!("the answer broke off: {e}")))?
            .to_bytes();
        Ok::<_, FaultError>((status, bytes))
    };
    let (status, bytes) = tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .map_err(|_| unreachable("no answer within 30s".into()))??;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| FaultError::Protocol(base.to_string(), format!("{status}, not JSON")))?;
    if status.is_success() {
        Ok(value)
    } else {
        Err(FaultError::Refused(
            value["detail"].as_str().unwrap_or("").to_string(),
        ))
    }
}
