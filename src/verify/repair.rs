//! Repair: the write that brings an odd node to the target, chosen from what dtc itself knows
//! how to send for the key (the journaled writes and undo plans), and sent as a journaled
//! transaction of its own (route `dtc verify repair`, listed in `/transactions`).
//!
//! The write, in order of preference:
//! - to make a node **absent**: a journaled undo plan that deletes (the undo of a create), else
//!   a journaled `DELETE` write with the odd node's own representation as its body;
//! - to make a node **present** with the target's representation: the undo plan of a route that
//!   restores snapshots (`body = "snapshot"`) with the target as its body, else a journaled
//!   create/replace write with the target as its body, else an undo plan that re-creates.
//!
//! This module only chooses. The write goes through the saga like any other
//! ([`crate::saga::Coordinator::submit`]): journaled, sent with retries, and each node read again
//! afterwards — the repair converged only when the node now holds the target. With `[cluster]`
//! the caller took the key's lease before it read the nodes it decided from
//! (`super::Verifier`), and the repair's intent is recorded under that same lease.

use super::keys::KeyHistory;
use super::read::{Held, Target};
use crate::config::validate::CompBody;
use crate::runtime::Runtime;
use bytes::Bytes;
use http::Method;

/// The route name repair transactions carry.
pub const REPAIR_ROUTE: &str = "dtc verify repair";

/// One repair request.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RepairWrite {
    pub method: Method,
    pub path: String,
    pub content_type: Option<String>,
    pub body: Bytes,
    /// Statuses meaning "already so".
    pub already: Vec<u16>,
}

/// Why no repair write can be chosen for a key: the journal holds nothing to build it from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum NoRepair {
    #[error("no journaled delete or undo of a create for this key")]
    NoDelete,
    #[error("no journaled create or undo of a delete for this key")]
    NoCreate,
    #[error("listed, yet absent on the nodes that serve reads now: read again in the next pass")]
    ListedAbsent,
}

/// The write that brings a node holding `held` to `target`, or why there is none.
pub(super) fn choose(
    rt: &Runtime,
    history: &KeyHistory,
    target: &Target,
    held: &Held,
) -> Result<RepairWrite, NoRepair> {
    let plans = || {
        history.txns.iter().flat_map(|e| {
            e.nodes
                .iter()
                .filter_map(|n| n.undo.as_ref())
                .map(move |p| (e, p))
        })
    };
    let json = Some("application/json".to_string());
    match target {
        Target::Absent => {
            if let Some((_, p)) = plans().find(|(_, p)| p.method == Method::DELETE) {
                return Ok(RepairWrite {
                    method: Method::DELETE,
                    path: p.path.clone(),
                    content_type: p.content_type.clone(),
                    body: p.body.clone(),
                    already: p.already.clone(),
                });
            }
            let (
                Some(e),
                Held::Present {
                    body, content_type, ..
                },
            ) = (
                history
                    .txns
                    .iter()
                    .find(|e| e.begin.method == Method::DELETE),
                held,
            )
            else {
                return Err(NoRepair::NoDelete);
            };
            Ok(RepairWrite {
                method: Method::DELETE,
                path: e.begin.path.clone(),
                content_type: content_type.clone().or(json),
                body: body.clone(),
                already: already_of(rt, e.begin.route.as_deref()),
            })
        }
        Target::Present { body, content_type } => {
            let restore = plans().find(|(e, p)| {
                p.method != Method::DELETE
                    && route_of(rt, e.begin.route.as_deref()).is_some_and(|r| {
                        r.compensation
                            .as_ref()
                            .is_some_and(|c| matches!(c.body, CompBody::Snapshot))
                    })
            });
            if let Some((_, p)) = restore {
                return Ok(RepairWrite {
                    method: p.method.clone(),
                    path: p.path.clone(),
                    content_type: content_type.clone().or(json),
                    body: body.clone(),
                    already: p.already.clone(),
                });
            }
            if let Some(e) = history.txns.iter().find(|e| {
                e.begin.method != Method::DELETE && e.begin.route.as_deref() != Some(REPAIR_ROUTE)
            }) {
                return Ok(RepairWrite {
                    method: e.begin.method.clone(),
                    path: e.begin.path.clone(),
                    content_type: content_type.clone().or(json),
                    body: body.clone(),
                    already: already_of(rt, e.begin.route.as_deref()),
                });
            }
            let Some((_, p)) = plans().find(|(_, p)| p.method != Method::DELETE) else {
                return Err(NoRepair::NoCreate);
            };
            Ok(RepairWrite {
                method: p.method.clone(),
                path: p.path.clone(),
                content_type: p.content_type.clone(),
                body: p.body.clone(),
                already: p.already.clone(),
            })
        }
    }
}

fn route_of<'a>(rt: &'a Runtime, name: Option<&str>) -> Option<&'a crate::config::Route> {
    let name = name?;
    rt.settings
        .routes
        .iter()
        .find(|r| r.name == name)
        .map(|r| &**r)
}

fn already_of(rt: &Runtime, name: Option<&str>) -> Vec<u16> {
    route_of(rt, name)
        .map(|r| r.already.clone())
        .unwrap_or_default()
}
