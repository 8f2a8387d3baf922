//! The id map's part of a check: a key whose resource the nodes name by their own ids
//! ([`crate::config::ids`]) is read on each node under that node's id — the ids journaled with
//! the key's read-back (`VerifyPlan::node_paths`), else the id map's — and each node's copy is
//! compared with its id shown as the canonical one, so a copy differs only in what it holds.
//!
//! A repair of such a key, where nodes lost the resource, is a create on each of them
//! ([`recreation`]): the node names the copy afresh, and the saga's one write path records the
//! new id in the map (`saga::Remap`). A node holding a different copy under its own id is
//! listed for a person instead.

use super::read::{Held, ReadPlan, Target};
use crate::config::ids::IdRule;
use crate::journal::Journal;
use crate::journal::idmap::IdEntry;
use crate::runtime::Runtime;
use crate::saga::{NodeWrite, Remap};
use bytes::Bytes;
use http::Method;
use std::sync::Arc;

/// Each node's read of a key whose resource is mapped, with the map's rule; `None` when it is
/// not mapped (or the map cannot be read: the key is then read under its canonical id).
pub(super) async fn node_plans(
    rt: &Runtime,
    journal: &Journal,
    plan: &ReadPlan,
) -> Option<(Arc<IdRule>, Vec<ReadPlan>)> {
    let (rule, canonical) = rt
        .settings
        .mapped_id(&crate::wire::path::normalize(&plan.path))?;
    let nodes = rt.nodes.all();
    // The map first: a repair may have given a node a new id since the read-back was journaled.
    let entry = match journal.lookup_ids(&rule.collection, &canonical).await {
        Ok(entry) => entry,
        Err(e) => {
            tracing::warn!(key = %plan.path, error = %e, "the id map cannot be read: the ids journaled with the key's read-back are used");
            None
        }
    };
    let paths: Vec<String> = match entry {
        Some(entry) => nodes
            .iter()
            .map(|n| {
                let id = entry.node_id(n.name()).unwrap_or(canonical.as_str());
                rule.with_id(&plan.path, id)
            })
            .collect(),
        None if plan.node_paths.len() == nodes.len() => plan.node_paths.clone(),
        None => return None,
    };
    let plans = paths
        .into_iter()
        .map(|path| ReadPlan {
            path,
            node_paths: Vec::new(),
            ..plan.clone()
        })
        .collect();
    Some((rule.clone(), plans))
}

/// Whether the key's resource is mapped (so a repair is not attempted).
pub(super) fn mapped(rt: &Runtime, plan: &ReadPlan) -> Option<Arc<IdRule>> {
    let path = crate::wire::path::normalize(&plan.path);
    rt.settings.mapped_id(&path).map(|(r, _)| r.clone())
}

/// `held`, read with `node_plan`, with the node's own id in its body shown as the canonical one
/// (`plan`'s), and a JSON body's members in one order (sorted by name): a copy a repair
/// recreated has its members in the order the node's create put them, which says nothing of
/// what it holds.
pub(super) fn canonical(rule: &IdRule, plan: &ReadPlan, node_plan: &ReadPlan, held: Held) -> Held {
    let Held::Present {
        status,
        body,
        content_type,
    } = held
    else {
        return held;
    };
    let ids = (
        rule.id_in_path(&crate::wire::path::normalize(&plan.path)),
        rule.id_in_path(&crate::wire::path::normalize(&node_plan.path)),
    );
    let body = match ids {
        (Some(canonical), Some(own)) => rule
            .swap_body(&body, |id| (id == own).then(|| canonical.clone()))
            .unwrap_or(body),
        _ => body,
    };
    Held::Present {
        status,
        body: sorted(&body).unwrap_or(body),
        content_type,
    }
}

