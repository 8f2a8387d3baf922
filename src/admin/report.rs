//! The operator's summary (`GET /status`): nodes, config generation and reload, counts by state,
//! and the transactions that need a person. The status page renders it as HTML and `dtc status`
//! as a table, so both show the same facts and judge "needs attention" the same way.

pub(crate) use super::node_state::format_ms;
use super::{AdminState, ReloadView, TxnView};
use crate::txn::TxnState;
use crate::verify::LastVerify;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most transactions the report lists (newest first): the page pages through them.
pub(crate) const MAX_LISTED: usize = 1000;
/// An in-doubt transaction older than this needs attention (the alert threshold of docs/operating.md).
pub(crate) const STUCK_AFTER: Duration = Duration::from_secs(60);
/// How many recent `rolled_back` transactions the report shows.
pub(crate) const RECENT_ROLLED_BACK: usize = 10;

/// The last error seen on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeError {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub error: String,
}

/// What a node did over the last minute (or since start, when dtc is younger).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recent {
    /// Seconds the figures cover.
    pub seconds: f64,
    pub requests_per_s: f64,
    pub errors_per_s: f64,
    pub retries_per_s: f64,
    /// Latency percentiles of those requests (bucket upper bounds), timeouts included.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One node as the operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub url: String,
    pub up: bool,
    pub in_flight: usize,
    /// Recent time to a response head (writes, reads, probes), in milliseconds; a request cut
    /// off by a timeout counts with the time it waited.
    pub latency_ms: Option<f64>,
    /// Up, down since when and why, half-open.
    #[serde(flatten)]
    pub health: super::node_state::NodeState,
    /// The last error: no answer, a 5xx, a failed probe.
    #[serde(default)]
    pub last_error: Option<NodeError>,
    /// Whether it ever answered (a probe or a request, below 500) since dtc started.
    #[serde(default = "yes")]
    pub answered: bool,
    /// Requests (writes, undos, read-backs, reads; not probes) since start.
    #[serde(default)]
    pub requests: u64,
    /// Of those, the ones with no answer or a 5xx.
    #[serde(default)]
    pub errors: u64,
    /// Writes sent again since start.
    #[serde(default)]
    pub retries: u64,
    #[serde(default)]
    pub recent: Option<Recent>,
}

fn yes() -> bool {
    true
}

/// How many transactions ended in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateCount {
    pub state: TxnState,
    pub count: u64,
}

/// Everything `GET /status` answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// When the report was made, in milliseconds since the Unix epoch.
    pub now_ms: u64,
    /// dtc's version.
    #[serde(default)]
    pub version: String,
    /// When this dtc started, in milliseconds since the Unix epoch.
    #[serde(default)]
    pub started_ms: u64,
    /// Whether the journal is open (a readiness condition).
    pub journal_open: bool,
    /// Why the journal (or the shared store) cannot take writes now, if it cannot.
    #[serde(default)]
    pub journal_problem: Option<String>,
    pub nodes: Vec<NodeStatus>,
    /// The generation in effect, reload counts and the last reload's error.
    pub reload: ReloadView,
    /// Write transactions finished since this dtc started, by final state.
    pub finished: Vec<StateCount>,
    /// Transactions in doubt now.
    pub in_doubt: usize,
    /// Failed transactions not yet converged or resolved.
    pub failed: usize,
    /// The failed (unresolved) and in-doubt transactions, newest first, at most [`MAX_LISTED`].
    pub attention: Vec<TxnView>,
    /// The local journal: size, oldest kept transaction, compaction, why it refuses records.
    #[serde(default)]
    pub journal: Option<crate::txn::JournalStats>,
    /// The latest `rolled_back` transactions, newest first (at most [`RECENT_ROLLED_BACK`]).
    #[serde(default)]
    pub rolled_back: Vec<TxnView>,
    /// What the last `dtc verify` (or the background verify) left differing between nodes.
    #[serde(default)]
    pub divergence: Option<LastVerify>,
}

