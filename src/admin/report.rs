//! The operator's summary (`GET /status`): nodes, config generation and reload, counts by state,
//! and the transactions that need a person. The status page renders it as HTML and `dtc status`
//! as a table, so both show the same facts and judge "needs attention" the same way.

pub use super::node_state::format_ms;
use super::{AdminState, ReloadView, TxnView};
use crate::txn::TxnState;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most transactions the report lists (newest first): the page pages through them.
pub const MAX_LISTED: usize = 1000;
/// An in-doubt transaction older than this needs attention (the alert threshold of docs/operating.md).
pub const STUCK_AFTER: Duration = Duration::from_secs(60);

/// One node as the operator sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub url: String,
    pub up: bool,
    pub in_flight: usize,
    /// Recent time to a response head (writes, reads, probes), in milliseconds.
    pub latency_ms: Option<f64>,
    /// Up, down since when and why, half-open.
    #[serde(flatten)]
    pub health: super::node_state::NodeState,
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
    /// Whether the journal is open (a readiness condition).
    pub journal_open: bool,
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
}

impl StatusReport {
    /// The report of a running dtc.
    pub fn of(state: &AdminState) -> StatusReport {
        let rt = state.current.load();
        let nodes = rt
            .nodes
            .all()
            .iter()
            .map(|n| NodeStatus {
                name: n.name().to_string(),
                // As configured: `Uri`'s Display would add a `/` to a URL without a path.
                url: format!("http://{}{}", n.spec.authority, n.spec.base_path),
                up: n.health.is_up(),
                in_flight: n.in_flight(),
                latency_ms: n.recent_latency().map(|d| d.as_secs_f64() * 1000.0),
                health: super::node_state::NodeState::of(n),
            })
            .collect();
        let (in_doubt, failed) = state.txns.counts();
        let mut attention = state.txns.list(Some(TxnState::InDoubt), MAX_LISTED);
        let failed_list = state.txns.list(Some(TxnState::Failed), MAX_LISTED);
        attention.extend(failed_list.into_iter().filter(|t| t.resolution.is_none()));
        attention.sort_by(|a, b| b.started_ms.cmp(&a.started_ms).then(b.txn.cmp(&a.txn)));
        attention.truncate(MAX_LISTED);
        StatusReport {
            now_ms: now_ms(),
            journal_open: state.txns.journal_open(),
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
        }
    }

    /// What needs a person, one line each; empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        match self.journal.as_ref().and_then(|j| j.problem.as_ref()) {
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
            match n.health.problem() {
                Some(p) => out.push(format!("node {} ({}) {p}", n.name, n.url)),
                None if !n.up => out.push(format!("node {} ({}) is down", n.name, n.url)),
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
        if let Some(e) = &self.reload.last_error {
            out.push(format!("the last config reload was refused: {e}"));
        }
        out
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
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
            }],
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
