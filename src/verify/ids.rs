//! The id map's part of a check: a key whose resource the nodes name by their own ids
//! ([`crate::config::ids`]) is read on each node under that node's id — the ids journaled with
//! the key's read-back (`VerifyPlan::node_paths`), else the id map's — and each node's copy is
//! compared with its id shown as the canonical one, so a copy differs only in what it holds.
//! A repair of such a key is not attempted: recreating a resource on one node gives it a new
//! node id, which the map would have to learn; the key is listed for a person instead.

use super::read::{Held, ReadPlan};
use crate::config::ids::IdRule;
use crate::journal::Journal;
use crate::runtime::Runtime;
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
    let paths: Vec<String> = if plan.node_paths.len() == nodes.len() {
        plan.node_paths.clone()
    } else {
        let entry = match journal.lookup_ids(&rule.collection, &canonical).await {
            Ok(entry) => entry?,
            Err(e) => {
                tracing::warn!(key = %plan.path, error = %e, "the id map cannot be read: the key is read under its canonical id");
                return None;
            }
        };
        nodes
            .iter()
            .map(|n| {
                let id = entry.node_id(n.name()).unwrap_or(canonical.as_str());
                rule.with_id(&plan.path, id)
            })
            .collect()
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
/// (`plan`'s).
pub(super) fn canonical(rule: &IdRule, plan: &ReadPlan, node_plan: &ReadPlan, held: Held) -> Held {
    let (Some(canonical), Some(own)) = (
        rule.id_in_path(&crate::wire::path::normalize(&plan.path)),
        rule.id_in_path(&crate::wire::path::normalize(&node_plan.path)),
    ) else {
        return held;
    };
    match held {
        Held::Present {
            status,
            body,
            content_type,
        } => {
            let body = rule
                .swap_body(&body, |id| (id == own).then(|| canonical.clone()))
                .unwrap_or(body);
            Held::Present {
                status,
                body,
                content_type,
            }
        }
        other => other,
    }
}
