//! What a transaction ended as: its state, the reason, and what each node did.

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A transaction's state. The last five are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnState {
    /// Started, not finished: after a crash, recovery undoes it.
    InDoubt,
    /// Every node holds the write.
    Succeeded,
    /// Nodes refused the write deterministically; nothing changed.
    Rejected,
    /// Nothing was applied and some node failed transiently: the client may retry.
    ToBeRetried,
    /// Some nodes applied it, and it was undone on all of them: nothing changed; retry later.
    RolledBack,
    /// An undo did not converge, or nothing could undo it: the nodes may differ. Re-driven in
    /// the background and listed for a person.
    Failed,
}

impl TxnState {
    /// The name used in headers, logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnState::InDoubt => "in_doubt",
            TxnState::Succeeded => "succeeded",
            TxnState::Rejected => "rejected",
            TxnState::ToBeRetried => "to_be_retried",
            TxnState::RolledBack => "rolled_back",
            TxnState::Failed => "failed",
        }
    }

    /// All states, for metrics.
    pub const ALL: [TxnState; 6] = [
        TxnState::InDoubt,
        TxnState::Succeeded,
        TxnState::Rejected,
        TxnState::ToBeRetried,
        TxnState::RolledBack,
        TxnState::Failed,
    ];
}

impl std::fmt::Display for TxnState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one node's answer to a write (or to its undo) counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// 2xx: the node applied it.
    Applied,
    /// A status the route declares as "already in the target state": converged.
    Already,
    /// Another 4xx (not 408/429): deterministic, not retried.
    Rejected,
    /// 5xx, 408, 429, or no answer: retried.
    Transient,
    /// Not sent (the transaction stopped before this node).
    NotSent,
}

impl Class {
    /// The class as its snake-case name (`applied`, `not_sent`).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Applied => "applied",
            Class::Already => "already",
            Class::Rejected => "rejected",
            Class::Transient => "transient",
            Class::NotSent => "not_sent",
        }
    }
}

/// Classifies a status under a route's "already" list.
pub fn classify(status: u16, already: &[u16]) -> Class {
    match status {
        200..=299 => Class::Applied,
        s if already.contains(&s) => Class::Already,
        408 | 429 | 500..=599 => Class::Transient,
        _ => Class::Rejected,
    }
}

/// What one node did in a transaction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeReport {
    pub node: String,
    /// Final class of the write on this node.
    pub outcome: Class,
    /// Last status, if an answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Last error, if no answer came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: u32,
    /// Whether an attempt may have been applied here without saying so (an answer never came,
    /// or a 5xx): not evidence that it was.
    pub maybe_applied: bool,
    /// Whether an attempt may still be under way at the node, to land later (no answer came, or
    /// a gateway's 502/504); `None` in records written before dtc told the two apart, read as
    /// `maybe_applied` ([`crate::txn::evidence::may_land_later`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<bool>,
    /// The undo on this node, if one was needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compensation: Option<CompReport>,
    /// What a read of the resource showed when the answer did not tell (`target`, `prior`, or
    /// `unclear` with the status or error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_back: Option<String>,
}

impl NodeReport {
    /// A node the write was never sent to.
    pub(crate) fn not_sent(node: &str) -> NodeReport {
        NodeReport {
            node: node.to_string(),
            outcome: Class::NotSent,
            status: None,
            error: None,
            attempts: 0,
            maybe_applied: false,
            in_flight: Some(false),
            compensation: None,
            read_back: None,
        }
    }
}

/// The undo on one node.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CompReport {
    /// `undone` or `failed`.
    pub outcome: CompOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub attempts: u32,
}

/// Result of one node's undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompOutcome {
    Undone,
    Failed,
}

