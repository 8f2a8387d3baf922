//! Upstream: the nodes, their pooled clients, how their host names resolve, health, and
//! load-aware selection for reads.

pub(crate) mod catchup;
pub(crate) mod error;
pub(crate) mod health;
pub mod node;
pub(crate) mod pool;
pub(crate) mod probe;
pub mod resolve;
pub(crate) mod stats;
mod tls;

pub use error::{SendError, source_text};
pub use node::{InFlight, Node, Probe};
pub use pool::NodeBody;

use crate::config::Settings;
use crate::config::validate::{NodeSpec, parse_node_url};
use health::Admission;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// A write refused by fail-fast ([`NodeSet::admit_write`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A node the write needs that is down.
    pub node: String,
    /// When its next half-open trial is due (the latest, if several nodes are down).
    pub retry_in: Duration,
    /// When the first of the refusing nodes went down.
    pub down_since: Instant,
}

/// The nodes of one config generation, in file order.
#[derive(Clone)]
pub struct NodeSet {
    nodes: Arc<[Arc<Node>]>,
}

impl NodeSet {
    /// Builds the node set for `settings`, reusing nodes of `previous` whose name, URL and
    /// connect timeout are unchanged (they keep their pool and health). New nodes start probing;
    /// one at a URL `previous` did not have (a reload added it) is joining: no reads until a
    /// backfill has copied what the other nodes hold.
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
                        let known = |p: &NodeSet| p.nodes.iter().any(|o| o.spec.url == spec.url);
                        if previous.is_some_and(|p| !known(p)) {
                            n.catch_up.join(catchup::JoinReason::Added);
                        }
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

    /// Fail-fast for one write: `Ok` when every node is up, or when the one node that is down
    /// takes this write as its half-open trial (only a write whose route can undo it,
    /// `undoable`, may be a trial: if the node is still gone it is undone where it applied).
    /// Otherwise the refusal names a down node and when the last of their next trials is due.
    pub fn admit_write(&self, undoable: bool) -> Result<(), Refusal> {
        let mut down = self.nodes.iter().filter(|n| !n.health.is_up()).peekable();
        let Some(first) = down.next() else {
            return Ok(());
        };
        let trial = undoable && down.peek().is_none();
        let mut refusal: Option<Refusal> = None;
        for n in std::iter::once(first).chain(down) {
            match n.health.admit_write(trial, &n.health_config.load()) {
                Admission::Up | Admission::Trial => {}
                Admission::Refused(retry_in) => {
                    let down_since = n.health.down_at().unwrap_or_else(Instant::now);
                    match &mut refusal {
                        Some(r) => {
                            r.retry_in = r.retry_in.max(retry_in);
                            r.down_since = r.down_since.min(down_since);
                        }
                        None => {
                            refusal = Some(Refusal {
                                node: n.name().to_string(),
                                retry_in,
                                down_since,
                            })
                        }
                    }
                }
            }
        }
        refusal.map_or(Ok(()), Err)
    }

    /// [`NodeSet::admit_write`], waiting for the down nodes to come back: woken when one does,
    /// and when a refused node's next trial is due (this write may be that trial). It waits up
    /// to `wait`, and longer while the nodes it needs have been down for less than `newly` (the
    /// write's own retry budget: a node gone for less is what the retries would have waited
    /// out, so waiting costs the write nothing the breaker did not save). The refusal when the
    /// wait is over and a node it needs is still down.
    pub async fn admit_write_within(
        &self,
        undoable: bool,
        wait: Duration,
        newly: Duration,
    ) -> Result<(), Refusal> {
        let waited_from = Instant::now();
        loop {
            let mut comebacks: Vec<_> = self
                .nodes
                .iter()
                .filter(|n| !n.health.is_up())
                .map(|n| Box::pin(n.health.came_up()))
                .collect();
            for c in &mut comebacks {
                c.as_mut().enable();
            }
            let refusal = match self.admit_write(undoable) {
                Ok(()) => return Ok(()),
                Err(r) => r,
            };
            let now = Instant::now();
            let deadline = (waited_from + wait).max(refusal.down_since + newly);
            if now >= deadline {
                return Err(refusal);
            }
            // At least a moment: a trial already under way is due again only after it ends.
            let wake = (now + refusal.retry_in.max(Duration::from_millis(10))).min(deadline);
            if comebacks.is_empty() {
                // Went down after the look above: its trial schedule wakes this write.
                tokio::time::sleep_until(wake).await;
                continue;
            }
            tokio::select! {
                _ = futures_util::future::select_all(comebacks) => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// Picks a healthy node not in `tried` (indexes) that is not joining, by power of two
    /// choices on in-flight requests. `None` when no such node is left.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        // Counted and walked instead of collected: no allocation per read.
        let candidates = || {
            (0..self.nodes.len()).filter(|i| {
                let n = &self.nodes[*i];
                !tried.contains(i) && n.health.is_up() && n.catch_up.readable()
            })
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

#[cfg(test)]
mod tests;
