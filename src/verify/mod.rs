//! Anti-entropy: `dtc verify` and its background task. Reads each recently written key on every
//! node and reports (and with `repair`, fixes) keys on which the nodes differ.
//!
//! - [`keys`]: [`RecentKeys`], where the recently written keys come from (the journal);
//! - `read`: the route's read of a key on each node, and the judgment (majority, journal);
//! - `repair`: the repair write, sent as a journaled transaction;
//! - [`report`]: findings, printed lines, exit codes;
//! - [`cli`]: the `dtc verify` command (through a running sidecar's admin API, or standalone);
//! - [`task`]: the optional background check in `dtc run` (`[verify] interval`).
//!
//! Each key is checked under its lock ([`crate::saga::locks`]), so the reads and a repair never
//! interleave with a write of the same sidecar to that key; a key fenced by a failed transaction
//! is left to the re-drive.

pub mod cli;
pub mod keys;
mod read;
mod repair;
pub mod report;
pub mod task;

pub use keys::{KeyHistory, RecentKeys};
pub use repair::REPAIR_ROUTE;
pub use report::{Finding, KeyReport, Report};

use crate::journal::Journal;
use crate::journal::record::now_ms;
use crate::runtime::{Current, Runtime};
use crate::saga::locks::KeyLocks;
use crate::saga::{Coordinator, TxnState};
use crate::telemetry::{AlertEvent, AlertKind, Alerter, Metrics};
use read::{Held, Judgment, ReadPlan};
use report::{NodeHeld, RepairBrief, TxnBrief};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Keys with a transaction started within this window.
    pub since: Duration,
    /// At most this many keys, the most recently written first.
    pub limit: usize,
    /// Repair what can be repaired.
    pub repair: bool,
}

/// Checks keys on every node. Cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    current: Arc<Current>,
    locks: Arc<KeyLocks>,
    journal: Arc<Journal>,
    keys: Arc<dyn RecentKeys>,
    metrics: Arc<Metrics>,
    alerter: Option<Arc<Alerter>>,
    /// Keys found differing by the last run: alerted once, not at every run.
    alerted: Arc<Mutex<HashSet<String>>>,
}

impl Verifier {
    /// A verifier sharing `coordinator`'s key locks, journal, metrics and alerts, reading keys
    /// from its journal. `None` when the coordinator has no journal.
    pub fn new(coordinator: &Coordinator) -> Option<Verifier> {
        let journal = coordinator.journal()?.clone();
        Some(Verifier {
            current: coordinator.current().clone(),
            locks: coordinator.locks.clone(),
            keys: journal.clone(),
            journal,
            metrics: coordinator.metrics().clone(),
            alerter: coordinator.alerter.clone(),
            alerted: Arc::default(),
        })
    }

    /// Reads recent keys from `keys` instead of the journal (a shared store).
    pub fn with_keys(mut self, keys: Arc<dyn RecentKeys>) -> Verifier {
        self.keys = keys;
        self
    }

    /// Checks every recent key; `progress(done, total)` after each. Sets `dtc_divergent_keys`
    /// and sends an alert per key found differing.
    pub async fn run(&self, opts: &Options, progress: &(dyn Fn(usize, usize) + Sync)) -> Report {
        let since_ms = now_ms().saturating_sub(opts.since.as_millis() as u64);
        let keys = self.keys.recent(since_ms, opts.limit);
        let mut report = Report {
            keys: keys.len(),
            ..Report::default()
        };
        for (i, history) in keys.iter().enumerate() {
            self.check(history, opts.repair, &mut report).await;
            progress(i + 1, keys.len());
        }
        self.metrics.set_divergent_keys(report.divergent_left());
        let differing: HashSet<String> = report
            .findings
            .iter()
            .filter(|k| k.finding.differs() && !k.repaired())
            .map(|k| k.key.clone())
            .collect();
        *self.alerted.lock().unwrap_or_else(|p| p.into_inner()) = differing;
        report
    }

