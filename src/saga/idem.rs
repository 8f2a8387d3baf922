//! Clients' `Idempotency-Key`s mean what clients expect (Stripe's semantics): dtc owns the key,
//! the nodes never see it.
//!
//! | the key is…                                   | a request with it                          |
//! |-----------------------------------------------|--------------------------------------------|
//! | unknown (or older than `idempotency.window`)  | runs as a new transaction, bound to the key |
//! | bound, with another method, path or body      | 422, nothing touched                       |
//! | bound to a write still running here           | waits for it, then as below                |
//! | bound to a write running on another sidecar   | 409, retryable, nothing touched            |
//! | bound to `succeeded`, or `rejected` by the nodes | the first answer again, nothing touched  |
//! | bound to `failed` (not resolved)              | that transaction's answer as it stands now |
//! | bound to `rolled_back`, `to_be_retried`, a refusal that touched no node, or a resolved `failed` | runs as a new transaction |
//!
//! The nodes get a key of each transaction's own ([`Txn::start`] derives it): a node that cached
//! the answer of a write dtc later undid must not answer the retry from that cache without
//! applying it.
//!
//! The first step of a write ([`turn`]).

use super::deps::Deps;
use super::end::{finish, refused};
use super::locks::KeyGuard;
use super::write::Txn;
use crate::journal::idem::Remembered;
use crate::txn::outcome::{NodeResponse, Outcome, Reason, TxnState};

/// What a remembered key makes of a request that matches it.
enum Rule {
    /// Answer as the bound transaction stands.
    Replay,
    /// The bound transaction is in flight on another sidecar.
    InProgress,
    /// Run a new transaction.
    Fresh,
}

fn rule(r: &Remembered) -> Rule {
    let untouched = matches!(
        r.reason,
        Some(
            Reason::Fenced(_)
                | Reason::KeyBusy(_)
                | Reason::NoRoute
                | Reason::NodeDown(_)
                | Reason::SnapshotFailed(_)
                | Reason::JournalUnavailable(_)
        )
    );
    match r.state {
        TxnState::InDoubt => Rule::InProgress,
        // A success whose answer was too large to keep runs again: the nodes' "already"
        // answers make it converge.
        TxnState::Succeeded if r.answer.is_none() && r.reason.is_none() => Rule::Fresh,
        TxnState::Succeeded => Rule::Replay,
        TxnState::Rejected if untouched => Rule::Fresh,
        TxnState::Rejected => Rule::Replay,
        TxnState::Failed if !r.resolved => Rule::Replay,
        TxnState::Failed | TxnState::RolledBack | TxnState::ToBeRetried => Rule::Fresh,
    }
}

/// The idempotency key's part of admission: `Ok` to run the write (holding the key's turn
/// until it ends, so a concurrent retry waits for it), `Err` with the answer that needs no
/// transaction.
pub(super) async fn turn(d: &Deps, t: &Txn<'_>) -> Result<Option<KeyGuard>, Outcome> {
    let (Some(idem), Some(journal)) = (&t.idem, &d.journal) else {
        return Ok(None);
    };
    let turn = d.idem_locks.lock(&idem.key).await;
    let r = match journal.idempotency_key(&idem.key).await {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(Some(turn)),
        // The store cannot say what the key is bound to: nothing is sent.
        Err(e) => return Err(refused(d, t, e)),
    };
    if r.fingerprint != idem.fingerprint {
        d.metrics.idempotency(Err(true));
        tracing::info!(txn = %t.id, key = %idem.key, bound_to = %r.txn, "idempotency key reused with another request: refused");
        return Err(bare(t, TxnState::Rejected, Reason::KeyReused(r.txn)));
    }
    match rule(&r) {
        Rule::Fresh => Ok(Some(turn)),
        Rule::InProgress => {
            d.metrics.idempotency(Err(false));
            Err(bare(t, TxnState::ToBeRetried, Reason::KeyInProgress(r.txn)))
        }
        Rule::Replay => {
            d.metrics.idempotency(Ok(()));
            tracing::info!(txn = %r.txn, key = %idem.key, state = %r.state, "idempotency key seen again: the first answer replayed, no node touched");
            Err(replay(t, r))
        }
    }
}

/// An answer that is no transaction: not journaled, so it binds no key.
fn bare(t: &Txn<'_>, state: TxnState, reason: Reason) -> Outcome {
    finish(t, state, Some(reason), Vec::new(), None)
}

fn replay(t: &Txn<'_>, r: Remembered) -> Outcome {
    let response = r.answer.map(|a| {
        let mut headers = http::HeaderMap::new();
        for (k, v) in &a.headers {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                headers.append(k, v);
            }
        }
        NodeResponse {
            status: http::StatusCode::from_u16(a.status).unwrap_or(http::StatusCode::OK),
            headers,
            body: a.body.bytes(),
        }
    });
    Outcome {
        txn: r.txn,
        state: r.state,
        reason: r.reason,
        generation: r.generation,
        route: r.route,
        key: r.resource,
        nodes: r.nodes,
        response,
        elapsed: t.started.elapsed(),
        replayed: true,
        retry_after: None,
        trace_id: None,
    }
}
