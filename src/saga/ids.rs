//! The id map's steps of a write (routes with `id`, [`crate::config::ids`]; the map is the
//! journal's, [`crate::journal::idmap`]). The driver calls two:
//!
//! - after the key's turn is taken, [`map_request`]: a write naming a resource by a mapped id
//!   learns each node's own id ([`super::mapped`]; a resource the map holds without an id on
//!   some node is answered 409 without touching a node; an id the map does not hold is sent as
//!   it is — a client-chosen id — unless it is some node's own id of a mapped resource: 404),
//!   and from then on everything sent to node `i` — the write, its snapshot, read-back and undo
//!   — speaks node `i`'s ids;
//! - after the decision, [`settle`]: a create that succeeded has each node's id read from its
//!   answer and journaled with the canonical id, durably, before the client hears of it; a
//!   delete that left the resource absent everywhere takes it out of the map; the client's
//!   answer shows the canonical id only.
//!
//! **The canonical id** is the id the first node in config order assigned, unless the map
//! already gives that id to another resource of the collection (nodes reordered, or one
//! replaced): then the next node's, and if every node's is taken, the transaction id.

use super::attempt::CallResult;
use super::deps::Deps;
use super::end::{not_sent, refused, untouched};
use super::mapped::Mapped;
use super::write::Txn;
use crate::config::ids::IdRule;
use crate::journal::idmap::IdEntry;
use crate::journal::record::now_ms;
use crate::journal::{Journal, JournalError};
use crate::txn::outcome::{NodeResponse, Outcome, Reason, TxnState};
use http::HeaderValue;
use std::sync::Arc;

/// A write's end as the steps hand it on: state, reason, the client's answer.
type Ended = (TxnState, Option<Reason>, Option<NodeResponse>);

/// Learns the node ids of the resource the write names, if its id is mapped. `Some` is the
/// answer of a write refused, no node touched. Runs under the key's turn — with `[cluster]`,
/// under the key's lease, taken here — so a delete of the resource cannot take it out of the
/// map between this and the write.
pub(super) async fn map_request(d: &Deps, t: &Txn<'_>) -> Option<Outcome> {
    let path = crate::wire::path::normalize(t.req.path());
    let (rule, canonical) = t.rt.settings.mapped_id(&path)?;
    let j = d.journal.as_ref()?;
    if let Err(e) = j.take_lease(&t.key, &t.id).await {
        return Some(refused(d, t, e));
    }
    let learned = learn(d, t, j, rule, canonical).await;
    if learned.is_some() {
        // Refused: nothing will be written under the lease.
        j.release(&t.id).await;
    }
    learned
}

/// [`map_request`]'s look at the map.
async fn learn(
    d: &Deps,
    t: &Txn<'_>,
    j: &Journal,
    rule: &Arc<IdRule>,
    canonical: String,
) -> Option<Outcome> {
    let nodes = t.rt.nodes.all();
    let what = format!("{}/{canonical}", rule.collection);
    let entry = match j.lookup_ids(&rule.collection, &canonical).await {
        Ok(entry) => entry,
        Err(e) => return Some(refused(d, t, e)),
    };
    let Some(entry) = entry else {
        // Not in the map: a client-chosen id (a PUT that creates), sent as it is — unless
        // it is a node's own id of a mapped resource, which it would reach on that node.
        let names: Vec<&str> = nodes.iter().map(|n| n.name()).collect();
        let shadowed = match j.shadowing(&rule.collection, &canonical, &names).await {
            Ok(shadowed) => shadowed,
            Err(e) => return Some(refused(d, t, e)),
        };
        let reason = Reason::UnknownId(what);
        return shadowed.map(|_| untouched(d, t, TxnState::Rejected, reason, not_sent(nodes)));
    };
    let ids: Vec<Option<&str>> = nodes.iter().map(|n| entry.node_id(n.name())).collect();
    if ids.contains(&None) {
        let missing: Vec<&str> = nodes
            .iter()
            .zip(&ids)
            .filter(|(_, id)| id.is_none())
            .map(|(n, _)| n.name())
            .collect();
        let reason = Reason::NodeIdUnknown(format!("{what} on {}", missing.join(", ")));
        return Some(untouched(d, t, TxnState::Rejected, reason, not_sent(nodes)));
    }
    let _ = t.mapped.set(Mapped {
        rule: rule.clone(),
        canonical,
        node_ids: ids.into_iter().flatten().map(String::from).collect(),
    });
    None
}

