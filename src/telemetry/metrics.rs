//! Prometheus metrics: counters and histograms the data path bumps, and gauges computed at scrape
//! time from a [`ScrapeView`].
//!
//! The data path must not pay for metrics: every label set is registered once (states, results,
//! and each node the first time it is seen), and its counter handles are kept, so a call is an
//! atomic add — plus, for per-node metrics, a read-locked map lookup by `&str` that allocates
//! nothing. Encoding uses the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]).

use super::store::StoreMetrics;
use crate::txn::{Class, JournalStats, TxnState};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The `Content-Type` of [`Metrics::encode`]'s output.
pub(crate) const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The node outcomes counted by `dtc_node_requests_total`, in [`Class`] order.
const OUTCOMES: [&str; 4] = ["applied", "already", "rejected", "transient"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeOutcomeLabel {
    node: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeResultLabel {
    node: String,
    result: &'static str,
}

/// Counter handles of one node, fetched once from the families.
struct NodeCounters {
    requests: [Counter; 4],
    retries: Counter,
    undone: Counter,
    undo_failed: Counter,
}

/// A counter pair for a `result` label: `[good, bad]`.
type Pair = [Counter; 2];

/// All of dtc's metrics. Shared as `Arc<Metrics>`; every method takes `&self`.
pub struct Metrics {
    registry: Registry,
    txns: [Counter; 6],
    write_seconds: Histogram,
    reads: Pair,
    read_seconds: Histogram,
    reloads: Pair,
    redrives: Pair,
    /// Writes answered by their idempotency key: `[replayed, refused, in_progress]`.
    idempotency: [Counter; 3],
    node_requests: Family<NodeOutcomeLabel, Counter>,
    retries: Family<NodeLabel, Counter>,
    compensations: Family<NodeResultLabel, Counter>,
    divergent_keys: Gauge,
    backfill_keys: Family<NodeResultLabel, Counter>,
    nodes: RwLock<HashMap<Box<str>, NodeCounters>>,
    connections: Gauge,
    /// The shared store's metrics, in cluster mode.
    store: Option<Arc<StoreMetrics>>,
    spans: Pair,
}

/// What the scrape-time gauges are computed from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScrapeView {
    /// The config generation in effect.
    pub generation: u64,
    /// Transactions in doubt now.
    pub in_doubt: usize,
    /// Failed (unconverged) transactions now.
    pub failed: usize,
    /// Each node of the current generation and whether it is up.
    pub nodes: Vec<(String, bool)>,
    /// The local journal, when there is one.
    pub journal: Option<JournalStats>,
    /// Each joining node (no reads until its backfill finished) and the keys its backfill has
    /// left in the current pass.
    pub joining: Vec<(String, u64)>,
}

/// Registers a new metric of type `M` under `name` and returns a handle on it.
fn add<M: Metric + Clone + Default>(r: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    r.register(name, help, metric.clone());
    metric
}

/// Registers a latency histogram.
fn add_histogram(r: &mut Registry, name: &str, help: &str) -> Histogram {
    let histogram = Histogram::new(latency_buckets());
    r.register(name, help, histogram.clone());
    histogram
}

/// Latency buckets: 1 ms to about 16 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 15)
}

fn result_pair(
    family: &Family<ResultLabel, Counter>,
    good: &'static str,
    bad: &'static str,
) -> Pair {
    [good, bad].map(|result| family.get_or_create_owned(&ResultLabel { result }))
}

impl Metrics {
    /// Registers every metric, with a zero series for each state and result.
    pub fn new() -> Arc<Metrics> {
        Metrics::build(false)
    }

    /// Like [`Metrics::new`], with the shared store's metrics (cluster mode).
    pub fn with_store() -> Arc<Metrics> {
        Metrics::build(true)
    }