/// Why a transaction ended as it did, when it did not simply succeed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum Reason {
    /// A node was known down, so no node was touched.
    NodeDown(String),
    /// The pre-image could not be read on a node, so no node was touched.
    SnapshotFailed(String),
    /// No route matched and unmatched writes are refused.
    NoRoute,
    /// Some nodes did not converge and nothing was applied.
    NotApplied,
    /// Nodes refused the write with different statuses.
    NodesDisagree,
    /// Partial, and the route has no compensation rule (or no route matched).
    NoCompensationRule,
    /// Partial, and undone everywhere it was applied.
    Compensated,
    /// Partial, and an undo did not converge.
    CompensationFailed,
    /// Another transaction on the same resource is unresolved.
    Fenced(String),
    /// The journal could not record the transaction durably.
    JournalUnavailable(String),
    /// A `dtc verify --repair` write did not bring every node it was sent to in line.
    RepairIncomplete(String),
    /// No node confirmed the write, yet a read shows every node in its target state: nothing
    /// was undone (live path).
    TargetStateHolds,
    /// Found complete on every node after dtc restarted: the client never got the answer.
    CompletedUnanswered,
    /// The evidence cannot tell whether undoing would destroy what these nodes held before:
    /// not undone there; the nodes may differ.
    OutcomeUnknown(String),
    /// `[cluster]`: another sidecar held the resource's lease for all of `cluster.wait`.
    KeyBusy(String),
    /// A rollback on the same resource waits for its late-write check (a node's earlier attempt
    /// may still land): writes to it are refused until the check, without touching any node.
    Checking(String),
    /// These nodes did not hold what the key's last acknowledged write left before this write
    /// (lost data, or a write behind dtc's back), and still do not: listed for repair.
    Diverged(String),
    /// These nodes did not hold what the key's last acknowledged write left before this write;
    /// this write brought them back in line.
    Realigned(String),
    /// The client's `Idempotency-Key` is bound to this transaction, sent with another request.
    KeyReused(String),
    /// The client's `Idempotency-Key` is bound to this transaction, still running elsewhere.
    KeyInProgress(String),
    /// The write names a resource by an id the id map does not hold, and that some node uses
    /// for another resource (`/items/1001`, node-2's own id of canonical 1): no node was touched.
    UnknownId(String),
    /// The id map holds the resource, but not its id on these nodes: no node was touched.
    NodeIdUnknown(String),
    /// A create applied on every node, but these nodes' answers carry no id: the map cannot
    /// address the resource there; listed, not guessed.
    IdsUnknown(String),
    /// A pipelined write that never reached a node: why dtc knows (given up before its turn,
    /// or queued behind writes in doubt at a crash, beyond the window).
    NeverSent(String),
}

impl Reason {
    /// A sentence for people.
    pub fn describe(&self) -> String {
        match self {
            Reason::NodeDown(n) => format!("node {n} is down; no node was touched, retry later"),
            Reason::SnapshotFailed(e) => format!("could not read the resource before the write ({e}); no node was touched"),
            Reason::NoRoute => "no route matches this write and unmatched writes are refused; no node was touched".into(),
            Reason::NotApplied => "no node applied the write and some failed transiently; nothing changed, retry later".into(),
            Reason::NodesDisagree => "the nodes refused the write with different statuses; nothing changed".into(),
            Reason::NoCompensationRule => "the write applied on some nodes only and no compensation rule can undo it: the nodes may differ".into(),
            Reason::Compensated => "the write applied on some nodes only and was undone on them; nothing changed, retry later".into(),
            Reason::CompensationFailed => "the write applied on some nodes only and undoing it failed: the nodes may differ; it is retried in the background".into(),
            Reason::Fenced(t) => format!("transaction {t} on the same resource is unresolved; writes to it are refused until it is re-driven or resolved"),
            Reason::JournalUnavailable(e) => format!("the journal cannot record the write ({e})"),
            Reason::RepairIncomplete(e) => format!("the verify repair did not converge ({e}); the next verify finds the key again"),
            Reason::TargetStateHolds => "no node confirmed the write (see each node's status), but reading the resource back shows every node in the write's target state: nothing was undone and the nodes agree; whether this write or an earlier one put it there is unknown".into(),
            Reason::CompletedUnanswered => "the write is on every node (read back after dtc restarted); the client never got the answer".into(),
            Reason::OutcomeUnknown(n) => format!("cannot tell whether the write changed {n}: nothing was undone there, the nodes may differ; it is checked again in the background"),
            Reason::KeyBusy(e) => format!("{e}; no node was touched"),
            Reason::Checking(t) => format!("transaction {t} on the same resource was rolled back while a node's answer was unknown; a late write may still land there, so writes to it wait for its check (see Retry-After); no node was touched"),
            Reason::Diverged(n) => format!("{n} did not hold what the last acknowledged write on this resource left, before this write, and still do not (lost data, or a write that bypassed dtc): the nodes differ; nothing that held it was undone; repair it (dtc verify --repair) or resolve it"),
            Reason::Realigned(n) => format!("{n} did not hold what the last acknowledged write on this resource left, before this write (lost data, or a write that bypassed dtc); this write brought it back in line: check that node's other resources (dtc verify)"),
            Reason::KeyReused(t) => format!("this Idempotency-Key was first sent with another request (transaction {t}); a key names one request: use a new key for a new request; no node was touched"),
            Reason::KeyInProgress(t) => format!("the first request with this Idempotency-Key (transaction {t}) is still running; retry later to get its answer; no node was touched"),
            Reason::UnknownId(r) => format!("{r} is not a canonical id in dtc's id map (it is a node's own id of another resource): no resource was created with this id through dtc, or it was deleted; no node was touched"),
            Reason::NodeIdUnknown(r) => format!("dtc's id map does not know the id of {r} (a node added after the resource was created?): the write cannot address it there; no node was touched"),
            Reason::IdsUnknown(n) => format!("the create applied on every node, but the answers of {n} carry no id (see the route's `id`): dtc cannot address the new resource there; nothing was undone, the client got no id; repair or resolve it"),
            Reason::NeverSent(why) => format!("{why}: the write was never sent to any node; nothing changed, retry later"),
        }
    }
}

