//! The stricter model of a key's history under crashes: the set of states the key may be in.
//! A write the client learned the outcome of moves it there (or leaves it); a write whose
//! outcome the client never learned adds the write's target state, nothing else; a write to the
//! key's own current state therefore leaves it where it was, whatever happens.

use super::Answer;
use std::collections::BTreeSet;

/// What one client write came to, as the client saw it.
pub enum Seen<'a> {
    /// dtc never got the request (connection refused).
    NotSent,
    /// No answer (dtc died mid-request).
    NoAnswer,
    Answered(&'a Answer),
}

/// One key's possible states (for groups `true`: present; for items the value held, `None`:
/// absent) and its history, for failure messages.
pub struct Key<S = bool> {
    pub possible: BTreeSet<S>,
    pub history: Vec<String>,
    /// Writes sent while the key was known to be in their target state already.
    pub redundant: usize,
}

impl Key<bool> {
    /// A group known to be absent.
    pub fn absent() -> Key<bool> {
        Key::known(false)
    }
}

impl<S: Ord + Clone + std::fmt::Debug> Key<S> {
    /// A key known to be in `state`.
    pub fn known(state: S) -> Key<S> {
        Key {
            possible: [state].into(),
            history: Vec::new(),
            redundant: 0,
        }
    }

    /// Folds one write whose target state is `target` into the model; returns the state name.
    pub fn write(&mut self, target: S, seen: Seen<'_>) -> String {
        if self.possible == BTreeSet::from([target.clone()]) {
            self.redundant += 1;
        }
        let state = match seen {
            Seen::NotSent => "not_sent".to_string(),
            Seen::NoAnswer => {
                self.possible.insert(target.clone());
                "no_answer".to_string()
            }
            Seen::Answered(a) => {
                let state = a.state().to_string();
                let body = a.text();
                match state.as_str() {
                    // 2xx, or the "already" status passed through: the target holds everywhere.
                    "succeeded" => self.possible = [target.clone()].into(),
                    // Not confirmed by any node, yet read back in the target state everywhere.
                    "rejected" if body.contains("every node already holds its target state") => {
                        self.possible = [target.clone()].into()
                    }
                    "rejected" | "to_be_retried" | "rolled_back" => {}
                    // The nodes may differ until the re-drive decides it: either state.
                    "failed" => {
                        self.possible.insert(target.clone());
                    }
                    other => panic!("unexpected state {other:?}: {} {body}", a.status()),
                }
                state
            }
        };
        self.history.push(format!(
            "to {target:?} -> {state} (possible now {:?})",
            self.possible
        ));
        state
    }
}
