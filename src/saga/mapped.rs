//! A write naming its resource by a mapped id ([`crate::config::ids`]): each node's own id, and
//! what a request to node `i` becomes in that node's ids — its path, the route's captured path
//! values, its body. A leaf: the transaction ([`super::write::Txn`]) holds one once the write's
//! turn is taken (`super::ids`), and every step sends node `i` what [`Mapped`] makes of it.

use crate::config::ids::IdRule;
use bytes::Bytes;
use std::sync::Arc;

/// A write's resource, named by a mapped id.
#[derive(Debug)]
pub(crate) struct Mapped {
    pub(crate) rule: Arc<IdRule>,
    pub(crate) canonical: String,
    /// Each node's own id, in the runtime's node order.
    pub(crate) node_ids: Vec<String>,
}

impl Mapped {
    /// `path_and_query` for node `i`: its own id in place of the canonical one, when the path
    /// names the resource.
    pub(crate) fn path(&self, i: usize, path_and_query: &str) -> String {
        let path = crate::wire::path::normalize(path_and_query);
        match self.rule.id_in_path(&path) {
            Some(id) if id == self.canonical => {
                self.rule.with_id(path_and_query, &self.node_ids[i])
            }
            _ => path_and_query.to_string(),
        }
    }

    /// `path` in each node's ids.
    pub(crate) fn paths(&self, path: &str) -> Vec<String> {
        (0..self.node_ids.len())
            .map(|i| self.path(i, path))
            .collect()
    }

    /// The route's captured path values for node `i`: the canonical id replaced by the node's.
    pub(crate) fn params(&self, i: usize, params: &[(String, String)]) -> Vec<(String, String)> {
        let mut params = params.to_vec();
        for (_, v) in params.iter_mut().filter(|(_, v)| *v == self.canonical) {
            v.clone_from(&self.node_ids[i]);
        }
        params
    }

    /// A request body for node `i`: the id at the rule's pointer, when it is the canonical one,
    /// replaced by the node's; `None` when nothing changes.
    pub(crate) fn body(&self, i: usize, body: &[u8]) -> Option<Bytes> {
        self.rule.swap_body(body, |id| {
            (id == self.canonical).then(|| self.node_ids[i].clone())
        })
    }
}