/// A node's full answer, kept for writes (they are small and bounded by `limits.max_body`).
#[derive(Debug, Clone)]
pub struct NodeResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The result of [`crate::saga::Coordinator::execute`].
#[derive(Debug, Clone)]
pub struct Outcome {
    pub txn: String,
    pub state: TxnState,
    pub reason: Option<Reason>,
    /// The config generation the transaction ran on.
    pub generation: u64,
    /// `POST /v1/group/`, or `None` when no route matched.
    pub route: Option<String>,
    /// The resource key the write was serialized on.
    pub key: String,
    pub nodes: Vec<NodeReport>,
    /// The node answer passed to the client for `succeeded` (and `rejected` when all agree).
    pub response: Option<NodeResponse>,
    pub elapsed: Duration,
    /// The answer of an earlier transaction, given again to a client retrying with its
    /// `Idempotency-Key`: no node was touched now.
    pub replayed: bool,
    /// When a retry can expect a different answer, if the transaction knows better than
    /// `writes.retry_after` (the `Retry-After` of its 503).
    pub retry_after: Option<Duration>,
    /// The W3C trace the write ran in (32 hex digits).
    pub trace_id: Option<String>,
}

impl Outcome {
    /// Whether any node refused the write deterministically.
    pub fn any_rejected(&self) -> bool {
        self.nodes.iter().any(|n| n.outcome == Class::Rejected)
    }

    /// One-line per-node summary for logs, each node's last status (or `error`, or `-` when
    /// never sent) and its attempts, and the undo if one ran:
    /// `node-1=201x1(undone) node-2=500x4 node-3=errorx3`.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for n in &self.nodes {
            if !s.is_empty() {
                s.push(' ');
            }
            let what = match (n.status, &n.error) {
                (Some(st), _) => st.to_string(),
                (None, Some(_)) => "error".into(),
                (None, None) => "-".into(),
            };
            s.push_str(&format!("{}={}x{}", n.node, what, n.attempts));
            if let Some(c) = &n.compensation {
                s.push_str(match c.outcome {
                    CompOutcome::Undone => "(undone)",
                    CompOutcome::Failed => "(undo-failed)",
                });
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_table() {
        assert_eq!(classify(201, &[400]), Class::Applied);
        assert_eq!(classify(400, &[400]), Class::Already);
        assert_eq!(classify(400, &[]), Class::Rejected);
        assert_eq!(classify(422, &[404]), Class::Rejected);
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(s, &[404]), Class::Transient, "{s}");
        }
    }
}
