//! The read path's side of the id map ([`crate::journal::idmap`]): a read of one resource by
//! its canonical id goes to a node under that node's own id, and a read of a collection whose
//! route declares `list`, with every resource's id shown as its canonical one. The answer is
//! buffered (bounded by `limits.max_body`) to be rewritten; every other read still streams.

use crate::config::ids::IdRule;
use crate::journal::Journal;
use crate::journal::idmap::IdEntry;
use crate::runtime::Runtime;
use crate::wire::{ProxyBody, problem};
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use std::sync::Arc;

/// What the id map makes of one read.
pub(super) enum ReadIds {
    /// Not a mapped path: passed through as it is.
    Pass,
    /// One resource: sent to each node under its own id.
    Item(Arc<IdRule>, IdEntry),
    /// The collection: each resource's id shown as its canonical one.
    List(Arc<IdRule>, Arc<Journal>),
    /// An id the map does not hold that is a node's own id of a mapped resource: answered 404
    /// by dtc.
    Unknown(String),
    /// The map could not be read (the shared store is unreachable): answered 503 by dtc.
    Unreadable(String),
}

impl ReadIds {
    /// The map's view of a read of `path_and_query`.
    pub(super) async fn of(
        rt: &Runtime,
        journal: Option<&Arc<Journal>>,
        method: &Method,
        path_and_query: &str,
    ) -> ReadIds {
        let path = crate::wire::path::normalize(path_and_query);
        let Some(journal) = journal else {
            return ReadIds::Pass;
        };
        if let Some((rule, id)) = rt.settings.mapped_id(&path) {
            match journal.lookup_ids(&rule.collection, &id).await {
                Ok(Some(entry)) => return ReadIds::Item(rule.clone(), entry),
                Ok(None) => {}
                Err(e) => return ReadIds::Unreadable(e.to_string()),
            }
            // Not in the map: a client-chosen id, read as it is — unless it is a node's own id
            // of a mapped resource, which that node would answer with another resource.
            let nodes = rt.nodes.all();
            let names: Vec<&str> = nodes.iter().map(|n| n.name()).collect();
            return match journal.shadowing(&rule.collection, &id, &names).await {
                Ok(Some(_)) => ReadIds::Unknown(format!("{}/{id}", rule.collection)),
                Ok(None) => ReadIds::Pass,
                Err(e) => ReadIds::Unreadable(e.to_string()),
            };
        }
        let list = rt
            .settings
            .id_rules()
            .find(|r| r.list.is_some() && r.collection == path && *method == Method::GET);
        match list {
            Some(rule) => ReadIds::List(rule.clone(), journal.clone()),
            None => ReadIds::Pass,
        }
    }

    /// dtc's own answer, when the read needs no node.
    pub(super) fn refusal(&self) -> Option<Response<ProxyBody>> {
        let what = match self {
            ReadIds::Unknown(what) => what,
            ReadIds::Unreadable(why) => {
                return Some(problem::plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "id-map-unavailable",
                    format!("dtc's id map cannot be read now ({why}): retry later"),
                ));
            }
            _ => return None,
        };
        Some(problem::plain(
            StatusCode::NOT_FOUND,
            "unknown-id",
            format!(
                "{what} is not a canonical id in dtc's id map (it is a node's own id of another resource): no resource was created with this id through dtc, or it was deleted"
            ),
        ))
    }

    /// The path to send to node `node`; `None` when the map holds no id of the resource there
    /// (that node is not asked).
    pub(super) fn path_for(&self, node: &str, path_and_query: &str) -> Option<String> {
        match self {
            ReadIds::Item(rule, entry) => Some(rule.with_id(path_and_query, entry.node_id(node)?)),
            _ => Some(path_and_query.to_string()),
        }
    }

    /// Whether the node's answer is rewritten (so buffered).
    pub(super) fn rewrites(&self) -> bool {
        matches!(self, ReadIds::Item(..) | ReadIds::List(..))
    }

    /// Node `node`'s answer in canonical ids.
    pub(super) async fn answer(
        &self,
        node: &str,
        resp: Response<ProxyBody>,
        max_body: usize,
    ) -> Response<ProxyBody> {
        let (mut head, body) = resp.into_parts();
        let body = match Limited::new(body, max_body).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                tracing::warn!(node, error = %e, "a mapped read's answer could not be read whole");
                return problem::plain(
                    StatusCode::BAD_GATEWAY,
                    "read-failed",
                    format!(
                        "node {node}: the answer could not be read whole to translate its ids ({e})"
                    ),
                );
            }
        };
        let rewritten = match self {
            ReadIds::Item(rule, entry) => {
                let to =
                    |id: &str| (entry.node_id(node) == Some(id)).then(|| entry.canonical.clone());
                if let Some(loc) = head
                    .headers
                    .get(http::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| rule.swap_location(l, to))
                    .and_then(|l| HeaderValue::from_str(&l).ok())
                {
                    head.headers.insert(http::header::LOCATION, loc);
                }
                rule.swap_body(&body, to)
            }
            ReadIds::List(rule, journal) => {
                match journal.canonicals_on(&rule.collection, node).await {
                    Ok(map) => rule.swap_list(&body, |id| map.get(id).cloned()),
                    Err(e) => {
                        tracing::warn!(node, error = %e, "a collection read's ids could not be translated");
                        return problem::plain(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "id-map-unavailable",
                            format!("dtc's id map cannot be read now ({e}): retry later"),
                        );
                    }
                }
            }
            _ => None,
        };
        let body = match rewritten {
            Some(b) => {
                head.headers.remove(http::header::CONTENT_LENGTH);
                b
            }
            None => body,
        };
        Response::from_parts(head, ProxyBody::full(body))
    }
}