    fn build(with_store: bool) -> Arc<Metrics> {
        let mut r = Registry::default();
        let txns: Family<StateLabel, Counter> = add(
            &mut r,
            "dtc_transactions",
            "Write transactions finished, by final state",
        );
        let write_seconds = add_histogram(
            &mut r,
            "dtc_write_duration_seconds",
            "Duration of write transactions, compensation included",
        );
        let reads = add(
            &mut r,
            "dtc_reads",
            "Reads finished, by result (ok: a node answered)",
        );
        let read_seconds = add_histogram(
            &mut r,
            "dtc_read_duration_seconds",
            "Duration of reads until the response head",
        );
        let node_requests = add(
            &mut r,
            "dtc_node_requests",
            "Write requests to nodes, by outcome",
        );
        let retries = add(&mut r, "dtc_retries", "Retried write requests, by node");
        let compensations = add(&mut r, "dtc_compensations", "Undos, by node and result");
        let reloads = add(&mut r, "dtc_config_reloads", "Config reloads, by result");
        let redrives = add(
            &mut r,
            "dtc_redrives",
            "Re-drives of failed transactions, by result",
        );
        let idempotency: Family<ResultLabel, Counter> = add(
            &mut r,
            "dtc_idempotency_keys",
            "Writes answered from a client's Idempotency-Key without a new transaction: replayed (the first answer again), refused (the key came with another request: 422), in_progress (its first request still runs elsewhere: 409)",
        );
        let divergent_keys = add(
            &mut r,
            "dtc_divergent_keys",
            "Keys the last verify found differing between nodes and left unrepaired",
        );
        let backfill_keys = add(
            &mut r,
            "dtc_backfill_keys",
            "Keys a joining node's backfill went through, by node and result (in_line, copied, pending, no_read)",
        );
        let connections = add(
            &mut r,
            "dtc_client_connections",
            "Client connections open now (limits.max_connections bounds them)",
        );
        let store = with_store.then(|| Arc::new(StoreMetrics::register(&mut r)));
        let spans = add(
            &mut r,
            "dtc_trace_spans",
            "Spans for the OTLP collector, by result (dropped: queue full or export failed)",
        );
        Arc::new(Metrics {
            store,
            spans: result_pair(&spans, "exported", "dropped"),
            registry: r,
            connections,
            txns: TxnState::ALL
                .map(|s| txns.get_or_create_owned(&StateLabel { state: s.as_str() })),
            write_seconds,
            reads: result_pair(&reads, "ok", "failed"),
            read_seconds,
            reloads: result_pair(&reloads, "ok", "failed"),
            redrives: result_pair(&redrives, "converged", "not_converged"),
            idempotency: ["replayed", "refused", "in_progress"]
                .map(|result| idempotency.get_or_create_owned(&ResultLabel { result })),
            node_requests,
            retries,
            compensations,
            divergent_keys,
            backfill_keys,
            nodes: RwLock::new(HashMap::new()),
        })
    }

    /// The shared store's metrics, in cluster mode.
    pub fn store(&self) -> Option<Arc<StoreMetrics>> {
        self.store.clone()
    }

    /// A client connection took a `limits.max_connections` slot.
    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    /// A client connection gave its slot back.
    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// Client connections open now.
    pub fn client_connections(&self) -> u64 {
        u64::try_from(self.connections.get()).unwrap_or(0)
    }

    /// A write transaction ended in `state` after `seconds`.
    pub fn txn_finished(&self, state: TxnState, seconds: f64) {
        let i = TxnState::ALL.iter().position(|s| *s == state).unwrap_or(0);
        self.txns[i].inc();
        self.write_seconds.observe(seconds);
    }

    /// Write transactions finished since start, by final state, in [`TxnState::ALL`] order.
    pub fn finished_by_state(&self) -> [(TxnState, u64); 6] {
        std::array::from_fn(|i| (TxnState::ALL[i], self.txns[i].get()))
    }

    /// A node's final answer to a write. `NotSent` is not a request and is not counted.
    pub fn node_request(&self, node: &str, outcome: Class) {
        let i = match outcome {
            Class::Applied => 0,
            Class::Already => 1,
            Class::Rejected => 2,
            Class::Transient => 3,
            Class::NotSent => return,
        };
        self.with_node(node, |n| {
            n.requests[i].inc();
        });
    }

    /// A write to `node` is sent again.
    pub fn retry(&self, node: &str) {
        self.with_node(node, |n| {
            n.retries.inc();
        });
    }

    /// Writes to `node` sent again since start.
    pub fn node_retries(&self, node: &str) -> u64 {
        let read = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        read.get(node).map_or(0, |c| c.retries.get())
    }

