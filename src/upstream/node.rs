//! One node: its connection pool ([`super::pool`]), health and in-flight count.

use super::catchup::CatchUp;
use super::error::SendError;
use super::health::{Flip, Health, HealthView, Reach};
use super::pool::{NodeBody, Pool};
use super::stats::NodeStats;
use super::tls::NodeTls;
use crate::config::duration::Human;
use crate::config::{HealthConfig, NodeSpec};
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::Full;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Idle connections kept per node.
const MAX_IDLE_CONNECTIONS: usize = 256;
/// How long a connection may sit idle in the pool.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A replica as the proxy sees it. Shared (`Arc`) between config generations while its name,
/// URL and connect timeout stay the same, so it keeps its pool and health across reloads.
pub struct Node {
    pub spec: NodeSpec,
    pub(crate) connect_timeout: Duration,
    pool: Arc<Pool>,
    pub health: Health,
    /// Whether reads may go to it (a joining node takes writes only).
    pub catch_up: CatchUp,
    pub(crate) health_config: ArcSwap<HealthConfig>,
    in_flight: AtomicUsize,
    /// Recent time to a response head, in microseconds: a moving average (0: none yet). A
    /// request cut off before its answer (a timeout) counts with the time it waited.
    latency_us: AtomicU64,
    /// Requests, errors and latencies of real traffic, for the operator views.
    pub stats: NodeStats,
}

/// Marks a request as a health probe (a request extension): probes are not traffic, so
/// [`Node::send`] leaves them out of [`Node::stats`].
#[derive(Debug, Clone, Copy)]
pub struct Probe;

impl Node {
    /// Creates a node and its client. Health starts `up`, so traffic flows before the first probe.
    pub fn new(spec: NodeSpec, connect_timeout: Duration, health: HealthConfig) -> Arc<Node> {
        let tls = spec.tls.clone().map(|t| NodeTls::new(&spec.name, t));
        let pool = Pool::with_tls(
            &spec.authority,
            tls,
            connect_timeout,
            MAX_IDLE_CONNECTIONS,
            IDLE_TIMEOUT,
        );
        Arc::new(Node {
            spec,
            connect_timeout,
            pool,
            health: Health::default(),
            catch_up: CatchUp::default(),
            health_config: ArcSwap::from_pointee(health),
            in_flight: AtomicUsize::new(0),
            latency_us: AtomicU64::new(0),
            stats: NodeStats::default(),
        })
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The origin-form URI of `path_and_query` on this node (base path prepended); the pool
    /// adds the `Host` header.
    pub fn uri(&self, path_and_query: &str) -> Uri {
        if self.spec.base_path.is_empty() {
            return path_and_query
                .parse()
                .unwrap_or_else(|_| Uri::from_static("/"));
        }
        let mut s = String::with_capacity(self.spec.base_path.len() + path_and_query.len());
        s.push_str(&self.spec.base_path);
        s.push_str(path_and_query);
        s.parse().unwrap_or_else(|_| Uri::from_static("/"))
    }

    /// The one way to build a request for this node: `method` on `path_and_query` (under the
    /// node's base path), with `headers` (already prepared for nodes: hop-by-hop removed; the
    /// pool sets `Host`) and a buffered `body`. Writes, undos, read-backs, reads and health
    /// probes all build theirs here.
    pub fn request(
        &self,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = self.uri(path_and_query);
        *req.headers_mut() = headers;
        req
    }

    /// Sends one request (origin-form URI, from [`Node::uri`]) and waits for the response head.
    /// Its connection returns to the node's pool once the body has been read to the end.
    ///
    /// Whether the node could be reached is recorded for its health here, for every call; a
    /// caller that gives up waiting (its attempt timeout) reports that with [`Node::timed_out`].
    /// For the operator views ([`Node::stats`]), a request cut off before its answer (its
    /// caller's timeout dropped this future) still counts, as an error with the time it waited.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> Result<Response<NodeBody>, SendError> {
        let mut watch = Watch {
            node: self,
            start: Instant::now(),
            probe: req.extensions().get::<Probe>().is_some(),
            done: false,
        };
        let resp = self.pool.send(req).await;
        match &resp {
            Ok(_) => self.observe(&Reach::Reached, watch.start),
            Err(e) => self.observe(&e.reach(), watch.start),
        }
        let error = match &resp {
            Ok(r) if r.status().is_server_error() => Some(format!("answered {}", r.status())),
            Ok(_) => {
                self.stats.note_answer();
                None
            }
            Err(e) => Some(e.to_string()),
        };
        watch.finish(resp.is_ok(), error);
        resp
    }

    /// A call sent at `sent` got no complete answer within `waited`: evidence that the node
    /// cannot be reached.
    pub fn timed_out(&self, sent: Instant, waited: Duration) {
        self.observe(
            &Reach::Unreachable(format!("no answer within {}", Human(waited))),
            sent,
        );
    }

    /// The node's health as the admin shows it.
    pub fn health_view(&self) -> HealthView {
        self.health.view()
    }

    /// Records one call's evidence; logs a flip once.
    fn observe(&self, reach: &Reach, sent: Instant) {
        let cfg = self.health_config.load();
        match self.health.record(reach, sent, &cfg) {
            Some(Flip::Down {
                reason,
                unreachable,
                calls,
            }) => tracing::warn!(
                node = %self.name(),
                unreachable,
                calls,
                window = ?cfg.window,
                reason = %reason,
                "node marked down: it cannot be reached; writes that need it are refused until a trial reaches it"
            ),
            Some(Flip::Up { down_for }) => tracing::info!(
                node = %self.name(),
                down_ms = down_for.as_millis() as u64,
                "node is up again: a trial reached it"
            ),
            None => {}
        }
    }

    /// Recent time from sending a request to its response head (writes, reads and probes), as
    /// the status page shows it; `None` before the first answer.
    pub fn recent_latency(&self) -> Option<Duration> {
        match self.latency_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Folds one answer's latency into the moving average (weight 1/8, like TCP's SRTT).
    /// Concurrent updates may lose one sample; this is a display figure, not a metric.
    fn observe_latency(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        let old = self.latency_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (old * 7 + sample) / 8
        };
        self.latency_us.store(new.max(1), Ordering::Relaxed);
    }

    /// Requests currently in flight to this node.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request as in flight until the guard drops.
    pub fn track(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// Times one request to a node; records it when it ends, or when it is dropped unanswered.
struct Watch<'a> {
    node: &'a Node,
    start: Instant,
    probe: bool,
    done: bool,
}

impl Watch<'_> {
    fn finish(&mut self, answered: bool, error: Option<String>) {
        self.done = true;
        let took = self.start.elapsed();
        if answered || error.is_some() {
            self.node.observe_latency(took);
        }
        match (self.probe, error) {
            (false, error) => self.node.stats.record(took, error),
            (true, Some(error)) => self.node.stats.note_error(error),
            (true, None) => {}
        }
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if !self.done {
            let waited = self.start.elapsed();
            self.finish(false, Some(format!("no answer after {}", Human(waited))));
        }
    }
}

/// Keeps a request counted in its node's in-flight number.
pub struct InFlight(Arc<Node>);

impl InFlight {
    /// The node the request went to.
    pub fn node(&self) -> &Arc<Node> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
