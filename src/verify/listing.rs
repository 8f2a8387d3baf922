//! The listing hook: keys a journal cannot know. A route that declares `list` (e.g.
//! `list = "/v1/group/"`) says that a `GET` of that path on a node answers a JSON array of the
//! resources the route creates, each as the route's body takes it; from each, the backfill
//! renders the key (`key`), the read (`verify.path`) and, to copy it, the route's own write
//! with the resource as its body.

use super::read::{self, Held, ReadPlan, Target};
use super::repair::{NoRepair, RepairWrite};
use crate::config::template::{Context, Escape};
use crate::config::validate::Route;
use crate::runtime::Runtime;
use crate::upstream::Node;
use http::{HeaderMap, Method};
use serde_json::Value;
use std::sync::Arc;

/// A resource a listing found: its key, its read, and the write that creates it.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub key: String,
    pub read: ReadPlan,
    method: Method,
    path: String,
    already: Vec<u16>,
}

impl Listed {
    /// The route's own write that brings a node to `target` (only "present": the listing saw
    /// the resource on the nodes that serve reads).
    pub(super) fn write(&self, target: &Target) -> Result<RepairWrite, NoRepair> {
        let Target::Present { body, content_type } = target else {
            return Err(NoRepair::ListedAbsent);
        };
        Ok(RepairWrite {
            method: self.method.clone(),
            path: self.path.clone(),
            content_type: content_type
                .clone()
                .or(Some("application/json".to_string())),
            body: body.clone(),
            already: self.already.clone(),
        })
    }
}

/// Lists every route's resources on `source`; the second value says what the backfill can and
/// cannot see.
pub(super) async fn list(rt: &Runtime, source: &Arc<Node>) -> (Vec<Listed>, String) {
    let routes: Vec<&Arc<Route>> = rt
        .settings
        .routes
        .iter()
        .filter(|r| r.list.is_some())
        .collect();
    if routes.is_empty() {
        return (
            Vec::new(),
            "only the keys the journal knows were gone through (its open and last journal.keep_finished finished transactions): a key written before them, or before dtc, is not known to it; declare `list` on a create route to have the nodes list them".into(),
        );
    }
    let mut out = Vec::new();
    let mut said = Vec::new();
    for route in routes {
        match list_route(rt, source, route).await {
            Ok(found) => {
                said.push(format!(
                    "{} listed {} on {}",
                    route.name,
                    found.len(),
                    source.name()
                ));
                out.extend(found);
            }
            Err(e) => said.push(format!(
                "{}: listing failed on {} ({e})",
                route.name,
                source.name()
            )),
        }
    }
    (out, said.join("; "))
}

async fn list_route(
    rt: &Runtime,
    source: &Arc<Node>,
    route: &Route,
) -> Result<Vec<Listed>, String> {
    let (Some(rule), Some(key), Some(verify)) = (&route.list, &route.key, &route.verify) else {
        return Ok(Vec::new());
    };
    let plan = ReadPlan {
        method: Method::GET,
        path: rule.path.clone(),
        headers: HeaderMap::new(),
        node_paths: Vec::new(),
    };
    let body = match read::read(rt, source, &plan).await {
        Held::Present { body, .. } => body,
        other => return Err(format!("GET {} answered {}", rule.path, other.describe())),
    };
    let items: Vec<Value> = serde_json::from_slice(&body)
        .map_err(|e| format!("GET {} is not a JSON array: {e}", rule.path))?;
    items
        .iter()
        .map(|item| {
            let ctx = Context {
                body: Some(item),
                ..Context::default()
            };
            let render = |t: &crate::config::template::Template, escape| {
                t.render(&ctx, escape)
                    .map_err(|e| format!("listed element {item}: {e}"))
            };
            Ok(Listed {
                key: render(key, Escape::Raw)?,
                read: ReadPlan {
                    method: verify.method.clone(),
                    path: render(&verify.path, Escape::Path)?,
                    headers: HeaderMap::new(),
                    node_paths: Vec::new(),
                },
                method: route.method.clone(),
                path: rule.write_path.clone(),
                already: route.already.clone(),
            })
        })
        .collect()
}