    /// A compensation on `node` ended: undone, or failed.
    pub fn compensation(&self, node: &str, undone: bool) {
        self.with_node(node, |n| {
            if undone { &n.undone } else { &n.undo_failed }.inc();
        });
    }

    /// A read ended after `seconds`; `ok` when a node answered.
    pub fn read_finished(&self, seconds: f64, ok: bool) {
        self.reads[usize::from(!ok)].inc();
        self.read_seconds.observe(seconds);
    }

    /// `n` spans reached the collector.
    pub fn spans_exported(&self, n: u64) {
        self.spans[0].inc_by(n);
    }

    /// `n` spans were dropped: the export queue was full, or the collector did not take them.
    pub fn spans_dropped(&self, n: u64) {
        self.spans[1].inc_by(n);
    }

    /// A config reload was applied (`ok`) or refused.
    pub fn reload(&self, ok: bool) {
        self.reloads[usize::from(!ok)].inc();
    }

    /// A background re-drive ran; `converged` when the nodes agree again.
    pub fn redrive(&self, converged: bool) {
        self.redrives[usize::from(!converged)].inc();
    }

    /// A write was answered from its idempotency key: `Ok(())` replayed, `Err(true)` refused
    /// (another request), `Err(false)` still in progress.
    pub fn idempotency(&self, answered: Result<(), bool>) {
        let i = match answered {
            Ok(()) => 0,
            Err(true) => 1,
            Err(false) => 2,
        };
        self.idempotency[i].inc();
    }

    /// The last verify left `n` keys differing between nodes.
    pub fn set_divergent_keys(&self, n: usize) {
        self.divergent_keys
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// A joining node's backfill went through one key: `result` is `in_line`, `copied`,
    /// `pending` or `no_read`. (Rare: registered on the spot.)
    pub fn backfill_key(&self, node: &str, result: &'static str) {
        self.backfill_keys
            .get_or_create(&NodeResultLabel {
                node: node.to_string(),
                result,
            })
            .inc();
    }

    /// Runs `f` on the counters of `node`, registered on first sight. The common case is a
    /// read lock and a lookup by `&str`: no allocation, no reference count traffic.
    fn with_node(&self, node: &str, f: impl FnOnce(&NodeCounters)) {
        let read = self.nodes.read().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = read.get(node) {
            f(c);
            return;
        }
        drop(read);
        let mut write = self.nodes.write().unwrap_or_else(|p| p.into_inner());
        f(write
            .entry(node.into())
            .or_insert_with(|| self.register_node(node)))
    }

    fn register_node(&self, node: &str) -> NodeCounters {
        let label = |outcome| NodeOutcomeLabel {
            node: node.to_string(),
            outcome,
        };
        let comp = |result| NodeResultLabel {
            node: node.to_string(),
            result,
        };
        NodeCounters {
            requests: OUTCOMES.map(|o| self.node_requests.get_or_create_owned(&label(o))),
            retries: self.retries.get_or_create_owned(&NodeLabel {
                node: node.to_string(),
            }),
            undone: self.compensations.get_or_create_owned(&comp("undone")),
            undo_failed: self.compensations.get_or_create_owned(&comp("failed")),
        }
    }

    /// Every metric in the Prometheus text format, with the gauges of `snapshot`.
    pub fn encode(&self, snapshot: &ScrapeView) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail; an encoder error would only truncate the scrape.
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "could not encode metrics");
        }
        if let Err(e) = prometheus_text::encode(&mut out, &scrape_registry(snapshot)) {
            tracing::warn!(error = %e, "could not encode scrape-time gauges");
        }
        out
    }
}

