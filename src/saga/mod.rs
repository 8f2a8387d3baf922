//! The saga: one write, replicated to every node, retried, and undone where it applied when it
//! cannot be applied everywhere.
//!
//! **The invariant: an undo never destroys what was there before.** dtc runs an undo on a node
//! only when it knows the write changed that node and what the node held before (its own answer,
//! a read of the resource, a journaled pre-image, or the state the other nodes show). "May have
//! applied" — a 5xx, a cut connection, no answer recorded — is not knowledge: where the journal
//! cannot tell, dtc reads the nodes before it acts, and where the nodes cannot tell either it
//! undoes nothing there and ends the write `failed` (fenced, listed, alerted). One decision
//! ([`crate::txn::evidence::judge`]) over one evidence type
//! ([`crate::txn::evidence::NodeEvidence`]) serves the live
//! path (`judge`, [`decide`](mod@decide)), startup recovery, the re-drive and the late-write check
//! ([`recover`]).
//!
//! [`Coordinator::execute`] runs one transaction through these steps (`run` calls them in
//! order; each is a module, and none calls another or back up):
//! 1. `idem`: a client's repeated idempotency key is answered, or waits for the write it repeats;
//! 2. `admit`: match a route, resolve the resource key, wait for earlier writes to that key; no
//!    fence on it; fail fast (touching nothing) when a node is known down; `ids`: a resource
//!    named by a mapped id gets each node's own id (`mapped`), used by every later step;
//! 3. `prepare`: with `[cluster]` the key's lease; each node's pre-image when the route takes
//!    snapshots; the journaled intent;
//! 4. `send`: the write to every node at once; retry transient failures per node ([`attempt`]),
//!    never re-sending blindly after an ambiguous attempt;
//! 5. `judge`: read the resource back ([`readback`]) on nodes whose answer leaves their state
//!    open, and judge ([`crate::txn::evidence`]);
//! 6. `conclude`: decide ([`decide`](mod@decide)): every node in the target state →
//!    `succeeded`; nothing applied → `rejected` or `to_be_retried`; partial → undo where the
//!    evidence shows the write landed ([`undo`]) → `rolled_back`, or `failed` when an undo does
//!    not converge or a node cannot be judged;
//! 7. `ids`: a create's node ids journaled with its canonical id (docs/ids.md), the answer in
//!    canonical ids; `end`: the durable end record, then the outcome, its log line and metrics.
//!
//! Below the steps sit what they share: `write` (the transaction a step gets), `deps` (the
//! coordinator's parts), and the leaves the live path and recovery both use — [`undo`] (plans
//! and running them), [`readback`] (reading a node's state, judging a pre-image), [`attempt`].
//! Recovery ([`recover`], [`redrive`], [`takeover`]) calls those leaves, never a live step.

mod admit;
pub(crate) mod attempt;
mod conclude;
mod coordinator;
pub(crate) mod decide;
mod deps;
mod end;
mod idem;
mod ids;
mod judge;
pub(crate) mod locks;
mod mapped;
mod prepare;
pub(crate) mod readback;
pub(crate) mod recover;
pub(crate) mod redrive;
mod run;
mod send;
mod submit;
pub(crate) mod takeover;
pub(crate) mod txns;
pub(crate) mod undo;
mod write;

pub use crate::txn::{
    Class, CompOutcome, CompReport, NodeReport, NodeResponse, Outcome, Reason, TxnState,
};
pub use coordinator::Coordinator;
pub use decide::{Decision, decide};
pub use deps::new_txn_id;
pub use submit::{Look, Looked, NodeWrite, Remap, Submission, SubmitError, Submitted};
pub use write::WriteRequest;
