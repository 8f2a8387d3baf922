//! The active check of a node: a `GET health.path` every `health.interval` while it is up, and
//! the half-open trials of [`super::health`] while it is down. Every probe's evidence goes
//! through [`Node::send`] like any other call's; the loop only decides when to probe.

use super::health::{Reach, Step};
use super::node::Node;
use crate::config::duration::Human;
use http::Method;
use http_body_util::BodyExt;
use std::sync::Weak;
use std::time::Duration;
use tokio::time::Instant;

/// Probes the node until it is dropped. The config is re-read each round, so a reload applies
/// to the next probe.
pub(crate) async fn probe_loop(node: Weak<Node>) {
    loop {
        let Some(n) = node.upgrade() else { return };
        let cfg = n.health_config.load_full();
        if cfg.path.is_empty() {
            // Probing is off; wait for a reload to turn it on (re-read every interval).
            drop(n);
            tokio::time::sleep(cfg.interval).await;
            continue;
        }
        match n.health.poll(&cfg) {
            Step::Probe => {
                let reach = probe_once(&n, &cfg.path, cfg.timeout).await;
                n.health.probed(&reach, &cfg);
            }
            // A removed node ends its loop at most one wait later.
            Step::Wait(until) => tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                () = n.health.changed() => {}
            },
        }
    }
}

/// One probe: any HTTP answer means the node was reached (its status is the retry loop's
/// business, not health's).
async fn probe_once(node: &Node, path: &str, timeout: Duration) -> Reach {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("dtc-health"),
    );
    let mut req = node.request(Method::GET, path, headers, bytes::Bytes::new());
    req.extensions_mut().insert(super::node::Probe);
    let sent = Instant::now();
    let attempt = async {
        let resp = match node.send(req).await {
            Ok(resp) => resp,
            Err(e) => return e.reach(),
        };
        // Read to the end, so the connection goes back to the pool.
        let _ = resp.into_body().collect().await;
        Reach::Reached
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(reach) => reach,
        Err(_) => {
            node.timed_out(sent, timeout);
            Reach::Unreachable(format!(
                "no answer within {} (health.timeout)",
                Human(timeout)
            ))
        }
    }
}
