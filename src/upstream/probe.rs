//! Health checks of a node: passive (the outcome of real traffic) and active (a probe of the
//! configured path every interval), both feeding the node's [`super::health::Health`].

use super::node::Node;
use http::Method;
use http_body_util::BodyExt;
use std::sync::Weak;
use std::time::Duration;

impl Node {
    /// Records the outcome of a request of real traffic (passive health).
    pub fn observe(&self, transient_failure: bool) {
        let cfg = self.health_config.load();
        if transient_failure {
            if !cfg.path.is_empty() && self.health.failure(cfg.unhealthy_threshold) {
                tracing::warn!(node = %self.name(), failures = cfg.unhealthy_threshold, "node marked down by failed requests");
            }
        } else if self.health.success(cfg.healthy_threshold) {
            tracing::info!(node = %self.name(), "node is up again");
        }
    }
}

/// Probes the node until it is dropped. Interval and path are re-read each round, so a reload
/// applies to the next probe.
pub async fn probe_loop(node: Weak<Node>) {
    loop {
        let interval = match node.upgrade() {
            Some(n) => n.health_config.load().interval,
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(n) = node.upgrade() else { return };
        let cfg = n.health_config.load_full();
        if cfg.path.is_empty() {
            continue;
        }
        let ok = probe_once(&n, &cfg.path, cfg.timeout).await;
        if ok {
            if n.health.success(cfg.healthy_threshold) {
                tracing::info!(node = %n.name(), "node is up (probe)");
            }
        } else if n.health.failure(cfg.unhealthy_threshold) {
            tracing::warn!(node = %n.name(), path = %cfg.path, "node marked down (probe)");
        }
    }
}

async fn probe_once(node: &Node, path: &str, timeout: Duration) -> bool {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::USER_AGENT,
        http::HeaderValue::from_static("dtc-health"),
    );
    let req = node.request(Method::GET, path, headers, bytes::Bytes::new());
    let attempt = async {
        let resp = node.send(req).await.ok()?;
        let status = resp.status();
        resp.into_body().collect().await.ok()?;
        Some(status.as_u16() < 500)
    };
    matches!(tokio::time::timeout(timeout, attempt).await, Ok(Some(true)))
}
