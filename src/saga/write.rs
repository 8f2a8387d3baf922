//! A write as the saga carries it from step to step ([`Txn`]): the client's request, its route
//! and resource key, the headers the nodes get; and what follows from them alone — the undo
//! of each node ([`Planner`]), the route's read-back, and the journal's intent record.

use super::attempt::CallResult;
use super::mapped::Mapped;
use super::undo::{self, PlanError, Snapshot, UndoInputs};
use crate::config::template::{Context, Escape};
use crate::config::validate::{CompBody, Route};
use crate::headers;
use crate::journal::JournalError;
use crate::journal::record::{Begin, IdemKey, VerifyPlan, body_hash, now_ms};
use crate::runtime::Runtime;
use crate::txn::evidence::Judgement;
use crate::txn::{NodeResponse, UndoPlan};
use bytes::Bytes;
use futures_util::future::OptionFuture;
use http::{HeaderMap, Method};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::Instant;

/// A write as the client sent it, body buffered.
#[derive(Debug, Clone)]
pub struct WriteRequest {
    pub method: Method,
    /// Path and query, e.g. `/v1/group/?x=1`.
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl WriteRequest {
    /// A JSON write with no other headers (library use and tests).
    pub fn json(method: Method, path: &str, body: &str) -> WriteRequest {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        WriteRequest {
            method,
            path_and_query: path.to_string(),
            headers,
            body: Bytes::from(body.to_string()),
        }
    }

    pub(crate) fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or("/")
    }
}

/// Everything a transaction carries from step to step.
pub(crate) struct Txn<'a> {
    pub(crate) id: String,
    pub(crate) rt: &'a Runtime,
    pub(crate) req: &'a WriteRequest,
    pub(crate) route: Option<&'a Arc<Route>>,
    pub(crate) params: Vec<(String, String)>,
    pub(crate) json: Option<Value>,
    pub(crate) key: String,
    pub(crate) node_headers: HeaderMap,
    pub(crate) started: Instant,
    /// The client's idempotency key and the request it came with.
    pub(crate) idem: Option<IdemKey>,
    /// Each node's own id of the resource, when the write names it by a mapped id (set under
    /// the key's turn by `super::ids::map_request`).
    pub(crate) mapped: std::sync::OnceLock<Mapped>,
}

