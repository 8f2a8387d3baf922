//! The backfill of a key whose resource the nodes name by their own ids (a route's `id`,
//! [`crate::config::ids`]): the nodes that serve reads are read under their own ids (the id
//! map's), and a joining node the map has no id for — or that lost its copy — gets the
//! resource by a create, whose new id the saga's write path records in the map
//! ([`crate::saga::Remap`]), exactly as `dtc verify --repair` recreates a lost copy.

use super::super::ids::{self as verify_ids, Recreation};
use super::super::read::{self, Held, ReadPlan, Target};
use super::super::repair::REPAIR_ROUTE;
use super::super::{KeyHistory, Verifier};
use super::{Fill, agreed};
use crate::config::ids::IdRule;
use crate::runtime::Runtime;
use crate::saga::{Looked, Submitted, TxnState};
use crate::upstream::Node;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// What the backfill of one mapped key needs: the key's read and history, the rule, the
/// joining node and the nodes that serve reads.
pub(super) struct MappedKey<'a> {
    pub key: &'a str,
    pub plan: &'a ReadPlan,
    pub history: &'a KeyHistory,
    pub rule: Arc<IdRule>,
    pub at: usize,
    pub sources: &'a [usize],
    pub txn: &'a str,
}

impl Verifier {
    /// Brings the mapped key `k` in line on its joining node (under the key's turn and lease,
    /// taken by the caller).
    pub(super) async fn fill_mapped(&self, rt: &Runtime, k: MappedKey<'_>) -> Fill {
        let nodes = rt.nodes.all();
        let path = crate::wire::path::normalize(&k.plan.path);
        let Some(canonical) = k.rule.id_in_path(&path) else {
            return Fill::NoRead;
        };
        let entry = match self
            .journal
            .lookup_ids(&k.rule.collection, &canonical)
            .await
        {
            Ok(Some(entry)) => entry,
            // Deleted through dtc: nothing of it to copy.
            Ok(None) => return Fill::InLine,
            Err(e) => return Fill::Pending(format!("the id map cannot be read: {e}")),
        };
        let (rule, plan) = (&k.rule, k.plan);
        let under_own = |i: usize| -> Option<ReadPlan> {
            let id = entry.node_id(nodes[i].name())?;
            Some(ReadPlan {
                path: k.rule.with_id(&k.plan.path, id),
                node_paths: Vec::new(),
                ..k.plan.clone()
            })
        };
        let under_own = &under_own;
        let reads = k.sources.iter().map(|&i| async move {
            let Some(p) = under_own(i) else {
                return Held::Unknown {
                    error: format!("the id map has no id of it on {}", nodes[i].name()),
                };
            };
            let held = read::read(rt, &nodes[i], &p).await;
            verify_ids::canonical(rule, plan, &p, held)
        });
        let held = futures_util::future::join_all(reads).await;
        let target = match agreed(&held, read::journaled(k.history)) {
            Ok(t) => t,
            Err(why) => return Fill::Pending(why.to_string()),
        };
        let node = &nodes[k.at];
        let mine = match under_own(k.at) {
            Some(p) => {
                let held = read::read(rt, node, &p).await;
                verify_ids::canonical(&k.rule, k.plan, &p, held)
            }
            // No id there yet: the node does not hold it.
            None => Held::Absent { status: 404 },
        };
        if mine.matches(&target) {
            return Fill::InLine;
        }
        if let Held::Unknown { error } = &mine {
            return Fill::Pending(format!("{} could not be read: {error}", node.name()));
        }
        let mut all = vec![Held::Absent { status: 404 }; nodes.len()];
        all[k.at] = mine;
        let odd = [k.at];
        let r = verify_ids::recreation(&self.journal, k.rule.clone(), k.plan, &odd, &all, &target);
        match r.await {
            Ok(r) => self.recreate(rt, node, &k, &r, &target).await,
            Err(why) => Fill::Pending(format!("mapped resource: {why}")),
        }
    }

    /// The create that copies the resource onto `node`, sent as a repair transaction whose new
    /// id the map records.
    async fn recreate(
        &self,
        rt: &Runtime,
        node: &Arc<Node>,
        k: &MappedKey<'_>,
        r: &Recreation,
        target: &Target,
    ) -> Fill {
        let writes = [r.write(node.clone())];
        let look_again = |n: Arc<Node>, new_id: Option<String>| -> BoxFuture<'_, Looked> {
            async move {
                let held = match new_id {
                    Some(id) => {
                        let p = r.read_plan(k.plan, &id);
                        let held = read::read(rt, &n, &p).await;
                        verify_ids::canonical(&r.rule, k.plan, &p, held)
                    }
                    None => Held::Unknown {
                        error: "the create's answer names no id".into(),
                    },
                };
                Looked {
                    holds_target: held.matches(target),
                    holds: held.describe(),
                }
            }
            .boxed()
        };
        let s = Submitted {
            txn: k.txn,
            key: k.key,
            route: REPAIR_ROUTE,
            rt,
            headers: &k.plan.headers,
            target_body: match target {
                Target::Present { body, .. } => Some(body),
                Target::Absent => None,
            },
            writes: &writes,
            look: &look_again,
            remap: Some(r.remap()),
        };
        match self.coordinator.submit(s).await {
            Ok(s) => {
                self.metrics.txn_finished(s.state, s.elapsed.as_secs_f64());
                tracing::info!(txn = %s.txn, key = %k.key, node = %node.name(), state = %s.state, "backfill recreated a mapped resource");
                match s.state {
                    TxnState::Succeeded => Fill::Copied,
                    _ => Fill::Pending(
                        s.nodes
                            .iter()
                            .find_map(|n| n.error.clone())
                            .unwrap_or_else(|| format!("the copy ended {}", s.state)),
                    ),
                }
            }
            Err(e) => Fill::Pending(e.to_string()),
        }
    }
}
