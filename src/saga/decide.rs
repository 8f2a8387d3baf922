//! The decision table: what the nodes' final answers make of a transaction.

use super::attempt::CallResult;
use super::outcome::Class;

/// What the write phase decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Every node converged; the index of the node whose answer goes to the client.
    Succeeded(usize),
    /// Nothing applied, some node refused; `Some(i)` when all refused alike (pass node i's answer).
    Rejected(Option<usize>),
    /// Nothing applied, some node failed transiently.
    ToBeRetried,
    /// Some node applied it (or may have) and some did not converge: undo.
    Compensate,
}

/// Whether a node's answer leaves open that it applied the write: it did, or an attempt may have.
pub(crate) fn touched(r: &CallResult) -> bool {
    r.class == Class::Applied || r.ambiguous
}

/// Which nodes the write may have changed, judged across all nodes: the nodes that need undoing
/// if the transaction rolls back.
///
/// A node that may have applied the write (a 5xx, no answer) and then says "already" could be
/// in the target state because of this write, or since before it. dtc keeps the nodes alike, so
/// the other nodes tell which: when some node said "already" at its first answer and none
/// applied the write, every node was already in the target state and the write changed none of
/// them — undoing would destroy what was there before. Otherwise every node that may have
/// applied it is undone (the undo's own "already" status makes that safe).
pub fn changed_nodes(results: &[CallResult]) -> Vec<bool> {
    let was_already_there = results
        .iter()
        .any(|r| r.class == Class::Already && !r.ambiguous)
        && !results.iter().any(|r| r.class == Class::Applied);
    results
        .iter()
        .map(|r| touched(r) && !was_already_there)
        .collect()
}

/// The decision table over the nodes' final results.
pub fn decide(results: &[CallResult]) -> Decision {
    let converged = |r: &CallResult| matches!(r.class, Class::Applied | Class::Already);
    if results.iter().all(converged) {
        let pick = results
            .iter()
            .position(|r| r.class == Class::Applied)
            .unwrap_or(0);
        return Decision::Succeeded(pick);
    }
    if changed_nodes(results).into_iter().any(|c| c) {
        return Decision::Compensate;
    }
    if results.iter().any(|r| r.class == Class::Transient) {
        return Decision::ToBeRetried;
    }
    let first = results.iter().position(|r| r.class == Class::Rejected);
    let all_same = first.is_some_and(|f| {
        results
            .iter()
            .all(|r| r.class == Class::Rejected && r.status() == results[f].status())
    });
    Decision::Rejected(if all_same { first } else { None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saga::outcome::NodeResponse;
    use crate::upstream::SendError;
    use http::{HeaderMap, StatusCode};

    fn answered(class: Class, status: u16, ambiguous: bool) -> CallResult {
        let resp = NodeResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: Default::default(),
        };
        CallResult {
            class,
            answer: Ok(resp),
            attempts: 1,
            ambiguous,
        }
    }

    fn refused() -> CallResult {
        CallResult {
            class: Class::Transient,
            answer: Err(SendError::Connect("refused".into())),
            attempts: 4,
            ambiguous: false,
        }
    }

    #[test]
    fn each_row_of_the_table() {
        use Class::*;
        let applied = || answered(Applied, 201, false);
        let already = || answered(Already, 400, false);
        assert_eq!(
            decide(&[already(), applied(), applied()]),
            Decision::Succeeded(1),
            "a node that applied answers"
        );
        assert_eq!(decide(&[already(), already()]), Decision::Succeeded(0));
        assert_eq!(
            decide(&[
                answered(Rejected, 422, false),
                answered(Rejected, 422, false)
            ]),
            Decision::Rejected(Some(0))
        );
        assert_eq!(
            decide(&[
                answered(Rejected, 422, false),
                answered(Rejected, 409, false)
            ]),
            Decision::Rejected(None)
        );
        assert_eq!(
            decide(&[already(), refused()]),
            Decision::ToBeRetried,
            "nothing applied"
        );
        assert_eq!(decide(&[applied(), refused()]), Decision::Compensate);
        assert_eq!(
            decide(&[applied(), answered(Rejected, 422, false)]),
            Decision::Compensate
        );
        // A 500 may follow an apply: with another node applying, it is undone too.
        assert_eq!(
            decide(&[applied(), answered(Transient, 500, true)]),
            Decision::Compensate
        );
        // But a node that said "already" at once shows the resource was there before: a 500
        // elsewhere changed nothing, and nothing is undone.
        assert_eq!(
            decide(&[already(), answered(Transient, 500, true)]),
            Decision::ToBeRetried
        );
        let late_already = answered(Already, 400, true);
        let stuck = answered(Transient, 500, true);
        assert_eq!(
            changed_nodes(&[already(), late_already, stuck]),
            vec![false; 3]
        );
        assert_eq!(
            changed_nodes(&[applied(), answered(Already, 400, true)]),
            vec![true, true]
        );
    }
}