impl<'a> Txn<'a> {
    /// Transaction `id` of `req` on config generation `rt`: its route, resource key, and the
    /// headers the nodes get (the transaction's own idempotency key among them).
    pub(crate) fn start(id: String, rt: &'a Runtime, req: &'a WriteRequest) -> Txn<'a> {
        let path = crate::wire::path::normalize(req.path());
        let matched = rt.settings.routes.iter().find_map(|r| {
            (r.method == req.method)
                .then(|| r.pattern.matches(&path))
                .flatten()
                .map(|p| (r, p))
        });
        let (route, params) = match matched {
            Some((r, p)) => (Some(r), p),
            None => (None, Vec::new()),
        };
        // Only a route's templates read the body as JSON; a write no route matches skips the parse.
        let json = route.and_then(|_| serde_json::from_slice::<Value>(&req.body).ok());
        let key = resource_key(route, &params, json.as_ref(), &path, &req.method, &id);
        let idem = bind(req, &path);
        let mut node_headers = headers::for_node(req.headers.clone());
        node_headers.insert(
            headers::IDEMPOTENCY_KEY,
            headers::value(&node_key(&id, idem.as_ref())),
        );
        node_headers.insert(headers::TXN_ID, headers::value(&id));
        Txn {
            id,
            rt,
            req,
            route,
            params,
            json,
            key,
            node_headers,
            started: Instant::now(),
            idem,
            mapped: std::sync::OnceLock::new(),
        }
    }

    /// `path_and_query` as node `i` names the resource (its own id, when it is mapped).
    pub(crate) fn node_path(&self, i: usize, path_and_query: &str) -> String {
        match self.mapped.get() {
            Some(m) => m.path(i, path_and_query),
            None => path_and_query.to_string(),
        }
    }

    /// The route's captured path values as node `i` names the resource.
    pub(crate) fn node_params(&self, i: usize) -> Vec<(String, String)> {
        match self.mapped.get() {
            Some(m) => m.params(i, &self.params),
            None => self.params.clone(),
        }
    }

    /// The write's headers and body for node `i`: in its ids, with its own length.
    pub(crate) fn node_write(&self, i: usize) -> (HeaderMap, Bytes) {
        match self.mapped.get().and_then(|m| m.body(i, &self.req.body)) {
            Some(body) => {
                let mut headers = self.node_headers.clone();
                headers.remove(http::header::CONTENT_LENGTH);
                (headers, body)
            }
            None => (self.node_headers.clone(), self.req.body.clone()),
        }
    }

    /// Whether the write is pipelined (`pipeline`, `writes.pipeline_unmatched`): a write that
    /// names a mapped id is not (its turn maps the id first).
    pub(crate) fn pipelined(&self) -> bool {
        let settings = &self.rt.settings;
        settings.pipelined(self.route.map(|r| &**r))
            && settings
                .mapped_id(&crate::wire::path::normalize(self.req.path()))
                .is_none()
    }

    /// The route's name, or the method of a write no route matches.
    pub(crate) fn name(&self) -> &str {
        self.route
            .map_or(self.req.method.as_str(), |r| r.name.as_str())
    }

    /// The route's read-back, rendered from the request.
    pub(crate) fn verify_plan(&self) -> Option<VerifyPlan> {
        let rule = self.route?.verify.as_ref()?;
        let ctx = Context {
            params: &self.params,
            body: self.json.as_ref(),
            ..Context::default()
        };
        let path = rule.path.render(&ctx, Escape::Path).ok()?;
        Some(VerifyPlan {
            method: rule.method.clone(),
            node_paths: self
                .mapped
                .get()
                .map(|m| m.paths(&path))
                .unwrap_or_default(),
            path,
            prior: rule.prior.clone(),
            target: rule.target.clone(),
        })
    }

    /// Whether the route's undo puts back the pre-image.
    pub(crate) fn restores(&self) -> bool {
        self.route
            .and_then(|r| r.compensation.as_ref())
            .is_some_and(|c| matches!(c.body, CompBody::Snapshot))
    }

    /// The journal's intent record of the transaction; `pre` holds each node's pre-image status.
    pub(crate) fn intent(&self, undo: Vec<Option<UndoPlan>>, pre: Vec<Option<u16>>) -> Begin {
        let keep = &self.rt.settings.config.journal.headers;
        let all = keep.iter().any(|k| k == "*");
        let headers = headers::for_undo(&self.req.headers)
            .iter()
            .filter(|(k, _)| all || keep.iter().any(|h| h.eq_ignore_ascii_case(k.as_str())))
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        Begin {
            txn: self.id.clone(),
            at_ms: now_ms(),
            generation: self.rt.generation,
            method: self.req.method.clone(),
            path: self.req.path_and_query.clone(),
            key: self.key.clone(),
            route: self.route.map(|r| r.name.clone()),
            nodes: self
                .rt
                .nodes
                .all()
                .iter()
                .map(|n| (n.name().to_string(), n.spec.url.to_string()))
                .collect(),
            headers,
            undo,
            verify: self.verify_plan(),
            pre_restores: !pre.is_empty() && self.restores(),
            pre,
            body_hash: (self.req.method != Method::DELETE).then(|| body_hash(&self.req.body)),
            idem: self.idem.clone(),
            early: None,
        }
    }
}

/// What the steps hand on: [`send`](super::send)'s results and [`judge`](super::judge)'s judgement.
/// A node record's durability, when there is a journal.
pub(crate) type JournalWait = Pin<Box<dyn Future<Output = Result<(), JournalError>> + Send>>;
pub(crate) type Journaled = OptionFuture<JournalWait>;

/// Per node, in node order: the final result, the undo plan, and its journal record's durability.
#[derive(Default)]
pub(crate) struct WriteAll(
    pub(crate) Vec<CallResult>,
    pub(crate) Vec<Option<Result<UndoPlan, PlanError>>>,
    pub(crate) Vec<Journaled>,
);

/// The judgement of a live write, and per node what its read-back showed (for its report).
pub(crate) struct Judged {
    pub(crate) judgement: Judgement,
    pub(crate) read_backs: Vec<Option<String>>,
}

/// The resource a write takes the turn of (see docs/writes.md):
/// - the route's `key`, rendered from the request;
/// - a route without `key`: a `POST` creates a resource the node names, so it gets a key of its
///   own (`txn:<id>`) and one create that cannot be decided fences no other; any other method
///   names its resource by its path;
/// - a write no route matches (or whose `key` cannot be rendered): its path.
///
/// Paths are in their normal form ([`crate::wire::path`]): two spellings of one resource take one
/// turn.
fn resource_key(
    route: Option<&Arc<Route>>,
    params: &[(String, String)],
    json: Option<&Value>,
    path: &str,
    method: &Method,
    txn: &str,
) -> String {
    let Some(route) = route else {
        return path.to_string();
    };
    match &route.key {
        Some(k) => {
            let ctx = Context {
                params,
                body: json,
                ..Context::default()
            };
            k.render(&ctx, Escape::Raw)
                .unwrap_or_else(|_| path.to_string())
        }
        None if *method == Method::POST => format!("txn:{txn}"),
        None => path.to_string(),
    }
}

