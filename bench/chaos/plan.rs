//! The seeded fault plan: each node's rates and delay redrawn every 0.3-0.8 s, and one node
//! gone for a while once part of the writes are done.

use dtc::node::{Faults, NodeOptions, RefNode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Three reference nodes, `node-1` to `node-3`, seeded from `seed`.
pub async fn nodes(seed: u64) -> Vec<RefNode> {
    let mut out = Vec::new();
    for i in 0..3u64 {
        let faults = Faults {
            seed: seed * 10 + i,
            jitter: Duration::from_millis(10),
            ..Faults::default()
        };
        let opts = NodeOptions {
            name: format!("node-{}", i + 1),
            id_base: 1 + 1000 * i,
            faults,
        };
        out.push(
            RefNode::bind("127.0.0.1:0", opts)
                .await
                .expect("a reference node"),
        );
    }
    out
}

/// Redraws `node`'s faults every 0.3-0.8 s until `stop`.
pub async fn flap(node: RefNode, seed: u64, stop: Arc<AtomicBool>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    while !stop.load(Ordering::Relaxed) {
        node.set_error_rate(rng.f64() * 0.20);
        node.set_apply_then_fail_rate(rng.f64() * 0.04);
        node.set_reset_rate(rng.f64() * 0.04);
        let delay = if rng.u8(..4) == 0 {
            rng.u64(50..=300)
        } else {
            rng.u64(0..=5)
        };
        node.set_delay(Duration::from_millis(delay));
        tokio::time::sleep(Duration::from_millis(rng.u64(300..=800))).await;
    }
}

/// Takes one node (drawn) down for `down_for` once 30-50 % of `ops` writes are done; returns
/// which node, when it went down, and when it came back.
pub async fn outage(
    nodes: &[RefNode],
    seed: u64,
    ops: usize,
    done: Arc<AtomicUsize>,
    down_for: Duration,
) -> (String, Instant, Instant) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x0d0e);
    let at = ops * rng.usize(30..=50) / 100;
    let node = &nodes[rng.usize(..nodes.len())];
    while done.load(Ordering::Relaxed) < at {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    node.set_down(true).await;
    let down = Instant::now();
    tokio::time::sleep(down_for).await;
    node.set_down(false).await;
    (node.name().to_string(), down, Instant::now())
}

/// No more faults: rates and delay to zero.
pub fn heal(nodes: &[RefNode]) {
    for n in nodes {
        n.set_error_rate(0.0);
        n.set_apply_then_fail_rate(0.0);
        n.set_reset_rate(0.0);
        n.set_delay(Duration::ZERO);
    }
}