/// A throwaway registry holding the gauges of one scrape.
fn scrape_registry(s: &ScrapeView) -> Registry {
    let mut registry = Registry::default();
    let gauge = |v: u64| {
        let g = Gauge::<i64>::default();
        g.set(i64::try_from(v).unwrap_or(i64::MAX));
        g
    };
    registry.register(
        "dtc_transactions_in_doubt",
        "Transactions in doubt (started, not finished) now",
        gauge(s.in_doubt as u64),
    );
    registry.register(
        "dtc_transactions_failed",
        "Failed transactions not yet converged or resolved: the nodes may differ",
        gauge(s.failed as u64),
    );
    registry.register(
        "dtc_config_generation",
        "The config generation in effect (1 at start, +1 per reload)",
        gauge(s.generation),
    );
    let up = Family::<NodeLabel, Gauge>::default();
    for (node, is_up) in &s.nodes {
        up.get_or_create(&NodeLabel { node: node.clone() })
            .set(i64::from(*is_up));
    }
    registry.register(
        "dtc_node_up",
        "Whether a node is healthy (1) or down (0)",
        up,
    );
    if let Some(j) = &s.journal {
        register_journal(&mut registry, j);
    }
    let joining = Family::<NodeLabel, Gauge>::default();
    let left = Family::<NodeLabel, Gauge>::default();
    for (node, _) in &s.nodes {
        let label = NodeLabel { node: node.clone() };
        let keys = s.joining.iter().find(|(n, _)| n == node).map(|(_, k)| *k);
        joining.get_or_create(&label).set(i64::from(keys.is_some()));
        left.get_or_create(&label)
            .set(i64::try_from(keys.unwrap_or(0)).unwrap_or(i64::MAX));
    }
    registry.register(
        "dtc_node_joining",
        "Whether a node is joining (1): it takes writes but no reads until its backfill finished",
        joining,
    );
    registry.register(
        "dtc_node_backfill_keys_left",
        "Keys a joining node's backfill has left in its current pass (0 when not joining)",
        left,
    );
    registry
}

/// The local journal's gauges.
fn register_journal(registry: &mut Registry, j: &JournalStats) {
    let gauge = |v: i64| {
        let g = Gauge::<i64>::default();
        g.set(v);
        g
    };
    registry.register(
        "dtc_journal_writable",
        "Whether the journal takes records (1) or refuses them: disk full, I/O error, read-only, file gone (0)",
        gauge(i64::from(j.problem.is_none())),
    );
    let failures = Counter::<u64>::default();
    failures.inc_by(j.failures);
    registry.register(
        "dtc_journal_write_failures",
        "Times the journal stopped taking records since dtc started",
        failures,
    );
    registry.register(
        "dtc_journal_size_bytes",
        "Bytes of records in the journal file",
        gauge(i64::try_from(j.size_bytes).unwrap_or(i64::MAX)),
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let age = j
        .oldest_live_ms
        .map_or(0.0, |ms| now_ms.saturating_sub(ms) as f64 / 1000.0);
    let age_gauge = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
    age_gauge.set(age);
    registry.register(
        "dtc_journal_oldest_live_record_age_seconds",
        "Age of the oldest transaction the journal keeps (open, or in the keep_finished window)",
        age_gauge,
    );
    registry.register(
        "dtc_journal_compaction_behind",
        "Whether compaction cannot keep up with the appends (1): see /status",
        gauge(i64::from(j.compaction_behind.is_some())),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_are_encoded() {
        let m = Metrics::new();
        m.txn_finished(TxnState::Failed, 0.2);
        m.node_request("a", Class::Applied);
        m.node_request("a", Class::NotSent);
        m.compensation("a", false);
        m.set_divergent_keys(2);
        let text = m.encode(&ScrapeView {
            generation: 3,
            in_doubt: 1,
            failed: 2,
            nodes: vec![("a".into(), true), ("b".into(), false)],
            journal: None,
            joining: vec![("b".into(), 7)],
        });
        m.backfill_key("b", "copied");
        let text = format!("{text}{}", m.encode(&ScrapeView::default()));
        for line in [
            "dtc_transactions_total{state=\"failed\"} 1",
            "dtc_transactions_total{state=\"succeeded\"} 0",
            "dtc_node_requests_total{node=\"a\",outcome=\"applied\"} 1",
            "dtc_node_requests_total{node=\"a\",outcome=\"transient\"} 0",
            "dtc_compensations_total{node=\"a\",result=\"failed\"} 1",
            "dtc_write_duration_seconds_count 1",
            "dtc_transactions_failed 2",
            "dtc_divergent_keys 2",
            "dtc_config_generation 3",
            "dtc_node_up{node=\"b\"} 0",
            "dtc_node_joining{node=\"b\"} 1",
            "dtc_node_joining{node=\"a\"} 0",
            "dtc_node_backfill_keys_left{node=\"b\"} 7",
            "dtc_backfill_keys_total{node=\"b\",result=\"copied\"} 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
