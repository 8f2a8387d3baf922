//! What each resource key held after its last acknowledged write: the statuses a read of the
//! resource answers in that state (a create that succeeded: its read-back's `target`, e.g.
//! `[200]`). The saga takes it as the prior state of every node before the next write on the
//! key — what dtc knows outranks what the nodes show — so a node that lost data is seen as
//! diverged instead of its loss being copied to the others. Folded from the transactions'
//! records, kept for the newest `journal.key_states` keys, written out whole by compaction.

use super::record::{Entry, Known, Record};
use crate::txn::{Reason, TxnState};
use std::collections::{HashMap, VecDeque};

impl Known {
    /// This state in the terms of a write read back by `check`: its prior or its target state,
    /// when `check` reads the same resource and its statuses tell.
    pub fn state_for(
        &self,
        check: &super::record::VerifyPlan,
    ) -> Option<crate::txn::evidence::State> {
        use crate::txn::evidence::State;
        if !check
            .method
            .as_str()
            .eq_ignore_ascii_case(self.method.as_str())
            || check.path != self.path
        {
            return None;
        }
        let all_in = |list: &[u16]| {
            !self.statuses.is_empty() && self.statuses.iter().all(|s| list.contains(s))
        };
        if all_in(&check.target) {
            Some(State::Target)
        } else if all_in(&check.prior) {
            Some(State::Prior)
        } else {
            None
        }
    }
}

/// The keys in memory.
pub(super) struct Keys {
    pub(super) by_key: HashMap<String, Known>,
    pub(super) order: VecDeque<(u64, String)>,
    pub(super) max: usize,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            by_key: HashMap::new(),
            order: VecDeque::new(),
            max: 10_000_000,
        }
    }
}

impl Keys {
    /// Forgets every key, keeping the limit (before the journal is rebuilt from the disk).
    pub(super) fn clear(&mut self) {
        self.by_key.clear();
        self.order.clear();
    }

    pub(super) fn set(&mut self, k: Known) {
        if self
            .by_key
            .get(&k.key)
            .is_some_and(|old| old.at_ms > k.at_ms)
        {
            return;
        }
        self.order.push_back((k.at_ms, k.key.clone()));
        self.by_key.insert(k.key.clone(), k);
        while self.by_key.len() > self.max {
            let Some((at, key)) = self.order.pop_front() else {
                break;
            };
            if self.by_key.get(&key).is_some_and(|k| k.at_ms == at) {
                self.by_key.remove(&key);
            }
        }
        // Stale pairs of keys set again: drop them once they outnumber the live ones.
        if self.order.len() > 2 * self.by_key.len() + 64 {
            let by_key = &self.by_key;
            self.order
                .retain(|(at, key)| by_key.get(key).is_some_and(|k| k.at_ms == *at));
        }
    }
}

/// What a finished transaction tells of its key's state.
enum Ack {
    /// It left the key in this state.
    Known(Known),
    /// It changed the key in a way its route cannot read back (no `verify`): what the key
    /// holds now is not known.
    Forget { key: String, at_ms: u64 },
    /// It left the key as it was.
    Nothing,
}

fn acknowledged(e: &Entry) -> Ack {
    let target = matches!(
        (e.state, &e.reason),
        (TxnState::Succeeded, _) | (TxnState::Rejected, Some(Reason::TargetStateHolds))
    );
    let at_ms = e.finished_ms.unwrap_or(e.begin.at_ms);
    let Some(verify) = e.begin.verify.as_ref().filter(|_| target) else {
        return match target {
            true => Ack::Forget {
                key: e.begin.key.clone(),
                at_ms,
            },
            false => Ack::Nothing,
        };
    };
    Ack::Known(Known {
        key: e.begin.key.clone(),
        txn: e.begin.txn.clone(),
        at_ms,
        method: verify.method.clone(),
        path: verify.path.clone(),
        statuses: verify.target.clone(),
    })
}

/// Folds one record; `entry` is the transaction's entry after it.
pub(super) fn fold(keys: &mut Keys, rec: &Record, entry: Option<&Entry>) {
    match rec {
        Record::Known(k) => keys.set(k.clone()),
        // A person's word: what the nodes hold is whatever the person made of it.
        Record::Resolved { .. } => {
            if let Some(e) = entry
                && keys
                    .by_key
                    .get(&e.begin.key)
                    .is_some_and(|k| k.at_ms <= e.begin.at_ms)
            {
                keys.by_key.remove(&e.begin.key);
            }
        }
        Record::End { .. } | Record::Redrive { .. } | Record::Entry(_) => {
            match entry.map_or(Ack::Nothing, acknowledged) {
                Ack::Known(k) => keys.set(k),
                Ack::Forget { key, at_ms } => {
                    if keys.by_key.get(&key).is_some_and(|k| k.at_ms <= at_ms) {
                        keys.by_key.remove(&key);
                    }
                }
                Ack::Nothing => {}
            }
        }
        _ => {}
    }
}

/// What a key's last acknowledged write left, from its finished transactions newest first (the
/// shared store's rows, read under the key's lease): the fold above, read backwards — the
/// newest transaction that tells the state decides; one that changed the key unreadably, or a
/// person's resolution, leaves it unknown.
pub(super) fn last_known(newest_first: &[Entry]) -> Option<Known> {
    for e in newest_first {
        if e.resolution.is_some() {
            return None;
        }
        match acknowledged(e) {
            Ack::Known(k) => return Some(k),
            Ack::Forget { .. } => return None,
            Ack::Nothing => {}
        }
    }
    None
}

/// The keys compaction writes after the entries.
pub(super) fn records(keys: &Keys) -> Vec<Record> {
    keys.by_key.values().cloned().map(Record::Known).collect()
}
