//! Upstream: the nodes, their pooled clients, how their host names resolve, health, and
//! load-aware selection for reads.

pub mod error;
pub mod health;
pub mod node;
pub mod pool;
pub mod probe;
pub mod resolve;
mod tls;

pub use error::{SendError, source_text};
pub use node::{InFlight, Node};
pub use pool::NodeBody;

use crate::config::Settings;
use crate::config::validate::{NodeSpec, parse_node_url};
use std::sync::Arc;

/// The nodes of one config generation, in file order.
#[derive(Clone)]
pub struct NodeSet {
    nodes: Arc<[Arc<Node>]>,
}

impl NodeSet {
    /// Builds the node set for `settings`, reusing nodes of `previous` whose name, URL and
    /// connect timeout are unchanged (they keep their pool and health). New nodes start probing.
    pub fn build(settings: &Settings, previous: Option<&NodeSet>) -> NodeSet {
        let connect = settings.config.timeouts.connect;
        let health = &settings.config.health;
        let nodes: Vec<Arc<Node>> = settings
            .nodes
            .iter()
            .map(|spec| {
                let reused = previous.and_then(|p| {
                    p.nodes
                        .iter()
                        .find(|n| n.spec == *spec && n.connect_timeout == connect)
                        .cloned()
                });
                match reused {
                    Some(n) => {
                        n.health_config.store(Arc::new(health.clone()));
                        n
                    }
                    None => {
                        let n = Node::new(spec.clone(), connect, health.clone());
                        tokio::spawn(probe::probe_loop(Arc::downgrade(&n)));
                        n
                    }
                }
            })
            .collect();
        NodeSet {
            nodes: nodes.into(),
        }
    }

    /// The node of this set with `name` and `url` (a journaled transaction's node) or, when the
    /// config no longer has it, a detached client for it (not probed, not in the set), so a
    /// transaction recorded under an older generation can still be finished. `None` when `url`
    /// does not parse. The one way besides [`NodeSet::build`] to get a node client.
    pub fn node_for(&self, name: &str, url: &str, settings: &Settings) -> Option<Arc<Node>> {
        if let Some(n) = self
            .nodes
            .iter()
            .find(|n| n.name() == name && n.spec.url == url)
        {
            return Some(n.clone());
        }
        let (uri, authority, base_path) = parse_node_url(url).ok()?;
        // A node gone from the config: `[tls]` is all that is left of its TLS settings.
        let tls = match uri.scheme_str() {
            Some("https") => {
                let host = uri.host().unwrap_or_default();
                let mut findings = crate::config::tls::TlsFindings::default();
                let now = std::time::SystemTime::now();
                let global = &settings.config.tls;
                let spec = crate::config::tls::resolve(global, None, 0, host, now, &mut findings);
                Some(Arc::new(spec?))
            }
            _ => None,
        };
        let spec = NodeSpec {
            name: name.to_string(),
            url: uri,
            authority,
            base_path,
            tls,
        };
        let timeouts = &settings.config.timeouts;
        Some(Node::new(
            spec,
            timeouts.connect,
            settings.config.health.clone(),
        ))
    }

    /// All nodes.
    pub fn all(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// The first node that is down, if any.
    pub fn first_down(&self) -> Option<&Arc<Node>> {
        self.nodes.iter().find(|n| !n.health.is_up())
    }

    /// Picks a healthy node not in `tried` (indexes), by power of two choices on in-flight
    /// requests. `None` when no such node is left.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        // Counted and walked instead of collected: no allocation per read.
        let candidates = || {
            (0..self.nodes.len()).filter(|i| !tried.contains(i) && self.nodes[*i].health.is_up())
        };
        match candidates().count() {
            0 => None,
            1 => candidates().next(),
            n => {
                let a = fastrand::usize(..n);
                let mut b = fastrand::usize(..n - 1);
                if b >= a {
                    b += 1;
                }
                // A node may go down between the count and the walk: take what is left.
                match (candidates().nth(a), candidates().nth(b)) {
                    (Some(a), Some(b)) => {
                        Some(if self.nodes[b].in_flight() < self.nodes[a].in_flight() {
                            b
                        } else {
                            a
                        })
                    }
                    (Some(x), None) | (None, Some(x)) => Some(x),
                    (None, None) => candidates().next(),
                }
            }
        }
    }
}
