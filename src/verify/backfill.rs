//! Backfill: bring a joining node ([`crate::upstream::catchup`]) in line with the nodes that
//! serve reads, so it can serve them too.
//!
//! What it copies: every key the journal (or, with `[cluster]`, the shared store) knows, and
//! every key a route's listing hook (`list`, `listing`) finds on the nodes. For each key,
//! under the key's turn ([`crate::saga::locks`]), so no write of this sidecar interleaves:
//! 1. read the key on every node that serves reads (the route's `verify` or `snapshot` read);
//! 2. when they all hold the same, read it on the joining node; in line → done;
//! 3. otherwise bring it in line with the route's own write, chosen and sent exactly as
//!    `dtc verify --repair` does (`repair`: a journaled transaction, route
//!    `dtc verify repair`), and read it again.
//!
//! A key whose resource the nodes name by their own ids (a route's `id`) is read and copied
//! through the id map ([`ids`]): the joining node gets it by a create, its new id mapped.
//!
//! A key the others do not agree on, one fenced by a failed transaction, a node that cannot be
//! read or a repair that does not converge leaves the key *pending*: the node stays out of reads
//! and the next pass tries again. Keys written before the journal's oldest record (or before
//! dtc) are not known to it: the report says so, and a route's `list` makes them known.

mod ids;

use super::listing::{self, Listed};
use super::read::{self, Held, Journaled, Target};
use super::repair::{self, REPAIR_ROUTE};
use super::{KeyHistory, Verifier};
use crate::runtime::Runtime;
use crate::saga::{Looked, NodeWrite, Submitted, TxnState, new_txn_id};
use crate::upstream::Node;
use crate::upstream::catchup::{JoinReason, Progress};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// A key the backfill could not bring in line, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingKey {
    pub key: String,
    pub why: String,
}

/// What one pass of a node's backfill came to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    pub node: String,
    /// Keys gone through: known to the journal, plus those only a listing found.
    pub keys: usize,
    /// Keys only a route's listing found.
    pub listed: usize,
    /// Keys the node already held as the others do.
    pub in_line: usize,
    /// Keys copied onto the node.
    pub copied: usize,
    /// Keys whose routes define no `verify` or `snapshot` read: they cannot be compared.
    pub no_read: usize,
    pub pending: Vec<PendingKey>,
    /// What this pass could not see.
    pub note: Option<String>,
}

impl Backfill {
    /// Whether every key is in line: the node may serve reads.
    pub fn complete(&self) -> bool {
        self.pending.is_empty()
    }

    /// One line for the command and the log.
    pub fn line(&self) -> String {
        let mut s = format!(
            "backfill node={} keys={} in_line={} copied={} pending={} no_read={} listed={}",
            self.node,
            self.keys,
            self.in_line,
            self.copied,
            self.pending.len(),
            self.no_read,
            self.listed
        );
        if let Some(p) = self.pending.first() {
            s.push_str(&format!(" first_pending=\"{}: {}\"", p.key, p.why));
        }
        if let Some(n) = &self.note {
            s.push_str(&format!(" note=\"{n}\""));
        }
        s
    }
}

/// What became of one key.
enum Fill {
    InLine,
    Copied,
    NoRead,
    Pending(String),
}

/// What the reads of one key found: how it is read, what the others hold, what the node holds.
struct Found {
    plan: read::ReadPlan,
    target: Target,
    mine: Held,
}

/// One key to bring in line: what the journal knows of it, and what a listing said.
struct Item {
    key: String,
    listed: Option<Listed>,
}

impl Verifier {
    /// One pass of the backfill of `node` (by name) on the current config; `progress` after
    /// each key. Does not change whether the node serves reads: the caller decides from
    /// [`Backfill::complete`].
    pub async fn backfill(&self, node: &str, progress: &(dyn Fn(Progress) + Sync)) -> Backfill {
        let rt = self.current.load();
        let mut out = Backfill {
            node: node.to_string(),
            ..Backfill::default()
        };
        let nodes = rt.nodes.all();
        let Some(at) = nodes.iter().position(|n| n.name() == node) else {
            out.pending.push(PendingKey {
                key: "-".into(),
                why: format!("no node named {node} in the config in effect"),
            });
            return out;
        };
        let sources: Vec<usize> = (0..nodes.len())
            .filter(|&i| i != at && nodes[i].catch_up.readable())
            .collect();
        if sources.is_empty() {
            out.note = Some("no other node serves reads: there is nothing to copy from".into());
            return out;
        }
        let (items, listing_note) = match self.items(&rt, &sources).await {
            Ok(found) => found,
            Err(why) => {
                out.pending.push(PendingKey {
                    key: "-".into(),
                    why,
                });
                return out;
            }
        };
        out.keys = items.len();
        out.listed = items.iter().filter(|i| i.listed.is_some()).count();
        out.note = Some(listing_note);
        let mut p = Progress {
            total: items.len(),
            ..Progress::default()
        };
        progress(p.clone());
        for item in &items {
            let (result, fill) = match self.fill(&rt, at, &sources, item).await {
                Fill::InLine => ("in_line", &mut out.in_line),
                Fill::Copied => ("copied", &mut out.copied),
                Fill::NoRead => ("no_read", &mut out.no_read),
                Fill::Pending(why) => {
                    out.pending.push(PendingKey {
                        key: item.key.clone(),
                        why,
                    });
                    p.pending += 1;
                    p.done += 1;
                    self.metrics.backfill_key(node, "pending");
                    progress(p.clone());
                    continue;
                }
            };
            *fill += 1;
            p.done += 1;
            p.copied = out.copied;
            self.metrics.backfill_key(node, result);
            progress(p.clone());
        }
        out
    }

