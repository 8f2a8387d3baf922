//! What the journal writes: one record per step of a transaction, and the in-memory entry the
//! records fold into.
//!
//! A transaction's records, in order: `Begin` (before the first write byte reaches any node),
//! one `Node` per node as it answers, then `End`. A transaction without `End` is in doubt.
//! Later steps (`Redrive`, `Verified`, `Resolved`) follow a `failed` or to-be-verified one.
//! Compaction replaces a transaction's records with one `Entry`.

use crate::txn::UndoPlan;
use crate::txn::evidence::State;
use crate::txn::{NodeReport, Reason, TxnState};
use serde::{Deserialize, Serialize};

/// One journal record.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Record {
    Begin(Begin),
    /// One node's answer and the undo it needs; written only when it adds to the intent (see
    /// `saga::run`'s `write_all`): a node without one has no recorded answer, which is no
    /// evidence either way; recovery reads the node instead.
    Node {
        txn: String,
        node: usize,
        report: NodeReport,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        undo: Option<UndoPlan>,
    },
    End {
        txn: String,
        at_ms: u64,
        state: TxnState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Reason>,
        nodes: Vec<NodeReport>,
        /// The answer a client retrying with the transaction's `Idempotency-Key` gets again.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer: Option<StoredAnswer>,
    },
    /// A re-drive (or recovery) attempt: the nodes' undo results and the resulting state.
    Redrive {
        txn: String,
        at_ms: u64,
        state: TxnState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Reason>,
        nodes: Vec<NodeReport>,
    },
    /// The late-write check of a rollback found the rollback holding on every node.
    Verified {
        txn: String,
        at_ms: u64,
    },
    /// A person marked it resolved.
    Resolved {
        txn: String,
        at_ms: u64,
        reason: String,
        /// Who, as the admin client said (`alice via dtc txn`, `the status page`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// A whole transaction, written by compaction.
    Entry(Entry),
    /// A client's idempotency key and what its transaction came to, written by compaction.
    Idem(IdemSlot),
    /// A key's last acknowledged state, written by compaction.
    Known(Known),
    /// A resource's canonical id and each node's own (a create that succeeded, or compaction).
    Ids(IdEntry),
    /// A mapped resource absent on every node: its ids leave the map.
    IdsGone {
        txn: String,
        collection: String,
        canonical: String,
        at_ms: u64,
    },
}

/// One resource's ids.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdEntry {
    /// The create route's path (`/items`): the map's name.
    pub collection: String,
    /// The id the client sees.
    pub canonical: String,
    /// Each node's own id, by node name.
    pub nodes: Vec<(String, String)>,
    /// The create.
    pub txn: String,
    pub at_ms: u64,
}

impl IdEntry {
    /// Sets node `name`'s own id (a repair recreated the resource there, or a backfill copied
    /// it to a joining node).
    pub fn set_node(&mut self, name: &str, id: String) {
        match self.nodes.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = id,
            None => self.nodes.push((name.to_string(), id)),
        }
    }

    /// Node `name`'s own id of this resource.
    pub fn node_id(&self, name: &str) -> Option<&str> {
        self.nodes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.as_str())
    }
}

/// A key's last acknowledged state, as a read of the resource shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Known {
    pub key: String,
    /// The transaction that left it so.
    pub txn: String,
    pub at_ms: u64,
    /// The read that tells the state: method and path.
    #[serde(with = "crate::txn::plan::method_text")]
    pub method: http::Method,
    pub path: String,
    /// The statuses that read answers in this state.
    pub statuses: Vec<u16>,
}

/// A client's `Idempotency-Key` and the request it came with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdemKey {
    pub key: String,
    /// A hash of the method, the path's normal form, the query and the body: the same key with
    /// another request is refused.
    pub fingerprint: String,
}

/// A node's answer kept for a client's retry with the same idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredAnswer {
    pub status: u16,
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    pub body: StoredBody,
}

/// A body as text when it is UTF-8 (most API answers), else as bytes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum StoredBody {
    Text(String),
    Bytes(Vec<u8>),
}

impl StoredBody {
    /// Keeps `bytes`.
    pub fn of(bytes: &[u8]) -> StoredBody {
        match std::str::from_utf8(bytes) {
            Ok(s) => StoredBody::Text(s.to_string()),
            Err(_) => StoredBody::Bytes(bytes.to_vec()),
        }
    }

    /// The bytes kept.
    pub fn bytes(&self) -> bytes::Bytes {
        match self {
            StoredBody::Text(s) => bytes::Bytes::from(s.clone()),
            StoredBody::Bytes(b) => bytes::Bytes::from(b.clone()),
        }
    }
}

