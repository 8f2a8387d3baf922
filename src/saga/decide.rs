//! The live path's decision: the nodes' final answers (and, where they are ambiguous, a read
//! of the resource) as [`evidence`](crate::txn::evidence), judged, then mapped to what the client is
//! told.

use super::attempt::CallResult;
use crate::txn::evidence::{End, Judgement, NodeEvidence};
use crate::txn::outcome::Class;

/// What the write phase decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Every node holds the write; the index of the node whose answer goes to the client.
    Succeeded(usize),
    /// No node confirmed the write, yet every node is in its target state: nothing is undone
    /// and the client is told so.
    TargetStateHolds,
    /// Nothing applied, some node refused; `Some(i)` when all refused alike (pass node i's answer).
    Rejected(Option<usize>),
    /// Nothing applied, some node failed transiently.
    ToBeRetried,
    /// The write changed some nodes and not all: undo where the judgement says so.
    Compensate,
    /// Some node cannot be judged: undo only where the judgement says so, end `failed`.
    Unresolved,
}

/// Whether a node's answer leaves open that it applied the write: it did, or an attempt may have.
pub(crate) fn touched(r: &CallResult) -> bool {
    r.class == Class::Applied || r.ambiguous
}

/// Whether every node's answer says it holds the target state: no evidence beyond the answers
/// is needed.
pub(crate) fn all_converged(results: &[CallResult]) -> bool {
    results
        .iter()
        .all(|r| matches!(r.class, Class::Applied | Class::Already))
}

/// Each node's answer as evidence; `undo_known[i]` when node i's undo can be built.
pub(crate) fn answers(results: &[CallResult], undo_known: &[bool]) -> Vec<NodeEvidence> {
    results
        .iter()
        .zip(undo_known)
        .map(|(r, &u)| NodeEvidence::answered(r.class, r.ambiguous, u))
        .collect()
}

/// What the client is told, from the answers and the judgement over all the evidence.
pub fn decide(results: &[CallResult], j: &Judgement) -> Decision {
    match j.end {
        End::Complete => {
            let confirmed = |c: Class| results.iter().position(|r| r.class == c);
            match confirmed(Class::Applied).or_else(|| confirmed(Class::Already)) {
                Some(i) => Decision::Succeeded(i),
                None => Decision::TargetStateHolds,
            }
        }
        End::RollBack => Decision::Compensate,
        End::Failed => Decision::Unresolved,
        End::Unchanged if results.iter().any(|r| r.class == Class::Transient) => {
            Decision::ToBeRetried
        }
        End::Unchanged => {
            let first = results.iter().position(|r| r.class == Class::Rejected);
            let all_same = first.is_some_and(|f| {
                results
                    .iter()
                    .all(|r| r.class == Class::Rejected && r.status() == results[f].status())
            });
            Decision::Rejected(if all_same { first } else { None })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::evidence::{ReadBack, State, judge};
    use crate::txn::outcome::NodeResponse;
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
            in_flight: ambiguous,
            halted: false,
        }
    }

    fn refused() -> CallResult {
        CallResult {
            class: Class::Transient,
            answer: Err(SendError::Connect("refused".into())),
            attempts: 4,
            ambiguous: false,
            in_flight: false,
            halted: false,
        }
    }

    fn on_answers(results: &[CallResult]) -> Decision {
        let ev = answers(results, &vec![true; results.len()]);
        decide(results, &judge(&ev))
    }

    #[test]
    fn each_row_of_the_table() {
        use Class::*;
        let applied = || answered(Applied, 201, false);
        let already = || answered(Already, 400, false);
        assert_eq!(
            on_answers(&[already(), applied(), applied()]),
            Decision::Succeeded(1),
            "a node that applied answers"
        );
        assert_eq!(on_answers(&[already(), already()]), Decision::Succeeded(0));
        let r422 = || answered(Rejected, 422, false);
        assert_eq!(on_answers(&[r422(), r422()]), Decision::Rejected(Some(0)));
        assert_eq!(
            on_answers(&[r422(), answered(Rejected, 409, false)]),
            Decision::Rejected(None)
        );
        assert_eq!(
            on_answers(&[already(), refused()]),
            Decision::ToBeRetried,
            "nothing applied"
        );
        assert_eq!(on_answers(&[applied(), refused()]), Decision::Compensate);
        assert_eq!(on_answers(&[applied(), r422()]), Decision::Compensate);
        // A 500 may follow an apply: with another node applying, it is undone too (its prior
        // state is the one the applying node left).
        assert_eq!(
            on_answers(&[applied(), answered(Transient, 500, true)]),
            Decision::Compensate
        );
        // A node that said "already" at once shows the resource was there before: a 500
        // elsewhere changed nothing, and nothing is undone.
        assert_eq!(
            on_answers(&[already(), answered(Transient, 500, true)]),
            Decision::ToBeRetried
        );
        // Every node answered 500: without a read nothing can be judged, so nothing is undone.
        let e500 = || answered(Transient, 500, true);
        assert_eq!(on_answers(&[e500(), e500()]), Decision::Unresolved);
    }

    #[test]
    fn a_read_back_settles_what_the_answers_leave_open() {
        let e500 = || answered(Class::Transient, 500, true);
        let results = [e500(), e500(), e500()];
        let mut ev = answers(&results, &[true; 3]);
        for e in &mut ev {
            e.read_back = ReadBack::Is(State::Target);
        }
        assert_eq!(
            decide(&results, &judge(&ev)),
            Decision::TargetStateHolds,
            "every node holds the resource: nothing undone, the client told so"
        );
        for e in &mut ev {
            e.read_back = ReadBack::Is(State::Prior);
        }
        assert_eq!(decide(&results, &judge(&ev)), Decision::ToBeRetried);
    }
}
