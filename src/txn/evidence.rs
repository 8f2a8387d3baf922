//! What dtc knows about one write on each node, and the one decision made from it: per node
//! undo, leave or unknown, and the transaction's end state.
//!
//! **The invariant:** dtc never runs an undo on a node unless it knows that undoing cannot
//! destroy what the node held before the write: the write changed that node and its prior state
//! is known, or the undo restores an exact pre-image. "May have applied" is not knowledge: a 5xx,
//! a cut connection and "no answer recorded" say nothing about the node's state; a read of the
//! resource does.
//!
//! The live write path, startup recovery, the background re-drive and the late-write check all
//! build a [`NodeEvidence`] per node and call [`judge`]. The judgement never guesses: where the
//! evidence cannot tell, the node is [`Verdict::Unknown`] and the transaction ends
//! [`End::Failed`] (fenced, listed, alerted) until better evidence comes.

use super::outcome::{Class, NodeReport, TxnState};

/// Whether a write may still land on a node after the transaction decided: no answer was
/// recorded for it, or *any* attempt may still be under way there (a timeout, a connection cut
/// after the request went out, a gateway's 502 or 504) — whatever later attempts said. A node
/// that timed out and then answered 503 may hold the first request in a queue and apply it
/// later. A node's own 500 is a finished request: it may have applied (the read-back and the
/// undo deal with that), but it will not land later, so it neither fences the key nor needs a
/// check. A record from before the distinction counts every unknown outcome. The one rule
/// behind the fence and the late-write check in the live path, recovery, the re-drive and
/// takeover.
pub(crate) fn may_land_later(report: Option<&NodeReport>) -> bool {
    report.is_none_or(|r| r.in_flight.unwrap_or(r.maybe_applied))
}

/// Whether a transaction that ended in `state` must be checked again later for writes landing
/// late on the nodes in `late` ([`may_land_later`]): it left them in their prior state (rolled
/// back, nothing applied, or refused), so a late write would be a silent divergence.
pub(crate) fn check_later(state: TxnState, late: &[usize]) -> bool {
    matches!(
        state,
        TxnState::RolledBack | TxnState::ToBeRetried | TxnState::Rejected
    ) && !late.is_empty()
}

/// The two states of a resource a write's read-back can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// As before the write (for a create: absent; for a delete: present).
    Prior,
    /// As the write makes it (for a create: present; for a delete: absent).
    Target,
}

/// The node's answer to the write, as far as it is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// No answer recorded (dtc stopped while the write was in flight): no evidence at all.
    Unrecorded,
    /// The write was never sent to this node.
    NotSent,
    /// The final answer's class; `ambiguous` when some attempt may have applied the write
    /// without saying so (a 5xx other than 503, a connection cut after the request went out).
    Answered { class: Class, ambiguous: bool },
}

/// A pre-image of the node read before the write and journaled with the intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PreImage {
    /// None was read.
    None,
    /// Read, and the route's read-back classifies it: the node's prior state, exactly.
    Known(State),
    /// Read, and the undo puts back exactly this representation (or its absence), so it is
    /// safe whatever the write did. `Some(state)` when the route's read-back classifies it.
    Restores(Option<State>),
}

/// A read of the resource on the node, taken after the write's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadBack {
    /// Not taken (the answers sufficed, or the route declares no read-back).
    NotTaken,
    /// The node is in this state now.
    Is(State),
    /// The node answered a status that is neither state's, or could not be read.
    Unclear,
}

/// Everything known about one node of one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeEvidence {
    pub answer: Answer,
    pub pre_image: PreImage,
    /// An undo already converged here (its answer showed the prior state).
    pub undone: bool,
    pub read_back: ReadBack,
    /// Whether an undo request for this node can be built (its plan is known).
    pub undo_known: bool,
}

impl NodeEvidence {
    /// Evidence from a node's answer alone.
    pub(crate) fn answered(class: Class, ambiguous: bool, undo_known: bool) -> NodeEvidence {
        NodeEvidence {
            answer: Answer::Answered { class, ambiguous },
            pre_image: PreImage::None,
            undone: false,
            read_back: ReadBack::NotTaken,
            undo_known,
        }
    }