    async fn check(&self, history: &KeyHistory, repair: bool, report: &mut Report) {
        let rt = self.current.load();
        if read::plan(&rt, history).is_none() {
            report.skipped += 1;
            return;
        }
        let _key = self.locks.lock(&history.key).await;
        // Re-read under the lock: a write may have finished while this one waited.
        let history = self.keys.history(&history.key);
        let Some(plan) = read::plan(&rt, &history) else {
            report.skipped += 1;
            return;
        };
        let in_doubt = history.txns.iter().find(|e| e.state == TxnState::InDoubt);
        let owner = match (self.journal.fence_of(&history.key), in_doubt) {
            (Some(txn), _) => Some(format!(
                "failed transaction {txn} fences the key: re-drive or resolve it first"
            )),
            (None, Some(e)) => Some(format!(
                "transaction {} is in doubt: the recovery of the next dtc start undoes it",
                e.begin.txn
            )),
            (None, None) => None,
        };
        if let Some(note) = owner {
            let mut k = key_report(&history, &plan, Finding::Fenced, &[], &rt);
            k.note = Some(note);
            report.findings.push(k);
            return;
        }
        let held = futures_util::future::join_all(
            rt.nodes.all().iter().map(|n| read::read(&rt, n, &plan)),
        )
        .await;
        report.checked += 1;
        let finding = match read::judge(&held, read::journaled(&history)) {
            Judgment::Agree => {
                report.agreed += 1;
                return;
            }
            Judgment::Unreadable => key_report(&history, &plan, Finding::Unreadable, &held, &rt),
            Judgment::NoMajority => {
                let mut k = key_report(&history, &plan, Finding::NoMajority, &held, &rt);
                k.note =
                    Some("no majority and no journaled outcome names one state: left as is".into());
                k
            }
            Judgment::Contradicted { majority } => {
                let mut k = key_report(&history, &plan, Finding::Contradicted, &held, &rt);
                k.target = Some(format!("{} (majority)", majority.describe()));
                k.note =
                    Some("the majority contradicts the last journaled outcome: left as is".into());
                k
            }
            Judgment::Divergent { odd, target, by } => {
                let mut k = key_report(&history, &plan, Finding::Divergent, &held, &rt);
                k.odd = odd
                    .iter()
                    .map(|&i| rt.nodes.all()[i].name().to_string())
                    .collect();
                k.target = Some(format!("{} ({by})", target.describe()));
                if repair {
                    k.repair = Some(
                        self.repair(&rt, &history, &plan, &odd, &held, &target)
                            .await,
                    );
                }
                k
            }
        };
        if finding.finding.differs() {
            self.alert(&history, &finding);
        }
        report.findings.push(finding);
    }

    async fn repair(
        &self,
        rt: &Runtime,
        history: &KeyHistory,
        plan: &ReadPlan,
        odd: &[usize],
        held: &[Held],
        target: &read::Target,
    ) -> RepairBrief {
        let writes: Result<Vec<_>, String> = odd
            .iter()
            .map(|&i| {
                let w = repair::choose(rt, history, target, &held[i])?;
                Ok((rt.nodes.all()[i].clone(), w))
            })
            .collect();
        let result = match writes {
            Ok(w) => repair::run(&self.journal, rt, &history.key, &w, plan, target).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(r) => {
                tracing::info!(txn = %r.txn, key = %history.key, state = %r.state, "verify repair finished");
                self.metrics.txn_finished(r.state, r.elapsed.as_secs_f64());
                RepairBrief {
                    txn: Some(r.txn),
                    state: r.state.to_string(),
                    detail: r.nodes.iter().find_map(|n| n.error.clone()),
                }
            }
            Err(e) => RepairBrief {
                txn: None,
                state: "not_started".into(),
                detail: Some(e),
            },
        }
    }

    /// Alerts about a key found differing, unless the previous run already did.
    fn alert(&self, history: &KeyHistory, k: &KeyReport) {
        let Some(alerter) = &self.alerter else { return };
        let known = self.alerted.lock().unwrap_or_else(|p| p.into_inner());
        if known.contains(&history.key) {
            return;
        }
        drop(known);
        let last = history.txns.first();
        alerter.send(AlertEvent {
            kind: AlertKind::DivergenceFound,
            txn: last.map(|e| e.begin.txn.clone()).unwrap_or_default(),
            state: last.map_or(TxnState::Succeeded, |e| e.state),
            key: history.key.clone(),
            route: last.and_then(|e| e.begin.route.clone()),
            reason: Some(k.line()),
            nodes: Vec::new(),
            at_ms: now_ms(),
        });
    }
}

fn key_report(
    history: &KeyHistory,
    plan: &ReadPlan,
    finding: Finding,
    held: &[Held],
    rt: &Runtime,
) -> KeyReport {
    KeyReport {
        key: history.key.clone(),
        finding,
        read: format!("{} {}", plan.method, plan.path),
        nodes: rt
            .nodes
            .all()
            .iter()
            .zip(held)
            .map(|(n, h)| NodeHeld {
                node: n.name().to_string(),
                holds: h.describe(),
            })
            .collect(),
        odd: Vec::new(),
        target: None,
        note: None,
        txns: history
            .txns
            .iter()
            .map(|e| TxnBrief {
                txn: e.begin.txn.clone(),
                state: e.state.to_string(),
                method: e.begin.method.clone(),
                path: e.begin.path.clone(),
            })
            .collect(),
        repair: None,
    }
}
