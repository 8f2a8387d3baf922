//! Anti-entropy: `dtc verify` and its background task. Reads each recently written key on every
//! node and reports (and with `repair`, fixes) keys on which the nodes differ.
//!
//! - [`keys`]: [`RecentKeys`], where the recently written keys come from (the journal);
//! - `ids`: keys whose resource the nodes name by their own ids, read and compared through the
//!   id map;
//! - `read`: the route's read of a key on each node, and the judgment (the last acknowledged
//!   write, never outvoted);
//! - `repair`: the repair write, sent as a journaled transaction;
//! - [`backfill`]: a joining node brought in line with the others, key by key, with the same
//!   repair writes (`listing`: the route-declared listing of keys the journal does not know);
//! - [`report`]: findings, printed lines, exit codes;
//! - [`cli`]: the `dtc verify` command (through a running sidecar's admin API, or standalone);
//! - [`task`]: the optional background check in `dtc run` (`[verify] interval`); [`catchup`]:
//!   the background backfill of joining nodes.
//!
//! Each key is checked under its lock ([`crate::saga::locks`]), so the reads and a repair never
//! interleave with a write of the same sidecar to that key; a key fenced by a failed transaction
//! is left to the re-drive. With `[cluster]` other sidecars write too, and this sidecar's view of
//! their transactions may be a scan old: a key whose first look differs is looked at again under
//! its lease — taken *first*, then the key's whole history read from the store and every node
//! read again — and only that second look is reported and decides a repair, which runs under
//! the same lease. So a repair never acts on a read taken while another sidecar's write was half
//! done, nor against a write acknowledged meanwhile.

pub(crate) mod backfill;
pub(crate) mod catchup;
pub mod cli;
mod ids;
pub(crate) mod keys;
mod listing;
mod read;
mod repair;
pub(crate) mod report;
pub(crate) mod task;

pub use keys::{KeyHistory, RecentKeys};
pub use repair::REPAIR_ROUTE;
pub use report::{Finding, KeyReport, Report};

use crate::journal::Journal;
use crate::journal::record::now_ms;
use crate::runtime::{Current, Runtime};
use crate::saga::locks::KeyLocks;
use crate::saga::{Coordinator, Looked, NodeWrite, Submitted, TxnState, new_txn_id};
use crate::telemetry::{AlertEvent, AlertKind, Alerter, Metrics};
use crate::upstream::Node;
use crate::upstream::catchup::JoinReason;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
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
    /// Repairs are writes: they go through its saga.
    coordinator: Coordinator,
    current: Arc<Current>,
    locks: Arc<KeyLocks>,
    journal: Arc<Journal>,
    keys: Arc<dyn RecentKeys>,
    metrics: Arc<Metrics>,
    alerter: Option<Arc<Alerter>>,
    /// Keys found differing by the last run: alerted once, not at every run.
    alerted: Arc<Mutex<HashSet<String>>>,
    /// What the last run left differing, for the operator views.
    last: Arc<Mutex<Option<LastVerify>>>,
}

/// What the last verify left differing (not repaired), for `dtc status` and the page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastVerify {
    /// When it ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Keys checked.
    pub checked: usize,
    /// The keys on which the nodes differ, as the run left them.
    pub differing: Vec<KeyReport>,
}