    /// The keys to go through: the journal's (with `[cluster]`, every key of the store: the
    /// view in memory holds only the fleet's latest transactions), then those only a listing
    /// found. `Err` when the store cannot say which keys it holds.
    async fn items(&self, rt: &Runtime, sources: &[usize]) -> Result<(Vec<Item>, String), String> {
        let mut known: Vec<String> = self
            .keys
            .recent(0, usize::MAX)
            .into_iter()
            .map(|h| h.key)
            .collect();
        if let Some(store) = self.journal.store_keys().await {
            let store = store.map_err(|e| format!("cannot list the store's keys: {e}"))?;
            known.extend(store);
        }
        let mut seen: HashSet<String> = HashSet::new();
        let mut items: Vec<Item> = known
            .into_iter()
            .filter(|k| seen.insert(k.clone()))
            .map(|key| Item { key, listed: None })
            .collect();
        let source = &rt.nodes.all()[sources[0]];
        let (listed, note) = listing::list(rt, source).await;
        for l in listed {
            if seen.insert(l.key.clone()) {
                items.push(Item {
                    key: l.key.clone(),
                    listed: Some(l),
                });
            }
        }
        Ok((items, note))
    }

    /// Brings one key in line on node `at`, under the key's turn and, with `[cluster]`, its
    /// lease (taken first, as the copy's transaction, and released after), so no write of this
    /// or another sidecar interleaves with the reads and the copy.
    async fn fill(&self, rt: &Runtime, at: usize, sources: &[usize], item: &Item) -> Fill {
        let _turn = self.locks.lock(&item.key).await;
        let txn = new_txn_id();
        if let Err(e) = self.journal.take_lease(&item.key, &txn).await {
            return Fill::Pending(format!("the key's lease cannot be had: {e}"));
        }
        let fill = self.fill_held(rt, at, sources, item, &txn).await;
        self.journal.release(&txn).await;
        fill
    }

    /// [`Verifier::fill`] once the key's turn (and lease) is held.
    async fn fill_held(
        &self,
        rt: &Runtime,
        at: usize,
        sources: &[usize],
        item: &Item,
        txn: &str,
    ) -> Fill {
        // Read under the turn: a write may have finished while this one waited. With
        // `[cluster]` the store's history, complete under the lease.
        let history = match self.journal.key_history(&item.key).await {
            Ok(txns) => KeyHistory {
                key: item.key.clone(),
                txns,
            },
            Err(e) => return Fill::Pending(format!("the key's history cannot be read: {e}")),
        };
        let plan =
            read::plan(rt, &history).or_else(|| item.listed.as_ref().map(|l| l.read.clone()));
        let Some(plan) = plan else {
            return Fill::NoRead;
        };
        if let Some(txn) = self.journal.fence_of(&item.key) {
            return Fill::Pending(format!("failed transaction {txn} fences the key"));
        }
        if let Some(e) = history.txns.iter().find(|e| e.state == TxnState::InDoubt) {
            return Fill::Pending(format!("transaction {} is in doubt", e.begin.txn));
        }
        if let Some(rule) = super::ids::mapped(rt, &plan) {
            let k = ids::MappedKey {
                key: &item.key,
                plan: &plan,
                history: &history,
                rule,
                at,
                sources,
                txn,
            };
            return self.fill_mapped(rt, k).await;
        }
        let nodes = rt.nodes.all();
        let held = futures_util::future::join_all(
            sources.iter().map(|&i| read::read(rt, &nodes[i], &plan)),
        )
        .await;
        let target = match agreed(&held, read::journaled(&history)) {
            Ok(t) => t,
            Err(why) => return Fill::Pending(why.to_string()),
        };
        let node = &nodes[at];
        let mine = read::read(rt, node, &plan).await;
        if mine.matches(&target) {
            return Fill::InLine;
        }
        if let Held::Unknown { error } = &mine {
            return Fill::Pending(format!("{} could not be read: {error}", node.name()));
        }
        let found = Found { plan, target, mine };
        self.copy(rt, node, item, &history, &found, txn).await
    }