/// A JSON document with every object's members sorted by name; `None` when it is not JSON.
fn sorted(body: &[u8]) -> Option<Bytes> {
    fn sort(v: serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut members: Vec<_> = m.into_iter().collect();
                members.sort_by(|a, b| a.0.cmp(&b.0));
                serde_json::Value::Object(members.into_iter().map(|(k, v)| (k, sort(v))).collect())
            }
            serde_json::Value::Array(a) => {
                serde_json::Value::Array(a.into_iter().map(sort).collect())
            }
            other => other,
        }
    }
    let doc = serde_json::from_slice(body).ok()?;
    Some(Bytes::from(serde_json::to_vec(&sort(doc)).ok()?))
}

/// A repair that recreates a mapped resource on the nodes that lost it: the rule, the map's
/// entry, and the create each of those nodes gets.
pub(super) struct Recreation {
    pub rule: Arc<IdRule>,
    pub entry: IdEntry,
    body: Bytes,
    content_type: Option<String>,
}

impl Recreation {
    /// The saga's side of it: the map entry the new ids go into.
    pub(super) fn remap(&self) -> Remap<'_> {
        Remap {
            rule: &self.rule,
            entry: &self.entry,
        }
    }

    /// The create sent to `node`: `POST` of the collection with the representation the others
    /// hold, without its id.
    pub(super) fn write(&self, node: Arc<crate::upstream::Node>) -> NodeWrite {
        NodeWrite {
            node,
            method: Method::POST,
            path: self.rule.collection.clone(),
            content_type: self.content_type.clone(),
            body: self.body.clone(),
            already: Vec::new(),
        }
    }

    /// The read of the node's new copy, under its new id `id`.
    pub(super) fn read_plan(&self, plan: &ReadPlan, id: &str) -> ReadPlan {
        ReadPlan {
            path: self.rule.with_id(&plan.path, id),
            node_paths: Vec::new(),
            ..plan.clone()
        }
    }
}

/// Why a mapped key is not repaired by recreating it (the text goes into the report).
#[derive(Debug, thiserror::Error)]
pub(super) enum NoRecreation {
    #[error(
        "the others do not hold the resource: a mapped resource is not deleted on one node by a repair; repair it by hand, then resolve"
    )]
    NotHeld,
    #[error(
        "a node found differing holds another copy under its own id: the nodes name this resource by their own ids (the route's `id`) and only a lost copy is recreated; repair it by hand, then resolve"
    )]
    OtherCopy,
    #[error("the key's read names no id")]
    NoId,
    #[error("the id map cannot be read: {0}")]
    Map(#[from] crate::journal::JournalError),
    #[error("{collection}/{canonical} is not in the id map")]
    Unmapped {
        collection: String,
        canonical: String,
    },
    #[error("the representation is not a JSON object a create could carry")]
    NotAnObject,
}

/// Whether the mapped key `plan` reads can be repaired by recreating it: every `odd` node lost
/// the resource (`held` absent) while the others hold `target`, and the map holds it. `Err`
/// says why not.
pub(super) async fn recreation(
    journal: &Journal,
    rule: Arc<IdRule>,
    plan: &ReadPlan,
    odd: &[usize],
    held: &[Held],
    target: &Target,
) -> Result<Recreation, NoRecreation> {
    let Target::Present { body, content_type } = target else {
        return Err(NoRecreation::NotHeld);
    };
    if odd
        .iter()
        .any(|&i| !matches!(held.get(i), Some(Held::Absent { .. })))
    {
        return Err(NoRecreation::OtherCopy);
    }
    let canonical = rule
        .id_in_path(&crate::wire::path::normalize(&plan.path))
        .ok_or(NoRecreation::NoId)?;
    let entry = journal
        .lookup_ids(&rule.collection, &canonical)
        .await?
        .ok_or_else(|| NoRecreation::Unmapped {
            collection: rule.collection.clone(),
            canonical: canonical.clone(),
        })?;
    let body = rule.create_body(body).ok_or(NoRecreation::NotAnObject)?;
    Ok(Recreation {
        rule,
        entry,
        body,
        content_type: content_type.clone(),
    })
}