/// The id map's part of the end: a create's ids journaled (or the create `failed` when a
/// node's id cannot be read from its answer: the write is on every node, but nothing could
/// address it there), a deleted resource unmapped, the answer in canonical ids.
pub(super) async fn settle(d: &Deps, t: &Txn<'_>, results: &[CallResult], ended: Ended) -> Ended {
    let (state, reason, resp) = ended;
    if let Some(rule) = t.route.and_then(|r| r.id.as_ref()) {
        if state != TxnState::Succeeded {
            return (state, reason, resp);
        }
        return match map_create(d, t, rule, results).await {
            Ok(entry) => (
                state,
                reason,
                resp.map(|r| canonical_answer(rule, &entry, r)),
            ),
            Err(why) => (TxnState::Failed, Some(why), None),
        };
    }
    let Some(m) = t.mapped.get() else {
        return (state, reason, resp);
    };
    let gone = t.req.method == http::Method::DELETE
        && (state == TxnState::Succeeded || reason == Some(Reason::TargetStateHolds));
    if let (true, Some(j)) = (gone, &d.journal)
        && let Err(e) = j.unmap_ids(&t.id, &m.rule.collection, &m.canonical).await
    {
        // The resource stays mapped to ids no node holds: reads answer the nodes' 404.
        tracing::error!(txn = %t.id, error = %e, "cannot journal that a mapped resource is gone");
    }
    let nodes = t.rt.nodes.all();
    let entry = IdEntry {
        collection: m.rule.collection.clone(),
        canonical: m.canonical.clone(),
        nodes: nodes
            .iter()
            .zip(&m.node_ids)
            .map(|(n, id)| (n.name().to_string(), id.clone()))
            .collect(),
        txn: t.id.clone(),
        at_ms: 0,
    };
    (
        state,
        reason,
        resp.map(|r| canonical_answer(&m.rule, &entry, r)),
    )
}

/// Reads each node's id from its answer, chooses the canonical one, journals the entry.
async fn map_create(
    d: &Deps,
    t: &Txn<'_>,
    rule: &IdRule,
    results: &[CallResult],
) -> Result<IdEntry, Reason> {
    let nodes = t.rt.nodes.all();
    let mut ids = Vec::with_capacity(nodes.len());
    let mut unread = Vec::new();
    for (n, r) in nodes.iter().zip(results) {
        let id = r.answer.as_ref().ok().and_then(|a| {
            let loc = a.headers.get(http::header::LOCATION);
            rule.assigned(&a.body, loc.and_then(|v| v.to_str().ok()))
        });
        match id {
            Some(id) => ids.push((n.name().to_string(), id)),
            None => unread.push(n.name().to_string()),
        }
    }
    if !unread.is_empty() {
        tracing::error!(txn = %t.id, nodes = ?unread, "a create applied on every node, but these nodes' answers carry no id: listed, not guessed");
        return Err(Reason::IdsUnknown(unread.join(", ")));
    }
    let Some(j) = &d.journal else {
        return Err(Reason::IdsUnknown("no journal keeps the id map".into()));
    };
    // The first node's id unless the map gives it to another resource, then the next's; the
    // store refuses a canonical id taken meanwhile (by another sidecar's create), so the next
    // is tried.
    let mut candidates: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    candidates.push(t.id.clone());
    let mut entry = IdEntry {
        collection: rule.collection.clone(),
        canonical: String::new(),
        nodes: ids,
        txn: t.id.clone(),
        at_ms: now_ms(),
    };
    let unavailable = |e: JournalError| {
        tracing::error!(txn = %t.id, error = %e, "cannot journal a create's ids");
        Reason::JournalUnavailable(e.to_string())
    };
    let mut mapped = false;
    for candidate in candidates {
        let taken = j.lookup_ids(&rule.collection, &candidate).await;
        if taken.map_err(unavailable)?.is_some() {
            continue;
        }
        entry.canonical = candidate;
        if j.map_ids(entry.clone()).await.map_err(unavailable)? {
            mapped = true;
            break;
        }
    }
    if !mapped {
        return Err(Reason::IdsUnknown(format!(
            "every candidate canonical id of {} is taken",
            rule.collection
        )));
    }
    tracing::debug!(txn = %t.id, canonical = %entry.canonical, nodes = ?entry.nodes, "create mapped");
    Ok(entry)
}

/// A node's answer with the node ids of `entry` shown as its canonical id (body and
/// `Location`).
fn canonical_answer(rule: &IdRule, entry: &IdEntry, mut r: NodeResponse) -> NodeResponse {
    let to_canonical = |id: &str| {
        entry
            .nodes
            .iter()
            .any(|(_, n)| n == id)
            .then(|| entry.canonical.clone())
    };
    if let Some(body) = rule.swap_body(&r.body, to_canonical) {
        r.headers.remove(http::header::CONTENT_LENGTH);
        r.body = body;
    }
    let loc = r
        .headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| rule.swap_location(l, to_canonical))
        .and_then(|l| HeaderValue::from_str(&l).ok());
    if let Some(loc) = loc {
        r.headers.insert(http::header::LOCATION, loc);
    }
    r
}