    /// The state the node is in now, where something observed it.
    pub(crate) fn now(&self) -> Option<State> {
        match (self.read_back, self.undone, self.answer) {
            (ReadBack::Is(s), _, _) => Some(s),
            (_, true, _) => Some(State::Prior),
            (
                _,
                _,
                Answer::Answered {
                    class: Class::Applied | Class::Already,
                    ..
                },
            ) => Some(State::Target),
            _ => None,
        }
    }

    /// Whether the write certainly did not apply here (a refusal, a 503, a refused connection).
    fn not_applied(&self) -> bool {
        match self.answer {
            Answer::NotSent => true,
            Answer::Answered { class, ambiguous } => {
                !ambiguous && matches!(class, Class::Rejected | Class::Transient | Class::NotSent)
            }
            Answer::Unrecorded => false,
        }
    }

    /// The node's state before the write, from its own evidence only.
    fn own_prior(&self) -> Option<State> {
        if let PreImage::Known(s) | PreImage::Restores(Some(s)) = self.pre_image {
            return Some(s);
        }
        match self.answer {
            // A success means this write moved it from the prior state.
            Answer::Answered {
                class: Class::Applied,
                ..
            } => return Some(State::Prior),
            Answer::Answered {
                class: Class::Already,
                ambiguous: false,
            } => return Some(State::Target),
            _ => {}
        }
        if self.undone {
            return None;
        }
        match self.now() {
            // A write only moves a node towards the target: prior now was prior before.
            Some(State::Prior) => Some(State::Prior),
            Some(s) if self.not_applied() => Some(s),
            _ => None,
        }
    }

    /// Whether a read of the resource would tell something the answer does not: nothing
    /// observed the node's state, and the write may have changed it.
    pub(crate) fn needs_read_back(&self) -> bool {
        self.read_back == ReadBack::NotTaken && self.now().is_none() && !self.not_applied()
    }
}

/// What to do on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The write (may have) changed it and its prior state is known: run the undo.
    Undo,
    /// Nothing to do: it is in its prior state, or was in the target state before the write.
    Leave,
    /// The evidence cannot tell whether an undo would destroy what was there: do nothing.
    Unknown,
}

/// Where the transaction ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Every node is observed in the target state: the write is complete everywhere.
    Complete,
    /// No node needs an undo and not every node is known to hold the write: nothing of this
    /// write is left to take back.
    Unchanged,
    /// Undo where [`Verdict::Undo`]; then every node is back in its prior state.
    RollBack,
    /// Some node is [`Verdict::Unknown`]: the transaction fails (fenced, listed, alerted);
    /// the known undos still run.
    Failed,
}

/// The decision over a whole transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judgement {
    pub nodes: Vec<Verdict>,
    pub end: End,
    /// Per node, the state the decision leaves it in (`None`: not known).
    pub expect: Vec<Option<State>>,
    /// Per node, the state observed now (`None`: not observed).
    pub now: Vec<Option<State>>,
    /// Nodes whose own evidence shows a state before the write other than the one the key's
    /// last acknowledged write left (a node that lost data, or was written behind dtc's back).
    pub diverged: Vec<usize>,
    /// The key's last acknowledged state, in this write's terms, when known.
    pub history: Option<State>,
}

impl Judgement {
    /// Nodes left alone yet observed in a state other than the one the decision chose for them.
    pub fn divergent(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i] == Verdict::Leave)
            .filter(|&i| matches!((self.now[i], self.expect[i]), (Some(n), Some(e)) if n != e))
            .collect()
    }

    /// Diverged nodes ([`Judgement::diverged`]) the decision leaves out of line with the key's
    /// last acknowledged state: the nodes differ, and the transaction must say so.
    pub fn still_diverged(&self) -> Vec<usize> {
        self.diverged
            .iter()
            .copied()
            .filter(|&i| self.expect[i] != self.history)
            .collect()
    }

    /// Diverged nodes this write brought back in line.
    pub fn realigned(&self) -> Vec<usize> {
        self.diverged
            .iter()
            .copied()
            .filter(|&i| self.expect[i] == self.history)
            .collect()
    }

    /// Whether every node is observed in the state the decision chose and nothing is left to do.
    pub fn settled(&self) -> bool {
        self.nodes.iter().all(|v| *v == Verdict::Leave)
            && (0..self.nodes.len()).all(|i| self.now[i].is_some() && self.now[i] == self.expect[i])
    }
}