/// What a client's idempotency key is bound to: the last transaction it started, and what that
/// transaction came to as far as the journal knows.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IdemSlot {
    pub key: String,
    pub fingerprint: String,
    pub txn: String,
    pub at_ms: u64,
    pub state: TxnState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// A person resolved the transaction.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resolved: bool,
    #[serde(default)]
    pub nodes: Vec<NodeReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<StoredAnswer>,
    /// The transaction's route, resource key and config generation, for the replayed answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    pub resource: String,
    pub generation: u64,
}

/// The intent of a transaction, recorded before any node is written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Begin {
    pub txn: String,
    pub at_ms: u64,
    pub generation: u64,
    #[serde(with = "crate::txn::plan::method_text")]
    pub method: http::Method,
    pub path: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// `(name, url)` of every node written to.
    pub nodes: Vec<(String, String)>,
    /// End-to-end headers the undo sends along (authorization and the like).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Per node, the undo as far as it is known before the node answers (`None` when the undo
    /// needs the node's own response, or the route has no compensation).
    pub undo: Vec<Option<UndoPlan>>,
    /// The read-back that tells a node's state (target or prior).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifyPlan>,
    /// Per node, the status of the pre-image read before the write (when the route takes one):
    /// with the undo plan built from it, recovery knows that node's prior state exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre: Vec<Option<u16>>,
    /// Whether the undo plans put back those pre-images (snapshot compensation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pre_restores: bool,
    /// [`body_hash`] of the written body, for writes that leave a representation (not
    /// deletes): `dtc verify` tells by it which node holds the last acknowledged write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_hash: Option<u32>,
    /// The client's idempotency key, if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idem: Option<IdemKey>,
    /// A pipelined write's intent, journaled before the key's turn: the window `k` in force
    /// (the write went to the nodes only once at most `k - 1` writes before it on the key
    /// lacked a durable end). `None`: journaled at the turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub early: Option<u8>,
}

/// CRC-32 of a body in a canonical form: JSON re-serialized compactly (keys in their order),
/// anything else as it is. A node's representation of a replaced resource hashes the same as
/// the body that replaced it when the node stores the body as sent.
pub fn body_hash(body: &[u8]) -> u32 {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => crc32fast::hash(v.to_string().as_bytes()),
        Err(_) => crc32fast::hash(body),
    }
}

/// A rendered read-back: the request, and which statuses mean which state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VerifyPlan {
    #[serde(with = "crate::txn::plan::method_text")]
    pub method: http::Method,
    pub path: String,
    /// Statuses meaning the node is in the state before the write (`expect` in older journals).
    #[serde(alias = "expect")]
    pub prior: Vec<u16>,
    /// Statuses meaning the node is in the write's target state.
    #[serde(default)]
    pub target: Vec<u16>,
    /// Per node (in the transaction's node order), the path in that node's own ids, when the
    /// resource's id is mapped ([`super::idmap`]); empty: `path` on every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_paths: Vec<String>,
}

impl VerifyPlan {
    /// The read node `i` gets: `path` in that node's ids, when they differ.
    pub fn for_node(&self, i: usize) -> std::borrow::Cow<'_, VerifyPlan> {
        match self.node_paths.get(i) {
            Some(p) if *p != self.path => std::borrow::Cow::Owned(VerifyPlan {
                path: p.clone(),
                node_paths: Vec::new(),
                ..self.clone()
            }),
            _ => std::borrow::Cow::Borrowed(self),
        }
    }

    /// The resource's state before the write when the read-back names each node's own id: the
    /// write was admitted only because the id map held the resource, which it does from the
    /// acknowledged create until a delete leaves it absent on every node — present. The rule
    /// the live judgement and recovery both take when the key's history says nothing.
    pub fn mapped_prior(&self) -> Option<State> {
        match self.node_paths.is_empty() {
            true => None,
            false => self.state_of(200),
        }
    }

    /// The state a read-back status shows, if it is one of the two.
    pub fn state_of(&self, status: u16) -> Option<State> {
        if self.prior.contains(&status) {
            Some(State::Prior)
        } else if self.target.contains(&status) {
            Some(State::Target)
        } else {
            None
        }
    }
}

/// Everything known about one transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub begin: Begin,
    pub state: TxnState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    pub nodes: Vec<EntryNode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    #[serde(default)]
    pub redrives: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// Who resolved it and when (milliseconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_ms: Option<u64>,
    /// A rollback (or a write that applied nowhere) whose nodes included an unknown outcome
    /// waits for a read-back check.
    #[serde(default)]
    pub verify_pending: bool,
    /// The entry's position in the journal (the order its intent was appended in; kept across
    /// compaction): recovery judges a key's in-doubt writes in this order.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub seq: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One node's part of a transaction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryNode {
    /// The last report of this node (`None`: no answer recorded: the outcome is unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<NodeReport>,
    /// The undo for this node, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<UndoPlan>,
}

