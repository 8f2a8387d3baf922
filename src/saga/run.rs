//! One write, start to end, in step order: each step is a module below this one, and none of
//! them calls another or back up here (`tests/layers.rs` checks it).
//!
//! 1. [`idem`]: the client's idempotency key — a repeat is answered, a concurrent one waits;
//! 2. [`admit`]: the route, the resource key's turn, no fence, no node known down; [`ids`]:
//!    each node's own id of a resource named by a mapped id (with `[cluster]`, under the key's
//!    lease);
//! 3. [`prepare`]: the key's lease, the pre-images, the journaled intent;
//! 4. [`send`]: the write to every node at once, retried, never re-sent blindly;
//! 5. [`judge`]: the answers, pre-images and read-backs as evidence, judged;
//! 6. [`conclude`]: the decision, the undo where the evidence shows the write landed;
//! 7. [`ids`]: a create's ids journaled, a deleted resource unmapped, the answer in canonical
//!    ids; [`end`]: the durable end record, then the outcome.

use super::admit::admit;
use super::conclude::{Concluded, conclude};
use super::deps::Deps;
use super::end::end;
use super::idem;
use super::ids;
use super::judge::judge;
use super::prepare::{Prepared, prepare};
use super::send::send_all;
use super::write::{Planner, Txn, WriteAll};
use crate::journal::shared::lease::under;
use crate::txn::outcome::Outcome;

/// Runs transaction `t` through every step; an early step's `Err` is the answer.
pub(super) async fn run(d: &Deps, t: &Txn<'_>) -> Outcome {
    let _idem_turn = match idem::turn(d, t).await {
        Ok(turn) => turn,
        Err(answered) => return answered,
    };
    let key_turn = match admit(d, t).await {
        Ok(turn) => turn,
        Err(refused) => return refused,
    };
    if let Some(refused) = ids::map_request(d, t).await {
        return refused;
    }
    let journaled = key_turn.window().is_some();
    let Prepared { snapshots, pre } = match prepare(d, t, journaled).await {
        Ok(prepared) => prepared,
        Err(refused) => return refused,
    };
    let planner = Planner {
        t,
        snapshots: &snapshots,
    };
    // With `[cluster]`, what follows runs under the key's lease the intent took.
    let hold = d.journal.as_ref().and_then(|j| j.hold(&t.id));
    let WriteAll(results, plans, journaled) =
        under(hold.clone(), send_all(d, t, &planner, &pre)).await;
    let judged = under(hold.clone(), judge(d, t, &results, &plans, &snapshots)).await;
    let concluded = Concluded {
        results: &results,
        judged,
        plans,
        journaled,
        hold,
    };
    let (state, reason, answer, reports) = conclude(t, concluded).await;
    let (state, reason, answer) = ids::settle(d, t, &results, (state, reason, answer)).await;
    end(d, t, state, reason, reports, answer, key_turn).await
}
