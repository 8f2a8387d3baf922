//! The decision table of [`super::judge`], one row per evidence case.

use super::*;
use Class::*;

fn ans(class: Class, ambiguous: bool) -> NodeEvidence {
    NodeEvidence::answered(class, ambiguous, true)
}

fn unrecorded() -> NodeEvidence {
    NodeEvidence {
        answer: Answer::Unrecorded,
        ..ans(Transient, true)
    }
}

fn read(mut e: NodeEvidence, r: ReadBack) -> NodeEvidence {
    e.read_back = r;
    e
}

fn target(e: NodeEvidence) -> NodeEvidence {
    read(e, ReadBack::Is(State::Target))
}

fn prior(e: NodeEvidence) -> NodeEvidence {
    read(e, ReadBack::Is(State::Prior))
}

use Verdict::{Leave, Undo, Unknown};

#[test]
fn every_node_holding_the_target_is_complete() {
    let j = judge(&[
        ans(Applied, false),
        ans(Already, false),
        ans(Applied, false),
    ]);
    assert_eq!(j.end, End::Complete);
    assert_eq!(j.nodes, vec![Leave; 3]);
    // An in-doubt create found on every node by the read-back: complete, nothing undone.
    let j = judge(&[
        target(unrecorded()),
        target(unrecorded()),
        target(unrecorded()),
    ]);
    assert_eq!(j.end, End::Complete);
    assert!(j.settled());
}

#[test]
fn a_redundant_write_answered_500_everywhere_is_never_undone() {
    // json-server: a create of an existing id answers 500 on every node. Without a read-back
    // nothing tells whether the write changed anything: unknown, never undone.
    let j = judge(&[
        ans(Transient, true),
        ans(Transient, true),
        ans(Transient, true),
    ]);
    assert_eq!(j.end, End::Failed);
    assert_eq!(j.nodes, vec![Unknown; 3]);
    // The read-back shows the resource everywhere: complete (it was there before, or the write
    // put it there; either way nothing is to be taken back).
    let j = judge(&[
        target(ans(Transient, true)),
        target(ans(Transient, true)),
        target(ans(Transient, true)),
    ]);
    assert_eq!((j.end, j.nodes.clone()), (End::Complete, vec![Leave; 3]));
}

#[test]
fn an_already_answer_shows_the_prior_state_of_every_node() {
    // One node said "already" at once: the nodes held the target before; a 500 elsewhere changed
    // nothing, and an unknown node is not undone.
    let j = judge(&[ans(Already, false), ans(Transient, true), unrecorded()]);
    assert_eq!(j.nodes, vec![Leave; 3]);
    assert_eq!(j.end, End::Unchanged);
}

#[test]
fn a_partial_write_is_undone_where_it_landed_or_may_have() {
    // a applied: the nodes were in the prior state before; c may have applied: undoing it
    // restores that prior state, so it is safe.
    let j = judge(&[
        ans(Applied, false),
        ans(Rejected, false),
        ans(Transient, true),
    ]);
    assert_eq!(j.nodes, vec![Undo, Leave, Undo]);
    assert_eq!(j.end, End::RollBack);
    // The read-back shows c never got it: left alone.
    let j = judge(&[
        ans(Applied, false),
        ans(Rejected, false),
        prior(ans(Transient, true)),
    ]);
    assert_eq!(j.nodes, vec![Undo, Leave, Leave]);
    // The read-back shows c holds it: every node in the target would be complete; b refused,
    // so the write rolls back on a and c.
    let j = judge(&[
        ans(Applied, false),
        ans(Rejected, false),
        target(ans(Transient, true)),
    ]);
    assert_eq!(j.nodes, vec![Undo, Leave, Undo]);
    // a and b applied, the read-back shows c holds it too: the write is complete everywhere.
    let j = judge(&[
        ans(Applied, false),
        target(ans(Transient, true)),
        ans(Applied, false),
    ]);
    assert_eq!(j.end, End::Complete, "every node holds it: complete");
}

#[test]
fn prior_states_that_disagree_infer_nothing() {
    // a says the target held before, b that the prior did: c, unknown, is not undone.
    let j = judge(&[ans(Already, false), ans(Applied, false), unrecorded()]);
    assert_eq!(j.nodes, vec![Leave, Undo, Unknown]);
    assert_eq!(j.end, End::Failed);
}

#[test]
fn an_undo_needs_a_plan() {
    let mut c = ans(Transient, true);
    c.undo_known = false;
    let j = judge(&[ans(Applied, false), ans(Applied, false), c]);
    assert_eq!(j.nodes, vec![Undo, Undo, Unknown]);
    assert_eq!(j.end, End::Failed);
}

#[test]
fn an_exact_pre_image_makes_the_undo_safe() {
    let mut c = unrecorded();
    c.pre_image = PreImage::Restores(None);
    let mut a = unrecorded();
    a.pre_image = PreImage::Restores(None);
    let j = judge(&[a, c]);
    assert_eq!(j.nodes, vec![Undo, Undo]);
    assert_eq!(j.end, End::RollBack);
    // A pre-image that shows the target state: the write changed nothing there.
    let mut b = unrecorded();
    b.pre_image = PreImage::Known(State::Target);
    assert_eq!(judge(&[b]).nodes, vec![Leave]);
}