impl Entry {
    /// A new in-doubt entry.
    pub fn new(begin: Begin) -> Entry {
        // Transactions that touched no node carry no undo plans, but still name their nodes.
        let nodes = (0..begin.nodes.len())
            .map(|i| EntryNode {
                report: None,
                undo: begin.undo.get(i).cloned().flatten(),
            })
            .collect();
        Entry {
            begin,
            state: TxnState::InDoubt,
            reason: None,
            nodes,
            finished_ms: None,
            redrives: 0,
            resolution: None,
            resolved_by: None,
            resolved_ms: None,
            verify_pending: false,
            seq: 0,
        }
    }

    /// Unfinished business: in doubt, failed and not resolved, or waiting for its check.
    pub fn is_open(&self) -> bool {
        self.resolution.is_none()
            && (matches!(self.state, TxnState::InDoubt | TxnState::Failed) || self.verify_pending)
    }

    /// Whether new writes to this resource must wait for a person or the re-drive: a failed,
    /// unresolved transaction, or a rollback whose late-write check is pending.
    pub fn fences(&self) -> bool {
        self.resolution.is_none() && (self.state == TxnState::Failed || self.verify_pending)
    }

    /// Nodes where the write may still land ([`crate::txn::evidence::may_land_later`]).
    pub fn late_write_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| crate::txn::evidence::may_land_later(self.nodes[i].report.as_ref()))
            .collect()
    }

    /// Whether the nodes are read again later ([`crate::txn::evidence::check_later`]).
    fn checked_later(&self) -> bool {
        crate::txn::evidence::check_later(self.state, &self.late_write_nodes())
    }

    /// Folds one record into the entry.
    pub fn apply(&mut self, rec: &Record) {
        match rec {
            Record::Node {
                node, report, undo, ..
            } => {
                if let Some(n) = self.nodes.get_mut(*node) {
                    n.report = Some(report.clone());
                    if undo.is_some() {
                        n.undo = undo.clone();
                    }
                }
            }
            Record::End {
                at_ms,
                state,
                reason,
                nodes,
                ..
            } => {
                self.state = *state;
                self.reason = reason.clone();
                self.finished_ms = Some(*at_ms);
                self.merge_reports(nodes);
                self.verify_pending = self.checked_later();
            }
            Record::Redrive {
                at_ms,
                state,
                reason,
                nodes,
                ..
            } => {
                self.redrives += 1;
                self.state = *state;
                self.finished_ms = Some(*at_ms);
                self.merge_reports(nodes);
                if let Some(r) = reason {
                    self.reason = Some(r.clone());
                } else if *state == TxnState::RolledBack {
                    self.reason = Some(Reason::Compensated);
                }
                self.verify_pending = self.checked_later();
            }
            Record::Verified { .. } => self.verify_pending = false,
            Record::Resolved {
                reason, by, at_ms, ..
            } => {
                self.resolution = Some(reason.clone());
                self.resolved_by = by.clone();
                self.resolved_ms = Some(*at_ms);
            }
            Record::Begin(_)
            | Record::Entry(_)
            | Record::Idem(_)
            | Record::Known(_)
            | Record::Ids(_)
            | Record::IdsGone { .. } => {}
        }
    }

    fn merge_reports(&mut self, nodes: &[NodeReport]) {
        for (n, r) in self.nodes.iter_mut().zip(nodes) {
            if r.outcome != crate::txn::Class::NotSent || n.report.is_none() {
                n.report = Some(r.clone());
            }
        }
    }

    /// The per-node reports as a list (unknown nodes shown as not answered).
    pub fn reports(&self) -> Vec<NodeReport> {
        self.nodes
            .iter()
            .zip(&self.begin.nodes)
            .map(|(n, (name, _))| {
                n.report.clone().unwrap_or(NodeReport {
                    node: name.clone(),
                    outcome: crate::txn::Class::Transient,
                    status: None,
                    error: Some(
                        "no answer recorded (dtc stopped while the write was in flight)".into(),
                    ),
                    attempts: 0,
                    maybe_applied: true,
                    in_flight: Some(true),
                    compensation: None,
                    read_back: None,
                })
            })
            .collect()
    }
}

impl Record {
    /// The transaction a record belongs to.
    pub fn txn(&self) -> &str {
        match self {
            Record::Begin(b) => &b.txn,
            Record::Entry(e) => &e.begin.txn,
            Record::Idem(slot) => &slot.txn,
            Record::Known(k) => &k.txn,
            Record::Ids(e) => &e.txn,
            Record::Node { txn, .. }
            | Record::End { txn, .. }
            | Record::Redrive { txn, .. }
            | Record::Verified { txn, .. }
            | Record::Resolved { txn, .. }
            | Record::IdsGone { txn, .. } => txn,
        }
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