/// The pre-images of a write, when its route reads them: the path read, and each node's.
pub(crate) type Snapshots = Option<(String, Vec<Snapshot>)>;

/// Resolves per-node undo plans from the route's rule.
pub(crate) struct Planner<'a> {
    pub(crate) t: &'a Txn<'a>,
    pub(crate) snapshots: &'a Snapshots,
}

impl Planner<'_> {
    /// The undo of node `i` given its answer (`None` before it answered). `None` when the route
    /// has no rule; `Some(Err)` when the rule cannot be resolved for this node.
    pub(crate) fn plan(
        &self,
        i: usize,
        response: Option<&NodeResponse>,
    ) -> Option<Result<UndoPlan, PlanError>> {
        let t = self.t;
        let Some(rule) = t.route.and_then(|r| r.compensation.as_ref()) else {
            return Some(Err(PlanError::NoRule));
        };
        // In node `i`'s ids when the resource's id is mapped: the undo goes to that node.
        let params = t.node_params(i);
        let (_, body) = t.node_write(i);
        let snapshot_path = self.snapshots.as_ref().map(|(p, _)| t.node_path(i, p));
        let inputs = UndoInputs {
            params: &params,
            request_json: t.json.as_ref(),
            request_body: &body,
            request_content_type: t
                .req
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            response,
            snapshot: self.snapshots.as_ref().map(|(_, s)| &s[i]),
            snapshot_path: snapshot_path.as_deref(),
        };
        Some(undo::plan(rule, &inputs))
    }
}

/// The client's key, if it sent one (a value that is not visible ASCII is no key).
fn client_key(req: &WriteRequest) -> Option<String> {
    let v = req.headers.get(headers::IDEMPOTENCY_KEY)?.to_str().ok()?;
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The client's idempotency key and the request it came with: method, the path's normal form,
/// the query, the body (see [`super::idem`]).
fn bind(req: &WriteRequest, normal_path: &str) -> Option<IdemKey> {
    let key = client_key(req)?;
    let query = req.path_and_query.split_once('?').map_or("", |(_, q)| q);
    let mut h = Sha256::new();
    for part in [
        req.method.as_str().as_bytes(),
        normal_path.as_bytes(),
        query.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(&req.body);
    Some(IdemKey {
        key,
        fingerprint: hex(&h.finalize()[..16]),
    })
}

/// The `Idempotency-Key` the nodes get for transaction `txn`: the transaction's id, and when the
/// client sent a key, a digest of it (so a node's log can be matched to the client's). Retries
/// of one transaction reuse it; a new transaction never does.
fn node_key(txn: &str, client: Option<&IdemKey>) -> String {
    match client {
        Some(k) => format!("{txn}-{}", hex(&Sha256::digest(k.key.as_bytes())[..8])),
        None => txn.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn the_fingerprint_tells_requests_apart_and_spellings_alike() {
        let mut req = WriteRequest::json(Method::POST, "/v1/group/", r#"{"groupId":"g1"}"#);
        req.headers.insert("idempotency-key", "k1".parse().unwrap());
        let a = bind(&req, "/v1/group").unwrap();
        let mut other = req.clone();
        other.body = r#"{"groupId":"g2"}"#.into();
        assert_ne!(
            a.fingerprint,
            bind(&other, "/v1/group").unwrap().fingerprint
        );
        let mut delete = req.clone();
        delete.method = Method::DELETE;
        assert_ne!(
            a.fingerprint,
            bind(&delete, "/v1/group").unwrap().fingerprint
        );
        let mut query = req.clone();
        query.path_and_query = "/v1/group/?x=1".into();
        assert_ne!(
            a.fingerprint,
            bind(&query, "/v1/group").unwrap().fingerprint
        );
        let mut spelled = req.clone();
        spelled.path_and_query = "/v1/group".into();
        assert_eq!(a, bind(&spelled, "/v1/group").unwrap());
    }

    #[test]
    fn nodes_get_a_key_per_transaction() {
        let k = IdemKey {
            key: "client-key".into(),
            fingerprint: String::new(),
        };
        assert_ne!(node_key("t1", Some(&k)), node_key("t2", Some(&k)));
        assert_eq!(node_key("t1", Some(&k)), node_key("t1", Some(&k)));
        assert!(!node_key("t1", Some(&k)).contains("client-key"));
        assert_eq!(node_key("t1", None), "t1");
    }
}