impl StatusReport {
    /// The report of a running dtc.
    pub fn of(state: &AdminState) -> StatusReport {
        let rt = state.current.load();
        let now = super::sampler::readings(state);
        let nodes = rt
            .nodes
            .all()
            .iter()
            .map(|n| node_status(state, n, &now))
            .collect();
        let (in_doubt, failed) = state.txns.counts();
        let mut attention = state.txns.list(Some(TxnState::InDoubt), MAX_LISTED);
        let failed_list = state.txns.list(Some(TxnState::Failed), MAX_LISTED);
        attention.extend(failed_list.into_iter().filter(|t| t.resolution.is_none()));
        attention.sort_by(|a, b| b.started_ms.cmp(&a.started_ms).then(b.txn.cmp(&a.txn)));
        attention.truncate(MAX_LISTED);
        StatusReport {
            now_ms: now_ms(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_ms: state.started_ms,
            journal_open: state.txns.journal_open(),
            journal_problem: state.txns.journal_problem(),
            nodes,
            reload: (state.reload)(),
            finished: state
                .metrics
                .finished_by_state()
                .map(|(state, count)| StateCount { state, count })
                .to_vec(),
            in_doubt,
            failed,
            attention,
            journal: state.txns.journal_stats(),
            rolled_back: state
                .txns
                .list(Some(TxnState::RolledBack), RECENT_ROLLED_BACK),
            divergence: state.verifier.as_ref().and_then(|v| v.last()),
        }
    }

    /// What needs a person, one line each; empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        // The local journal's problem, else (with `[cluster]`) the shared store's.
        let refusing = self
            .journal
            .as_ref()
            .and_then(|j| j.problem.as_ref())
            .or(self.journal_problem.as_ref());
        match refusing {
            Some(why) => out.push(format!("writes are refused: {why}")),
            None if !self.journal_open => {
                out.push("the transaction journal is not open".to_string());
            }
            None => {}
        }
        if let Some(behind) = self
            .journal
            .as_ref()
            .and_then(|j| j.compaction_behind.as_ref())
        {
            out.push(format!("journal compaction cannot keep up: {behind}"));
        }
        for n in &self.nodes {
            // The last error, unless the health's reason already says it.
            let error = match &n.last_error {
                Some(e)
                    if !n
                        .health
                        .reason
                        .as_ref()
                        .is_some_and(|r| r.contains(&e.error)) =>
                {
                    format!("; last error: {}", e.error)
                }
                _ => String::new(),
            };
            match n.health.problem() {
                Some(p) => out.push(format!("node {} ({}) {p}{error}", n.name, n.url)),
                None if !n.up => out.push(format!("node {} ({}) is down{error}", n.name, n.url)),
                None if !n.answered && n.last_error.is_some() => out.push(format!(
                    "node {} ({}) has not answered since dtc started{error}",
                    n.name, n.url
                )),
                None => {}
            }
        }
        if self.failed > 0 {
            out.push(format!(
                "{} failed transaction{}: the nodes may differ",
                self.failed,
                plural(self.failed)
            ));
        }
        let stuck_before = self.now_ms.saturating_sub(STUCK_AFTER.as_millis() as u64);
        let stuck = self
            .attention
            .iter()
            .filter(|t| t.state == TxnState::InDoubt && t.started_ms < stuck_before)
            .count();
        if stuck > 0 {
            out.push(format!(
                "{stuck} transaction{} in doubt for over {}s",
                plural(stuck),
                STUCK_AFTER.as_secs()
            ));
        }
        if let Some(v) = self.divergence.as_ref().filter(|v| !v.differing.is_empty()) {
            let keys: Vec<String> = v
                .differing
                .iter()
                .take(5)
                .map(|k| format!("{} ({})", k.key, k.finding.as_str()))
                .collect();
            let more = v.differing.len().saturating_sub(keys.len());
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            out.push(format!(
                "the verify of {} left {} key{} differing between nodes: {}{more}; see `dtc verify --repair`",
                format_ms(v.at_ms),
                v.differing.len(),
                plural(v.differing.len()),
                keys.join(", ")
            ));
        }
        if let Some(e) = &self.reload.last_error {
            out.push(format!("the last config reload was refused: {e}"));
        }
        if !self.reload.restart_pending.is_empty() {
            out.push(format!(
                "restart pending: the config file changes {}, which only a restart applies (the running values stay until then)",
                self.reload.restart_pending.join(", ")
            ));
        }
        out
    }
}

/// One node's status: health, traffic since start, and the last minute's rates.
fn node_status(
    state: &AdminState,
    n: &crate::upstream::Node,
    now: &std::collections::HashMap<String, super::sampler::NodeReading>,
) -> NodeStatus {
    let reading = now.get(n.name()).cloned().unwrap_or_default();
    let w = state.sampler.window(n.name(), &reading);
    let per_s = |count: u64| count as f64 / w.seconds;
    NodeStatus {
        name: n.name().to_string(),
        // As configured: `Uri`'s Display would add a `/` to a URL without a path.
        url: format!("http://{}{}", n.spec.authority, n.spec.base_path),
        up: n.health.is_up(),
        in_flight: n.in_flight(),
        latency_ms: n.recent_latency().map(|d| d.as_secs_f64() * 1000.0),
        health: super::node_state::NodeState::of(n),
        last_error: n.stats.last_error().map(|e| NodeError {
            at_ms: e.at_ms,
            error: e.error,
        }),
        answered: n.stats.answered(),
        requests: reading.stats.requests,
        errors: reading.stats.errors,
        retries: reading.retries,
        recent: Some(Recent {
            seconds: w.seconds,
            requests_per_s: per_s(w.delta.stats.requests),
            errors_per_s: per_s(w.delta.stats.errors),
            retries_per_s: per_s(w.delta.retries),
            p50_ms: w.delta.stats.percentile_ms(0.5),
            p99_ms: w.delta.stats.percentile_ms(0.99),
        }),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Now, in milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `3s`, `5m`, `2h 5m`, `3d 4h`.
pub(crate) fn uptime(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> StatusReport {
        StatusReport {
            now_ms: 1_000_000,
            journal_open: true,
            nodes: vec![NodeStatus {
                name: "node-1".into(),
                url: "http://127.0.0.1:1".into(),
                up: true,
                in_flight: 0,
                latency_ms: None,
                health: Default::default(),
                last_error: None,
                answered: true,
                requests: 0,
                errors: 0,
                retries: 0,
                recent: None,
            }],
            version: "0.1.0".into(),
            started_ms: 0,
            journal_problem: None,
            rolled_back: Vec::new(),
            divergence: None,
            reload: ReloadView::default(),
            finished: Vec::new(),
            in_doubt: 0,
            failed: 0,
            attention: Vec::new(),
            journal: None,
        }
    }

    #[test]
    fn a_healthy_report_has_no_problems() {
        assert!(report().problems().is_empty());
    }

    #[test]
    fn down_nodes_failed_transactions_and_refused_reloads_are_problems() {
        let mut r = report();
        r.nodes[0].up = false;
        r.failed = 2;
        r.reload.last_error = Some("line 1: bad".into());
        let p = r.problems();
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("node-1") && p[0].contains("down"));
        assert!(p[1].starts_with("2 failed transactions"));
        assert!(p[2].contains("line 1: bad"));
    }

    #[test]
    fn formats_epoch_milliseconds_as_utc() {
        assert_eq!(format_ms(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }
}