#[test]
fn the_late_write_check_sees_what_the_undo_left() {
    // After a rollback: a and b were undone, c's write was cut; the check reads every node.
    let undone = |e: NodeEvidence| NodeEvidence { undone: true, ..e };
    let j = judge(&[
        prior(undone(ans(Applied, false))),
        prior(undone(ans(Applied, false))),
        prior(unrecorded()),
    ]);
    assert!(j.settled(), "{j:?}");
    // A late write landed on c: undo it again.
    let j = judge(&[
        prior(undone(ans(Applied, false))),
        prior(undone(ans(Applied, false))),
        target(unrecorded()),
    ]);
    assert_eq!(j.nodes, vec![Leave, Leave, Undo]);
    assert!(!j.settled());
    // A node that cannot be read is not verified.
    let j = judge(&[
        prior(undone(ans(Applied, false))),
        read(unrecorded(), ReadBack::Unclear),
    ]);
    assert!(!j.settled());
}

#[test]
fn a_node_left_in_a_state_the_decision_did_not_choose_is_divergent() {
    // b held the target before (it said "already"), yet it reads as prior now: an undo went too
    // far somewhere; the check must not call that verified.
    let j = judge(&[prior(ans(Already, false)), target(ans(Already, false))]);
    assert!(!j.settled());
    assert_eq!(j.divergent(), vec![0]);
}

#[test]
fn a_node_that_needs_a_read_back() {
    assert!(ans(Transient, true).needs_read_back());
    assert!(unrecorded().needs_read_back());
    assert!(
        !ans(Transient, false).needs_read_back(),
        "a 503: not applied"
    );
    assert!(!ans(Applied, false).needs_read_back());
    assert!(!target(unrecorded()).needs_read_back());
}

#[test]
fn what_the_last_acknowledged_write_left_outranks_what_the_nodes_show() {
    // A node lost an acknowledged group; a duplicate create: two nodes answer 500 (duplicate)
    // and read back present, the third never answers and reads back absent.
    let ev = [
        target(ans(Transient, true)),
        target(ans(Transient, true)),
        prior(ans(Transient, true)),
    ];
    // Inferred from the nodes alone, the two that kept the group look changed by this write.
    assert_eq!(judge(&ev).nodes, vec![Undo, Undo, Leave]);
    // dtc knows the group was there: nothing is undone, and the node that lost it is named.
    let j = judge_with(&ev, Some(State::Target));
    assert_eq!(j.nodes, vec![Leave; 3]);
    assert_eq!(j.diverged, vec![2]);
    assert_eq!(j.still_diverged(), vec![2]);
}

#[test]
fn a_write_that_brings_a_diverged_node_back_in_line_is_kept() {
    // The node that lost the group takes the duplicate create (201); the others say 500.
    let ev = [
        target(ans(Transient, true)),
        target(ans(Transient, true)),
        ans(Applied, false),
    ];
    let j = judge_with(&ev, Some(State::Target));
    assert_eq!(j.end, End::Complete);
    assert_eq!(j.realigned(), vec![2]);
    // Had the others refused it outright, the node it brought back is still never undone.
    let ev = [
        ans(Transient, false),
        ans(Transient, false),
        ans(Applied, false),
    ];
    let j = judge_with(&ev, Some(State::Target));
    assert_eq!(j.nodes, vec![Leave; 3]);
    assert_eq!(j.realigned(), vec![2]);
    assert!(j.still_diverged().is_empty());
}

#[test]
fn an_attempt_that_may_be_under_way_means_the_write_may_land_later() {
    let report = |status: Option<u16>, maybe_applied: bool, in_flight: Option<bool>| NodeReport {
        node: "c".into(),
        outcome: Transient,
        status,
        error: None,
        attempts: 4,
        maybe_applied,
        in_flight,
        compensation: None,
        read_back: None,
    };
    // Timed out first, then 503 to every retry: its last answer had a status, yet the first
    // request may sit in its queue.
    assert!(may_land_later(Some(&report(Some(503), true, Some(true)))));
    assert!(may_land_later(None));
    assert!(!may_land_later(Some(&report(
        Some(503),
        false,
        Some(false)
    ))));
    // The node's own 500s: maybe applied (a read tells), but finished — nothing left to land.
    assert!(!may_land_later(Some(&report(Some(500), true, Some(false)))));
    // A record written before the two were told apart counts every unknown outcome.
    assert!(may_land_later(Some(&report(Some(500), true, None))));
    assert!(!may_land_later(Some(&report(Some(503), false, None))));
    assert!(check_later(TxnState::RolledBack, &[2]));
    assert!(check_later(TxnState::Rejected, &[2]));
    assert!(!check_later(TxnState::Succeeded, &[2]));
    assert!(!check_later(TxnState::RolledBack, &[]));
}
