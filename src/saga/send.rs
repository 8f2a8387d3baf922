//! No blind re-send: the write to one node, retried, where an attempt whose outcome is unknown
//! (a timeout, a cut connection, a 5xx other than 503) is followed by another only when that
//! cannot apply the write twice — the route declares it idempotent, or a read of the resource
//! shows this write did not land.

use super::attempt::{Call, CallLimits, CallResult, call_with_retries};
use super::readback::read_state;
use crate::journal::record::VerifyPlan;
use crate::retry::Backoff;
use crate::runtime::Runtime;
use crate::txn::evidence::{ReadBack, State};
use http::HeaderMap;
use tokio::time::Instant;

/// Sends `call` under `policy`; after an attempt that halted it (see [`Call::resend`]) reads
/// the resource with `check` and sends again only if the node is still in the prior state,
/// within what is left of the policy's attempts and deadline. Otherwise the ambiguous result
/// stands, for the judgement's read-back to decide.
pub(super) async fn send_write(
    rt: &Runtime,
    call: &Call<'_>,
    policy: &Backoff,
    limits: CallLimits,
    check: Option<&VerifyPlan>,
    headers: &HeaderMap,
) -> CallResult {
    let started = Instant::now();
    let mut r = call_with_retries(call, policy, limits).await;
    while r.halted {
        let Some(check) = check else { return r };
        let Some(left) = remaining(policy, r.attempts, started.elapsed()) else {
            return r;
        };
        let read = read_state(rt, call.node, check, headers).await;
        if read.read_back != ReadBack::Is(State::Prior) {
            return r;
        }
        tracing::debug!(node = %call.node.name(), "read back in the prior state after an ambiguous attempt: sending the write again");
        let next = call_with_retries(call, &left, limits).await;
        r = CallResult {
            attempts: r.attempts + next.attempts,
            ambiguous: r.ambiguous || next.ambiguous,
            ..next
        };
    }
    r
}

/// What is left of `policy` after `used` attempts and `elapsed` time; `None` when nothing is.
fn remaining(policy: &Backoff, used: u32, elapsed: std::time::Duration) -> Option<Backoff> {
    let attempts = policy.attempts.checked_sub(used).filter(|&n| n > 0)?;
    let deadline = policy
        .deadline
        .checked_sub(elapsed)
        .filter(|d| !d.is_zero())?;
    Some(Backoff {
        attempts,
        deadline,
        ..policy.clone()
    })
}