/// The prior state of every node: its own evidence; where it has none, what the key's last
/// acknowledged write left (`history`: what dtc knows outranks what it infers); else the state
/// every node with evidence agrees on (dtc keeps nodes alike: a key whose nodes may differ is
/// fenced, so before a write its nodes held the same state). Disagreeing evidence infers nothing.
fn priors(own: &[Option<State>], history: Option<State>) -> Vec<Option<State>> {
    let mut known = own.iter().flatten();
    let shared = match known.next() {
        Some(&first) if known.all(|&s| s == first) => Some(first),
        _ => None,
    };
    own.iter().map(|s| s.or(history).or(shared)).collect()
}

/// The one decision: per node undo / leave / unknown, and the end state.
pub(crate) fn judge(ev: &[NodeEvidence]) -> Judgement {
    judge_with(ev, None)
}

/// [`judge`], knowing the state the key's last acknowledged write left (`history`, in the terms
/// of this write: [`State::Prior`] or [`State::Target`]). A node is never undone into a state
/// other than that one: a node already in it is left alone, whatever its answer said.
pub(crate) fn judge_with(ev: &[NodeEvidence], history: Option<State>) -> Judgement {
    let own: Vec<Option<State>> = ev.iter().map(NodeEvidence::own_prior).collect();
    let diverged: Vec<usize> = match history {
        Some(h) => (0..ev.len())
            .filter(|&i| own[i].is_some_and(|p| p != h))
            .collect(),
        None => Vec::new(),
    };
    let prior = priors(&own, history);
    let now: Vec<Option<State>> = ev.iter().map(NodeEvidence::now).collect();
    if !ev.is_empty() && now.iter().all(|s| *s == Some(State::Target)) {
        return Judgement {
            nodes: vec![Verdict::Leave; ev.len()],
            end: End::Complete,
            expect: vec![Some(State::Target); ev.len()],
            now,
            diverged,
            history,
        };
    }
    let nodes: Vec<Verdict> = ev
        .iter()
        .zip(&prior)
        .zip(&now)
        .map(|((e, &prior), &now)| match history {
            Some(h) if now == Some(h) => Verdict::Leave,
            _ => verdict(e, prior, now),
        })
        .collect();
    let end = if nodes.contains(&Verdict::Unknown) {
        End::Failed
    } else if nodes.contains(&Verdict::Undo) {
        End::RollBack
    } else {
        End::Unchanged
    };
    let expect = nodes
        .iter()
        .zip(&prior)
        .zip(&now)
        .map(|((v, &prior), &now)| match v {
            Verdict::Undo => Some(State::Prior),
            Verdict::Leave if history.is_some() && now == history => now,
            Verdict::Leave => prior.or(now),
            Verdict::Unknown => None,
        })
        .collect();
    Judgement {
        nodes,
        end,
        expect,
        now,
        diverged,
        history,
    }
}

fn verdict(e: &NodeEvidence, prior: Option<State>, now: Option<State>) -> Verdict {
    let exact = matches!(e.pre_image, PreImage::Restores(_));
    match (now, prior) {
        (Some(State::Prior), _) => Verdict::Leave,
        // It held the target state before: the write changed nothing there.
        (_, Some(State::Target)) => Verdict::Leave,
        // Unchanged by the write: whatever it holds, it held before.
        _ if e.not_applied() => Verdict::Leave,
        (_, Some(State::Prior)) | (_, None) if exact && e.undo_known => Verdict::Undo,
        (_, Some(State::Prior)) if e.undo_known => Verdict::Undo,
        _ => Verdict::Unknown,
    }
}

#[cfg(test)]
mod tests;