impl Verifier {
    /// A verifier sharing `coordinator`'s key locks, journal, metrics and alerts, reading keys
    /// from its journal. `None` when the coordinator has no journal.
    pub fn new(coordinator: &Coordinator) -> Option<Verifier> {
        let journal = coordinator.journal()?.clone();
        Some(Verifier {
            coordinator: coordinator.clone(),
            current: coordinator.current().clone(),
            locks: coordinator.locks().clone(),
            keys: journal.clone(),
            journal,
            metrics: coordinator.metrics().clone(),
            alerter: coordinator.alerter().cloned(),
            alerted: Arc::default(),
            last: Arc::default(),
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
        if opts.repair {
            report.backfills = self.backfill_joining(|_| true).await;
        }
        self.metrics.set_divergent_keys(report.divergent_left());
        let differing: HashSet<String> = report
            .findings
            .iter()
            .filter(|k| k.finding.differs() && !k.repaired())
            .map(|k| k.key.clone())
            .collect();
        *self.alerted.lock().unwrap_or_else(|p| p.into_inner()) = differing;
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(LastVerify {
            at_ms: now_ms(),
            checked: report.checked,
            differing: report
                .findings
                .iter()
                .filter(|k| k.finding.differs() && !k.repaired())
                .cloned()
                .collect(),
        });
        report
    }

    /// What the last run left differing; `None` before the first run.
    pub fn last(&self) -> Option<LastVerify> {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).clone()
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
        if let Some(k) = self.blocked(&history, &plan, &rt) {
            report.findings.push(k);
            return;
        }
        let held = read_all(&rt, &self.journal, &plan).await;
        report.checked += 1;
        let judgment = read::judge(&held, read::journaled(&history));
        if judgment == Judgment::Agree {
            report.agreed += 1;
            return;
        }
        // With a local journal the key's turn, held since the re-read, keeps every writer out
        // and this look is final; with `[cluster]` it is confirmed under the key's lease.
        let look = if self.journal.shared_by_fleet() {
            match self.look_under_lease(&rt, &history.key, &plan).await {
                Ok(look) => look,
                Err(k) => {
                    report.findings.push(*k);
                    return;
                }
            }
        } else {
            Look {
                history,
                plan,
                held,
                judgment,
                txn: new_txn_id(),
            }
        };
        if look.judgment == Judgment::Agree {
            self.journal.release(&look.txn).await;
            report.agreed += 1;
            return;
        }
        let finding = self.finding(&rt, &look, repair).await;
        self.journal.release(&look.txn).await;
        if finding.finding.differs() {
            self.alert(&look.history, &finding);
        }
        report.findings.push(finding);
    }

    /// Why the key cannot be checked now (a fence, a transaction in doubt), as its report line.
    fn blocked(&self, history: &KeyHistory, plan: &ReadPlan, rt: &Runtime) -> Option<KeyReport> {
        let in_doubt = history.txns.iter().find(|e| e.state == TxnState::InDoubt);
        let note = match (self.journal.fence_of(&history.key), in_doubt) {
            (Some(txn), _) => {
                format!("failed transaction {txn} fences the key: re-drive or resolve it first")
            }
            (None, Some(e)) => format!(
                "transaction {} is in doubt: the recovery of the next dtc start undoes it",
                e.begin.txn
            ),
            (None, None) => return None,
        };
        let mut k = key_report(history, plan, Finding::Fenced, &[], rt);
        k.note = Some(note);
        Some(k)
    }

    /// The second look of cluster mode: the key's lease first (held on for a repair, as
    /// transaction `txn`), then its whole history from the store and every node read again.
    /// `Err` is the report line (after `plan`, the first look's read) when the lease or the
    /// history cannot be had.
    async fn look_under_lease(
        &self,
        rt: &Runtime,
        key: &str,
        plan: &ReadPlan,
    ) -> Result<Look, Box<KeyReport>> {
        let txn = new_txn_id();
        let unchecked = |why: String| {
            let mut k = key_report(&self.keys.history(key), plan, Finding::Fenced, &[], rt);
            k.note = Some(why);
            Box::new(k)
        };
        if let Err(e) = self.journal.take_lease(key, &txn).await {
            return Err(unchecked(format!(
                "not confirmed under the key's lease: {e}"
            )));
        }
        let txns = match self.journal.key_history(key).await {
            Ok(txns) => txns,
            Err(e) => {
                self.journal.release(&txn).await;
                return Err(unchecked(format!("the key's history cannot be read: {e}")));
            }
        };
        let history = KeyHistory {
            key: key.to_string(),
            txns,
        };
        let plan = read::plan(rt, &history).unwrap_or_else(|| plan.clone());
        if let Some(k) = self.blocked(&history, &plan, rt) {
            self.journal.release(&txn).await;
            return Err(Box::new(k));
        }
        let held = read_all(rt, &self.journal, &plan).await;
        let judgment = read::judge(&held, read::journaled(&history));
        Ok(Look {
            history,
            plan,
            held,
            judgment,
            txn,
        })
    }

    /// The report line of a look that differs, repairing first when asked and possible.
    async fn finding(&self, rt: &Runtime, look: &Look, repair: bool) -> KeyReport {
        let Look {
            history,
            plan,
            held,
            ..
        } = look;
        match &look.judgment {
            Judgment::Agree | Judgment::Unreadable => {
                key_report(history, plan, Finding::Unreadable, held, rt)
            }
            Judgment::NoMajority => {
                let mut k = key_report(history, plan, Finding::NoMajority, held, rt);
                k.note = Some(
                    "nothing tells which node holds the last acknowledged write: left as is".into(),
                );
                k
            }
            Judgment::Contradicted { majority } => {
                let mut k = key_report(history, plan, Finding::Contradicted, held, rt);
                k.target = Some(format!("{} (majority)", majority.describe()));
                k.note =
                    Some("the majority contradicts the last acknowledged write: left as is".into());
                k
            }
            Judgment::Divergent { odd, target, by } => {
                let mut k = key_report(history, plan, Finding::Divergent, held, rt);
                k.odd = odd
                    .iter()
                    .map(|&i| rt.nodes.all()[i].name().to_string())
                    .collect();
                k.target = Some(format!("{} ({by})", target.describe()));
                if repair {
                    k.repair = Some(self.repair(rt, look, odd, target).await);
                }
                if !k.repaired() {
                    behind(rt, odd, &history.key);
                }
                k
            }
        }
    }

    async fn repair(
        &self,
        rt: &Runtime,
        look: &Look,
        odd: &[usize],
        target: &read::Target,
    ) -> RepairBrief {
        let recreate = match ids::mapped(rt, &look.plan) {
            Some(rule) => {
                let r = ids::recreation(&self.journal, rule, &look.plan, odd, &look.held, target);
                match r.await {
                    Ok(r) => Some(r),
                    Err(why) => {
                        return RepairBrief {
                            txn: None,
                            state: "not_started".into(),
                            detail: Some(why.to_string()),
                        };
                    }
                }
            }
            None => None,
        };
        let writes: Result<Vec<NodeWrite>, repair::NoRepair> = odd
            .iter()
            .map(|&i| {
                let node = rt.nodes.all()[i].clone();
                if let Some(r) = &recreate {
                    return Ok(r.write(node));
                }
                let w = repair::choose(rt, &look.history, target, &look.held[i])?;
                Ok(NodeWrite {
                    node,
                    method: w.method,
                    path: w.path,
                    content_type: w.content_type,
                    body: w.body,
                    already: w.already,
                })
            })
            .collect();
        let key = &look.history.key;
        let recreated = recreate.as_ref();
        let look_again = |node: Arc<Node>, new_id: Option<String>| -> BoxFuture<'_, Looked> {
            async move {
                let held = match (recreated, new_id) {
                    (Some(r), Some(id)) => {
                        let p = r.read_plan(&look.plan, &id);
                        let held = read::read(rt, &node, &p).await;
                        ids::canonical(&r.rule, &look.plan, &p, held)
                    }
                    (Some(_), None) => Held::Unknown {
                        error: "the create's answer names no id".into(),
                    },
                    (None, _) => read::read(rt, &node, &look.plan).await,
                };
                Looked {
                    holds_target: held.matches(target),
                    holds: held.describe(),
                }
            }
            .boxed()
        };
        let result = match writes {
            Ok(w) => {
                let s = Submitted {
                    txn: &look.txn,
                    key,
                    route: REPAIR_ROUTE,
                    rt,
                    headers: &look.plan.headers,
                    target_body: match target {
                        read::Target::Present { body, .. } => Some(body),
                        read::Target::Absent => None,
                    },
                    writes: &w,
                    look: &look_again,
                    remap: recreated.map(ids::Recreation::remap),
                };
                self.coordinator.submit(s).await.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(r) => {
                tracing::info!(txn = %r.txn, key = %key, state = %r.state, "verify repair finished");
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

/// What one look at a key found: the history and the nodes' reads it was judged on, and the
/// transaction id a repair runs as (in cluster mode its lease is held until the caller
/// releases it).
struct Look {
    history: KeyHistory,
    plan: ReadPlan,
    held: Vec<Held>,
    judgment: Judgment,
    txn: String,
}

/// Reads the key on every node at once (each under its own id, when the resource's is mapped).
async fn read_all(rt: &Runtime, journal: &Journal, plan: &ReadPlan) -> Vec<Held> {
    let nodes = rt.nodes.all();
    let Some((rule, plans)) = ids::node_plans(rt, journal, plan).await else {
        return futures_util::future::join_all(nodes.iter().map(|n| read::read(rt, n, plan))).await;
    };
    let reads = nodes.iter().zip(&plans).map(|(n, p)| async {
        let held = read::read(rt, n, p).await;
        ids::canonical(&rule, plan, p, held)
    });
    futures_util::future::join_all(reads).await
}

/// Takes the `odd` nodes (found holding something other than the rest on `key`, and not
/// repaired) out of reads until a backfill brings them in line — never the last node that serves
/// reads.
fn behind(rt: &Runtime, odd: &[usize], key: &str) {
    let nodes = rt.nodes.all();
    for &i in odd {
        let readable = nodes.iter().filter(|n| n.catch_up.readable()).count();
        let n = &nodes[i];
        if n.catch_up.readable() && readable <= 1 {
            tracing::warn!(node = %n.name(), key, "verify found the last node that serves reads behind: it keeps serving them");
            continue;
        }
        if n.catch_up.readable() {
            tracing::warn!(node = %n.name(), key, "verify found a node behind: no reads from it until a backfill brings it in line (dtc verify --repair)");
        }
        n.catch_up.join(JoinReason::Behind {
            key: key.to_string(),
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
                method: e.begin.method.to_string(),
                path: e.begin.path.clone(),
            })
            .collect(),
        repair: None,
    }
}