    /// The write that brings `node` to the target, sent as a repair transaction.
    async fn copy(
        &self,
        rt: &Runtime,
        node: &Arc<Node>,
        item: &Item,
        history: &KeyHistory,
        found: &Found,
        txn: &str,
    ) -> Fill {
        let Found { plan, target, mine } = found;
        let write = match (&item.listed, history.txns.is_empty()) {
            (Some(l), true) => l.write(target),
            _ => repair::choose(rt, history, target, mine),
        };
        let write = match write {
            Ok(w) => w,
            Err(e) => return Fill::Pending(e.to_string()),
        };
        let writes = [NodeWrite {
            node: node.clone(),
            method: write.method,
            path: write.path,
            content_type: write.content_type,
            body: write.body,
            already: write.already,
        }];
        let look_again = |n: Arc<Node>, _: Option<String>| -> BoxFuture<'_, Looked> {
            async move {
                let held = read::read(rt, &n, plan).await;
                Looked {
                    holds_target: held.matches(target),
                    holds: held.describe(),
                }
            }
            .boxed()
        };
        let s = Submitted {
            txn,
            key: &item.key,
            route: REPAIR_ROUTE,
            rt,
            headers: &plan.headers,
            target_body: match target {
                Target::Present { body, .. } => Some(body),
                Target::Absent => None,
            },
            writes: &writes,
            look: &look_again,
            remap: None,
        };
        match self.coordinator.submit(s).await.map_err(|e| e.to_string()) {
            Ok(r) => {
                self.metrics.txn_finished(r.state, r.elapsed.as_secs_f64());
                tracing::info!(txn = %r.txn, key = %item.key, node = %node.name(), state = %r.state, "backfill copied a key");
                match r.state {
                    TxnState::Succeeded => Fill::Copied,
                    _ => Fill::Pending(
                        r.nodes
                            .iter()
                            .find_map(|n| n.error.clone())
                            .unwrap_or_else(|| format!("the copy ended {}", r.state)),
                    ),
                }
            }
            Err(e) => Fill::Pending(e),
        }
    }
}

/// Why a backfill has nothing to copy to a joining node now (the key stays pending).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NoCopy {
    #[error("a node could not be read: {0}")]
    Unreadable(String),
    #[error("the nodes that serve reads differ ({0}): dtc verify owns it")]
    Differ(String),
    #[error("no node to copy from")]
    NoSource,
    #[error(
        "the nodes that serve reads hold {0}, which the key's last acknowledged write contradicts: dtc verify owns it"
    )]
    Contradicted(String),
}

/// What the nodes that serve reads agree the key holds, or why there is nothing to copy: they
/// differ, one cannot be read, or what they agree on contradicts the key's last acknowledged
/// write (`journaled`), which a majority never outvotes (that is `dtc verify`'s to list).
fn agreed(held: &[Held], journaled: Option<Journaled>) -> Result<Target, NoCopy> {
    if let Some(Held::Unknown { error }) = held.iter().find(|h| matches!(h, Held::Unknown { .. })) {
        return Err(NoCopy::Unreadable(error.clone()));
    }
    if !held.windows(2).all(|w| w[0].same_state(&w[1])) {
        let seen: Vec<String> = held.iter().map(Held::describe).collect();
        return Err(NoCopy::Differ(seen.join(", ")));
    }
    let target = held.first().and_then(Target::of).ok_or(NoCopy::NoSource)?;
    if read::contradicts(&target, journaled) {
        return Err(NoCopy::Contradicted(target.describe()));
    }
    Ok(target)
}

impl Verifier {
    /// One backfill pass of every joining node `which` selects, each brought back into reads
    /// when the pass left nothing pending.
    pub async fn backfill_joining(&self, which: impl Fn(&JoinReason) -> bool) -> Vec<Backfill> {
        let rt = self.current.load();
        let mut out = Vec::new();
        for node in rt.nodes.all() {
            let Some(joining) = node.catch_up.view() else {
                continue;
            };
            if !which(&joining.reason) {
                continue;
            }
            out.push(self.backfill_node(node, joining.progress.passes).await);
        }
        out
    }

    /// One pass on `node`, its progress shown on the node; it serves reads again when the pass
    /// brought every key in line.
    async fn backfill_node(&self, node: &Arc<Node>, passes: u32) -> Backfill {
        let report = self
            .backfill(node.name(), &|p| {
                node.catch_up.progress(Progress { passes, ..p })
            })
            .await;
        let note = match report.pending.first() {
            Some(p) => Some(format!(
                "{} keys pending, e.g. {}: {}",
                report.pending.len(),
                p.key,
                p.why
            )),
            None => report.note.clone(),
        };
        node.catch_up.progress(Progress {
            total: report.keys,
            done: report.keys,
            copied: report.copied,
            pending: report.pending.len(),
            passes: passes + 1,
            note,
        });
        if report.complete() {
            node.catch_up.caught_up();
            tracing::info!(summary = %report.line(), "backfill finished: the node serves reads");
        } else {
            tracing::warn!(summary = %report.line(), "backfill left keys pending: the node serves no reads yet; the next pass tries again");
        }
        report
    }
}
