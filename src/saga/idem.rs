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
//! The nodes get a key of each transaction's own ([`node_key`]): a node that cached the answer
//! of a write dtc later undid must not answer the retry from that cache without applying it.

use super::Coordinator;
use super::locks::KeyGuard;
use super::run::{Txn, WriteRequest};
use crate::headers;
use crate::journal::idem::Remembered;
use crate::journal::record::IdemKey;
use crate::txn::outcome::{NodeResponse, Outcome, Reason, TxnState};
use sha2::{Digest, Sha256};

/// The client's key, if it sent one (a value that is not visible ASCII is no key).
pub(super) fn client_key(req: &WriteRequest) -> Option<String> {
    let v = req.headers.get(headers::IDEMPOTENCY_KEY)?.to_str().ok()?;
    let v = v.trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// The key and the request it came with: method, the path's normal form, the query, the body.
pub(super) fn bind(req: &WriteRequest, normal_path: &str) -> Option<IdemKey> {
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
pub(super) fn node_key(txn: &str, client: Option<&IdemKey>) -> String {
    match client {
        Some(k) => format!("{txn}-{}", hex(&Sha256::digest(k.key.as_bytes())[..8])),
        None => txn.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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

impl Coordinator {
    /// The idempotency key's part of admission: `Ok` to run the write (holding the key's turn
    /// until it ends, so a concurrent retry waits for it), `Err` with the answer that needs no
    /// transaction.
    pub(super) async fn idempotency(&self, t: &Txn<'_>) -> Result<Option<KeyGuard>, Outcome> {
        let (Some(idem), Some(journal)) = (&t.idem, &self.journal) else {
            return Ok(None);
        };
        let turn = self.idem_locks.lock(&idem.key).await;
        let Some(r) = journal.idempotency_key(&idem.key) else {
            return Ok(Some(turn));
        };
        if r.fingerprint != idem.fingerprint {
            self.metrics.idempotency(Err(true));
            tracing::info!(txn = %t.id, key = %idem.key, bound_to = %r.txn, "idempotency key reused with another request: refused");
            return Err(self.bare(t, TxnState::Rejected, Reason::KeyReused(r.txn)));
        }
        match rule(&r) {
            Rule::Fresh => Ok(Some(turn)),
            Rule::InProgress => {
                self.metrics.idempotency(Err(false));
                Err(self.bare(t, TxnState::ToBeRetried, Reason::KeyInProgress(r.txn)))
            }
            Rule::Replay => {
                self.metrics.idempotency(Ok(()));
                tracing::info!(txn = %r.txn, key = %idem.key, state = %r.state, "idempotency key seen again: the first answer replayed, no node touched");
                Err(replay(t, r))
            }
        }
    }

    /// An answer that is no transaction: not journaled, so it binds no key.
    fn bare(&self, t: &Txn<'_>, state: TxnState, reason: Reason) -> Outcome {
        super::finish::finish(t, state, Some(reason), Vec::new(), None)
    }
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
